"""The loop's parts around the decisions: plateau hints on fixed-LR runs, the loop state in
checkpoints (old ones too), progress reports, and fault injection through a hook."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import MemorySink, resolve_config
from engine.errors import CheckpointError
from engine.faults import FaultHook
from engine.schedule import simulate_plateau_cuts
from engine.sink import Sink
from engine.state import LoopState
from engine.train import CHECKPOINT, train
from tests.engine_helpers import blobs

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def fixed_lr(**ov):
    """A fixed, too-high LR (no schedule, no early stop): validation loss bounces, so the shadow
    scheduler finds plateaus."""
    base = {
        "train.preflight": False,
        "model.hidden": [16],
        "train.batch_size": 32,
        "schedule.enabled": False,
        "optim.lr": 0.5,
        "optim.momentum": 0.0,
        "train.early_stop_patience": None,
        "schedule.lr_floor": 0.0,
        "schedule.plateau_patience": 1,
        "schedule.cooldown": 1,
        "train.epochs": 16,
    }
    return resolve_config("sutskever", overrides=base | ov)


def hints(sink: MemorySink) -> list[tuple[int, float, float]]:
    return [
        (e["step"], e["data"]["old_lr"], e["data"]["new_lr"]) for e in sink.kinds("plateau_hint")
    ]


@pytest.mark.parametrize("members", [1, 3])
def test_plateau_hints_fall_where_replaying_the_logged_val_loss_puts_them(members):
    """What the dashboard used to compute from the store (jobs/plateaus.py: the val/loss series
    through simulate_plateau_cuts, starting at the first logged lr) is now what the engine records.
    With an ensemble the logged val/loss (of the averaged prediction) is not the mean member loss
    the real schedule follows: the hints follow the logged one."""
    cfg = fixed_lr(**{"ensemble.members": members})
    sink = MemorySink()
    train(cfg, blobs(n=300, val=100, seed=3), sink=sink)
    val = sink.series("val/loss")
    sc = cfg.schedule
    replay = simulate_plateau_cuts(
        [v for _, v in val],
        factor=sc.plateau_factor,
        patience=sc.plateau_patience,
        threshold=sc.plateau_threshold,
        cooldown=sc.cooldown,
        lr=sink.series("lr")[0][1],
    )
    assert len(replay) >= 2, "the run must plateau for the test to mean something"
    assert hints(sink) == [(val[i][0], old, new) for i, old, new in replay]
    hint = sink.kinds("plateau_hint")[0]
    assert hint["data"]["tip"] == "T7" and hint["data"]["epoch"] == replay[0][0] + 1
    assert hint["message"].startswith(
        "a cut would have helped here: val/loss had not improved for 1 epochs (LR 0.5 → 0.25"
    )
    assert not sink.kinds("lr_cut") and {v for _, v in sink.series("lr")} == {0.5}, (
        "hints change nothing"
    )


def test_plateau_hints_follow_the_logged_val_loss_not_the_member_mean(monkeypatch):
    """Scripted validation: the logged val/loss stalls while the mean member loss (what a real
    schedule follows) keeps falling; the hints must follow the logged series, as the charts did."""
    logged = iter([1.0, 0.9, 0.9, 0.9, 0.9, 0.9])
    member_mean = iter([1.0, 0.9, 0.8, 0.7, 0.6, 0.5])

    def scripted(net, x, y, task, y_std):
        v, m = next(logged), next(member_mean)
        return {
            "loss": v,
            "metric": 1 - v,
            "metric_name": "acc",
            "member_loss": [m],
            "member_metric": [1 - m],
            "sched_loss": m,
        }

    monkeypatch.setattr("engine.nets.evaluate", scripted)
    sink = MemorySink()
    train(fixed_lr(**{"train.epochs": 6, "schedule.cooldown": 0}), blobs(n=64, val=16), sink=sink)
    assert [e["data"]["epoch"] for e in sink.kinds("plateau_hint")] == [4, 6]


def test_a_scheduled_run_records_no_plateau_hints():
    sink = MemorySink()
    train(
        fixed_lr(**{"schedule.enabled": True, "train.epochs": 8}),
        blobs(n=300, val=100, seed=3),
        sink=sink,
    )
    assert sink.kinds("lr_cut") and not sink.kinds("plateau_hint")


def test_plateau_hints_continue_across_a_resume(tmp_path):
    data = blobs(n=300, val=100, seed=3)
    straight = MemorySink()
    train(fixed_lr(), data, sink=straight)
    first, second = MemorySink(), MemorySink()
    train(fixed_lr(**{"train.epochs": 8}), data, sink=first, run_dir=tmp_path)
    assert "shadow_scheduler" in torch.load(tmp_path / CHECKPOINT, weights_only=True)
    train(fixed_lr(), data, sink=second, run_dir=tmp_path)
    assert hints(first) and hints(second), "hints on both sides of the resume"
    assert hints(first) + hints(second) == hints(straight)


# What engine/train.py wrote as checkpoint["state"] before the loop state was a dataclass.
LEGACY_STATE_KEYS = {
    "epoch",
    "step",
    "best_loss",
    "best_epoch",
    "best_metric",
    "bad_epochs",
    "train_losses",
    "val_losses",
    "val_metrics",
    "ratio_summary",
    "grad_norms",
    "initial_loss",
    "fired",
    "findings",
    "member_metrics",
    "n_cuts",
    "clip_steps",
    "preflight",
}


def test_a_checkpoint_from_before_the_loop_state_dataclass_resumes(tmp_path):
    data = blobs()
    cfg = fixed_lr(**{"train.epochs": 2, "optim.lr": 0.1})
    train(cfg, data, sink=MemorySink(), run_dir=tmp_path)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    # Keys added since (issue 20: the balanced-accuracy best epoch) are absent from old files.
    # Since: the range-test note's first cut and best LR (issue 23 §1).
    added = {"best_key", "best_balanced", "first_cut_epoch", "best_lr"}
    legacy = {k: v for k, v in ck["state"].items() if k not in added} | {"clip_steps": 0}
    assert set(legacy) == LEGACY_STATE_KEYS, "the state keys on disk are unchanged"
    ck["state"] = legacy
    del ck["shadow_scheduler"]  # older checkpoints have none
    torch.save(ck, tmp_path / CHECKPOINT)
    sink = MemorySink()
    res = train(fixed_lr(**{"train.epochs": 4, "optim.lr": 0.1}), data, sink=sink, run_dir=tmp_path)
    assert res.status == "finished" and res.summary["epochs"] == 4
    assert sink.kinds("resumed")[0]["data"] == {"epoch": 2, "step": ck["state"]["step"]}


def test_a_checkpoint_with_an_unknown_state_key_is_refused(tmp_path):
    data = blobs()
    train(fixed_lr(**{"train.epochs": 1}), data, sink=MemorySink(), run_dir=tmp_path)
    ck = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    ck["state"]["bogus"] = 1
    torch.save(ck, tmp_path / CHECKPOINT)
    with pytest.raises(CheckpointError, match="bogus"):
        train(fixed_lr(**{"train.epochs": 2}), data, sink=MemorySink(), run_dir=tmp_path)


def test_the_loop_state_round_trips_through_its_state_dict():
    st = LoopState(epoch=3, step=30, best_loss=0.5, grad_norms=[1.0, 2.0], fired={"ratio_low": 2})
    saved = st.state_dict()
    st.grad_norms.append(3.0)
    again = LoopState()
    again.load_state_dict(saved)
    assert again.grad_norms == [1.0, 2.0] and again.epoch == 3 and again.fired == {"ratio_low": 2}
    assert LoopState().state_dict()["best_loss"] == float("inf")


def test_progress_is_reported_after_each_epoch():
    sink = MemorySink()
    train(fixed_lr(**{"train.epochs": 4}), blobs(), sink=sink)
    assert sink.fractions == [0.25, 0.5, 0.75, 1.0]


def test_the_shipped_sinks_implement_the_whole_protocol():
    from engine.console import ConsoleSink

    assert isinstance(MemorySink(), Sink) and isinstance(ConsoleSink(epochs=1), Sink)
    assert all(hasattr(Sink, name) for name in ("log", "event", "progress"))


# ---------------------------------------------------------------- fault injection


def test_the_fault_hook_is_built_from_the_environment_only_on_request():
    assert FaultHook.from_env({}) == FaultHook()
    hook = FaultHook.from_env(
        {"TRAINBOARD_FAULT_STEP_DELAY_S": "0.01", "TRAINBOARD_FAULT_OOM_AT_STEP": "15"}
    )
    assert hook == FaultHook(step_delay_s=0.01, oom_at_step=15)
    hook.after_step(14)
    with pytest.raises(torch.OutOfMemoryError, match="step 15"):
        hook.after_step(15)


def test_the_engine_itself_never_reads_the_fault_variables(monkeypatch):
    monkeypatch.setenv("TRAINBOARD_FAULT_OOM_AT_STEP", "3")
    assert train(fixed_lr(**{"train.epochs": 1}), blobs(), sink=MemorySink()).status == "finished"
    readers = sorted(p.name for p in ENGINE.rglob("*.py") if "TRAINBOARD_FAULT" in p.read_text())
    assert readers == ["faults.py"]


def test_a_slow_step_hook_slows_every_step():
    import time

    cfg = fixed_lr(**{"train.epochs": 1})
    t0 = time.perf_counter()
    res = train(cfg, blobs(n=128), sink=MemorySink(), faults=FaultHook(step_delay_s=0.02))
    assert time.perf_counter() - t0 >= 0.02 * res.summary["steps"]
