"""Whole runs through the public API: resume, cancel, the CLI, the pre-flight doctor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from engine import MemorySink, resolve_config, run_training
from engine.errors import StorageError
from engine.faults import FaultHook
from engine.train import CHECKPOINT, train
from tests.disk_helpers import fill_to_the_last_byte, small_disk, unmount
from tests.engine_helpers import blobs


def small(**ov):
    return resolve_config(
        "sutskever",
        overrides={"train.preflight": False, "model.hidden": [16], "train.batch_size": 32} | ov,
    )


def test_a_resumed_run_continues_its_epochs_and_steps(tmp_path):
    data = blobs()
    first = MemorySink()
    train(small(**{"train.epochs": 2}), data, sink=first, run_dir=tmp_path)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ck["state"]["epoch"] == 2
    second = MemorySink()
    result = train(small(**{"train.epochs": 4}), data, sink=second, run_dir=tmp_path, resume=True)
    assert second.kinds("resumed") and not second.kinds("run_start")
    epochs = [v for _, v in second.series("epoch")]
    assert epochs == [3.0, 4.0]
    steps_first = {s for s, _ in first.series("train/loss")}
    steps_second = {s for s, _ in second.series("train/loss")}
    assert min(steps_second) > max(steps_first), (
        "the step counter continues; no step is logged twice"
    )
    assert result.summary["epochs"] == 4


def test_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    data = blobs()
    straight = train(small(**{"train.epochs": 4}), data, sink=MemorySink())
    train(small(**{"train.epochs": 2}), data, sink=MemorySink(), run_dir=tmp_path)
    resumed = train(small(**{"train.epochs": 4}), data, sink=MemorySink(), run_dir=tmp_path)
    assert resumed.summary["best_val_loss"] == straight.summary["best_val_loss"]


def test_cancel_stops_within_a_step_budget_and_saves_a_checkpoint(tmp_path):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return True

    sink = MemorySink()
    result = train(
        small(**{"train.epochs": 50}),
        blobs(n=2000),
        sink=sink,
        should_stop=should_stop,
        run_dir=tmp_path,
    )
    assert result.status == "cancelled"
    assert (tmp_path / CHECKPOINT).exists()
    assert sink.kinds("cancelled")
    assert result.summary["epochs"] <= 1


def test_preflight_reports_each_check_with_its_tip():
    sink = MemorySink()
    cfg = resolve_config("quick", overrides={"train.epochs": 1})
    train(cfg, blobs(), sink=sink)
    checks = {e["data"]["rule"]: e["data"] for e in sink.kinds("preflight")}
    assert {
        "init_loss",
        "inputs_standardized",
        "gradcheck",
        "overfit_one_batch",
        "activation_scale",
    } <= set(checks)
    assert checks["gradcheck"]["tip"] == "T10" and checks["gradcheck"]["passed"]
    assert checks["init_loss"]["tip"] == "T8" and checks["init_loss"]["passed"]
    assert checks["overfit_one_batch"]["passed"]


def test_preflight_flags_unstandardized_inputs():
    sink = MemorySink()
    data = blobs()
    data.x_train = data.x_train * 50 + 100
    train(
        resolve_config("sutskever", overrides={"train.epochs": 1, "model.hidden": [16]}),
        data,
        sink=sink,
    )
    check = next(e for e in sink.kinds("preflight") if e["data"]["rule"] == "inputs_standardized")
    assert check["data"]["passed"] is False and check["data"]["tip"] == "T2"


def test_run_training_reports_dataset_warnings_and_writes_the_model(tmp_path):
    sink = MemorySink()
    cfg = resolve_config(
        "quick",
        dataset="builtin:diabetes",
        overrides={"train.epochs": 2, "train.overfit_one_batch": False},
    )
    result = run_training(cfg, sink=sink, run_dir=tmp_path)
    assert result.status == "finished"
    assert result.summary["metric"] == "rmse" and result.summary["best_val_metric"] > 0
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["task"] == "regression" and saved["y_std"] > 1


def test_cli_train_writes_checkpoint_config_and_summary(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "train",
            "--preset",
            "quick",
            "--dataset",
            "builtin:digits",
            "--set",
            "train.epochs=1",
            "--set",
            "train.overfit_one_batch=false",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        (out / "model.pt").exists()
        and (out / "config.json").exists()
        and (out / "summary.json").exists()
    )
    assert "best val acc" in proc.stdout


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_cli_train_on_a_file_writes_an_honest_test_score(tmp_path):
    # Issue 10's acceptance line, with the default (auto) preset.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    df["kind"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    df["other"] = rng.normal(size=300)  # the last column, which a silent guess would pick
    df.to_csv(tmp_path / "t.csv", index=False)
    out = tmp_path / "out"
    proc = _cli(
        "--dataset",
        str(tmp_path / "t.csv"),
        "--target",
        "kind",
        "--out",
        str(out),
        "--set",
        "train.epochs=5",
    )
    assert proc.returncode == 0, proc.stderr
    # What was inferred is said before training: the target and the task.
    assert "target column 'kind' (as asked)" in proc.stderr
    assert "classification into 2 classes" in proc.stderr
    assert proc.stderr.index("classification into") < proc.stderr.index("run_start")
    summary = json.loads((out / "summary.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "auto" and config["auto"]["rows"] == 300
    assert summary["test_rows"] == 60 and 0.5 < summary["test_metric"] <= 1.0
    assert summary["test_loss"] > 0
    cm = summary["confusion_matrix"]
    assert sum(map(sum, cm)) == 60 and summary["class_names"] == ["no", "yes"]
    assert summary["test_metric"] == pytest.approx((cm[0][0] + cm[1][1]) / 60)
    assert "test acc (held out, scored once)" in proc.stdout


def test_cli_train_says_which_column_it_guessed(tmp_path):
    pd.DataFrame({"a": np.arange(40.0) * 7 % 40, "b": np.arange(40) % 5}).to_csv(
        tmp_path / "t.csv", index=False
    )
    proc = _cli(
        "--dataset",
        str(tmp_path / "t.csv"),
        "--out",
        str(tmp_path / "o"),
        "--set",
        "train.epochs=1",
    )
    assert "target column 'b' (inferred; change it with --target)" in proc.stderr


def test_cli_train_refuses_a_tiny_file_with_a_clear_message(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [0, 1, 0]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    proc = _cli("--dataset", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "only 3 rows" in proc.stderr and "at least 10" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_train_names_a_bad_setting_and_trains_nothing(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "train",
            "--preset",
            "quick",
            "--dataset",
            "builtin:digits",
            "--set",
            "optim.lr=-3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "optim.lr" in proc.stderr
    assert not out.exists()


def test_out_of_memory_ends_with_a_clear_error_and_an_event(tmp_path):
    from engine.errors import OutOfMemory

    sink = MemorySink()
    try:
        train(
            small(**{"train.epochs": 5}),
            blobs(),
            sink=sink,
            run_dir=tmp_path,
            faults=FaultHook(oom_at_step=15),
        )
    except OutOfMemory as e:
        assert "train.batch_size" in str(e)
    else:
        raise AssertionError("an out-of-memory error must not pass silently")
    assert sink.kinds("oom")
    assert sink.kinds("oom")[0]["data"]["change"] == {"train.batch_size": 16}
    assert (tmp_path / CHECKPOINT).exists(), "epochs finished before the fault are kept"


def test_a_run_cancelled_mid_epoch_resumes_with_a_continuous_series(tmp_path, monkeypatch):
    """The cancel checkpoint keeps the newest weights but counts steps from the start of the
    unfinished epoch, which the resume redoes: one val point per epoch, at the same steps."""
    import engine.train

    # Ask should_stop at every step: at the default ~4×/s a fast machine finished epoch 2 first.
    monkeypatch.setattr(engine.train, "STOP_CHECK_S", 0.0)
    data = blobs(n=60_000, val=200)
    cfg = small(**{"train.epochs": 3, "train.batch_size": 32})
    per_epoch = 60_000 // 32

    class StopMidEpoch(MemorySink):
        def __call__(self) -> bool:  # should_stop: once past the middle of epoch 2
            return any(s > per_epoch * 1.5 for s, _ in self.series("train/loss"))

    first = StopMidEpoch()
    assert train(cfg, data, sink=first, should_stop=first, run_dir=tmp_path).status == "cancelled"
    stopped_at = first.kinds("cancelled")[0]["step"]
    assert per_epoch < stopped_at < 2 * per_epoch, "the cancel landed mid-epoch"
    second = MemorySink()
    assert train(cfg, data, sink=second, run_dir=tmp_path).status == "finished"
    val_steps = [s for s, _ in first.series("val/loss")] + [s for s, _ in second.series("val/loss")]
    assert val_steps == [per_epoch, 2 * per_epoch, 3 * per_epoch]
    every = cfg.train.log_every
    assert min(s for s, _ in second.series("train/loss")) == (per_epoch // every + 1) * every, (
        "the redo starts after epoch 1"
    )


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs filled to the last byte; yields (run_dir on it, the filler file)."""
    disk = small_disk(tmp_path / "disk", "2m")
    try:
        run_dir = disk / "run"
        run_dir.mkdir()
        filler = disk / "filler"
        assert fill_to_the_last_byte(filler) > 0
        yield run_dir, filler
    finally:
        unmount(disk)


def test_a_checkpoint_that_cannot_be_written_does_not_end_the_run(full_disk):
    """The disk is full for the first two epochs, then space returns (the sink frees it, as an
    operator would): those checkpoints are reported and skipped, training never stops, and the
    later checkpoint and the trained model are written."""
    run_dir, filler = full_disk

    class FreesSpace(MemorySink):
        def log(self, step, values):
            super().log(step, values)
            if values.get("epoch") == 3:
                filler.unlink(missing_ok=True)

    sink = FreesSpace()
    res = train(small(**{"train.epochs": 4}), blobs(), sink=sink, run_dir=run_dir)
    assert res.status == "finished"
    failed = sink.kinds("checkpoint_failed")
    assert [e["data"]["epoch"] for e in failed] == [1, 2]
    assert all("No space left on device" in e["message"] for e in failed)
    assert all(e["message"].endswith("a resume would start from the beginning") for e in failed)
    assert torch.load(run_dir / CHECKPOINT, weights_only=True)["state"]["epoch"] == 4
    assert (run_dir / "model.pt").exists()
    assert not list(run_dir.glob("*.tmp")), "no partial file left holding disk space"


def test_a_model_that_cannot_be_written_fails_the_run_with_what_to_do(full_disk, monkeypatch):
    import engine.checkpoint

    run_dir, _ = full_disk
    # The real waits sum to a minute.
    monkeypatch.setattr(engine.checkpoint, "MODEL_SAVE_WAITS_S", (0.01, 0.01))
    sink = MemorySink()
    with pytest.raises(StorageError) as info:
        train(small(**{"train.epochs": 2}), blobs(), sink=sink, run_dir=run_dir)
    assert (
        "model.pt" in str(info.value)
        and "No space left on device" in str(info.value)
        and "free disk space" in str(info.value)
    )
    assert len(sink.kinds("checkpoint_failed")) == 3  # two epochs, then the model (reported once)
    assert not list(run_dir.iterdir()), "nothing half-written is left behind"


def test_per_step_histories_stay_bounded_on_a_long_run(tmp_path):
    """The doctor's gradient-norm and ratio histories are read only at their tail and go into
    every checkpoint: on a long run they must not grow with the step count."""
    from engine import doctor

    cfg = small(**{"train.epochs": 25, "train.log_every": 1, "train.ratio_every": 1})
    res = train(cfg, blobs(), sink=MemorySink(), run_dir=tmp_path)
    assert res.summary["steps"] > 2 * (doctor.GRAD_HISTORY + 1), "long enough to need trimming"
    st = torch.load(tmp_path / CHECKPOINT, weights_only=True)["state"]
    assert doctor.GRAD_HISTORY < len(st["grad_norms"]) < 2 * (doctor.GRAD_HISTORY + 1)
    assert len(st["ratio_summary"]) < 2 * cfg.doctor.ratio_window
