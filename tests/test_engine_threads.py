"""The CPU thread policy (engine/threads.py) and the worker slots of `trainboard up`: no run
ever starts more threads than the cores it owns, and small models get one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from engine import threads as threads_mod
from engine.config import resolve_config
from engine.sink import MemorySink
from engine.threads import SMALL_STEP_WORK, ThreadGovernor, ThreadPolicy, step_work
from engine.train import train
from jobs.queue.presence import cpu_slots, slot_name
from tests.engine_helpers import blobs


def test_small_models_get_one_thread_others_their_share_of_the_cores_they_own():
    p = ThreadPolicy(cores=8)
    assert p.threads_for(SMALL_STEP_WORK / 10) == 1
    assert p.threads_for(SMALL_STEP_WORK * 10) == 8
    assert p.threads_for(SMALL_STEP_WORK * 10, runs=2) == 4
    assert p.threads_for(SMALL_STEP_WORK * 10, runs=9) == 1
    assert ThreadPolicy(cores=1).threads_for(SMALL_STEP_WORK * 10) == 1
    assert ThreadPolicy(cores=8, override=3).threads_for(SMALL_STEP_WORK / 10, runs=4) == 3


def test_step_work_counts_the_positions_a_weight_is_applied_at():
    assert step_work(1000, 32, (10,), "mlp") == 1000 * 32
    assert step_work(1000, 32, (50, 2), "lstm") == 1000 * 32 * 50
    assert step_work(1000, 32, (1, 8, 8), "cnn") == 1000 * 32 * 64
    assert step_work(1000, 32, (1, 8, 8), "mlp") == 1000 * 32  # an MLP on images: once per row
    # A wine-sized MLP is tiny; the bench's MLP and LSTM are not (docs/operations.md, "Threads").
    tiny = 13 * 32 + 32 * 3
    mlp = 64 * 256 + 256 * 256 + 256 * 10
    lstm = 4 * 64 * (2 + 64)
    assert step_work(tiny, 32, (13,), "mlp") < SMALL_STEP_WORK
    assert (
        SMALL_STEP_WORK < step_work(mlp, 128, (64,), "mlp") < step_work(lstm, 64, (50, 2), "lstm")
    )


def test_policy_reads_cores_and_override_from_the_environment(tmp_path):
    p = ThreadPolicy.from_env(
        {
            "TRAINBOARD_CORES": "3",
            "TRAINBOARD_THREADS": "2",
            "TRAINBOARD_RUNTIME_DIR": str(tmp_path),
        }
    )
    assert (p.cores, p.override) == (3, 2) and p.share_dir.parent == tmp_path
    assert (
        ThreadPolicy.from_env({"TRAINBOARD_THREADS": "2"}, threads=5).override == 5
    )  # --threads wins
    assert ThreadPolicy.from_env({}).cores >= 1 and ThreadPolicy.from_env({}).override is None
    for bad in (
        {"TRAINBOARD_THREADS": "two"},
        {"TRAINBOARD_THREADS": "0"},
        {"TRAINBOARD_CORES": "-1"},
    ):
        with pytest.raises(ValueError, match="TRAINBOARD_"):
            ThreadPolicy.from_env(bad)
    with pytest.raises(ValueError, match="--threads"):
        ThreadPolicy.from_env({}, threads=0)


def test_runs_on_one_machine_split_the_cores_and_take_them_back(tmp_path, monkeypatch):
    monkeypatch.setattr(threads_mod, "RECHECK_S", 0.0)
    before = torch.get_num_threads()
    try:
        policy = ThreadPolicy(cores=2, share_dir=tmp_path)
        big = SMALL_STEP_WORK * 10
        first = ThreadGovernor(policy, big)
        assert first.threads == 2 and torch.get_num_threads() == 2  # alone: every core it owns
        second = ThreadGovernor(policy, big)  # another run starts beside it
        first.tick()
        assert first.threads == second.threads == 1 and torch.get_num_threads() == 1
        second.close()
        first.tick()
        assert first.threads == 2  # the other run ended: the cores come back
        (tmp_path / "999999999.1").touch()  # a run that died without cleaning up
        first.tick()
        assert first.threads == 2 and not (tmp_path / "999999999.1").exists()
        first.close()
        assert list(tmp_path.iterdir()) == []
        tiny = ThreadGovernor(policy, SMALL_STEP_WORK / 10)
        assert tiny.threads == 1 and list(tmp_path.iterdir()) == []  # tiny runs take no share
    finally:
        torch.set_num_threads(before)


def test_a_run_sets_torch_threads_from_the_policy_and_reports_it(tmp_path):
    before = torch.get_num_threads()
    try:
        cfg = resolve_config("quick", overrides={"train.epochs": 1, "train.preflight": False})
        tiny = resolve_config(
            "quick", overrides={"train.epochs": 1, "train.preflight": False, "model.hidden": [4]}
        )
        policy = ThreadPolicy(cores=2, share_dir=tmp_path)
        assert train(tiny, blobs(n=200), sink=MemorySink(), threads=policy).summary["threads"] == 1
        assert torch.get_num_threads() == 1
        forced = train(
            tiny, blobs(n=200), sink=MemorySink(), threads=ThreadPolicy(cores=2, override=2)
        )
        assert forced.summary["threads"] == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(1)
        sink = MemorySink()
        train(cfg, blobs(n=200), sink=sink)  # no policy: a library call leaves torch alone
        assert (
            torch.get_num_threads() == 1 and sink.kinds("run_start")[0]["data"]["threads"] is None
        )
        assert list(tmp_path.iterdir()) == []  # every run took its name off the folder
    finally:
        torch.set_num_threads(before)


def test_up_starts_one_core_slots_beside_the_dashboards_share():
    assert cpu_slots(2) == (1, 1)  # the build machine: one slot, the other core for the dashboard
    assert cpu_slots(4) == (3, 1)
    assert cpu_slots(16) == (15, 1)
    assert cpu_slots(1) == (1, 1)
    assert cpu_slots(4, slots=1) == (1, 3)  # fewer slots: each owns more cores
    assert cpu_slots(16, slots=4) == (4, 3)
    with pytest.raises(ValueError, match="--cpu-slots"):
        cpu_slots(4, slots=0)
    assert slot_name("cpu", 1, 1).startswith("cpu@")
    assert slot_name("cpu", 2, 3).startswith("cpu2@")


def test_trainboard_train_uses_one_thread_for_a_small_model_and_obeys_threads(tmp_path):
    def run(*extra: str, env: dict | None = None) -> dict:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        args = "train --preset quick --dataset builtin:digits --set train.epochs=1 --set train.preflight=false"
        cmd = [sys.executable, "-m", "jobs.cli", *args.split(), "--out", str(out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads((out / "summary.json").read_text())

    assert run("--set", "model.kind=mlp", "--set", "model.hidden=[8]")["threads"] == 1  # tiny
    assert run("--threads", "2")["threads"] == 2
    assert run(env={**os.environ, "TRAINBOARD_THREADS": "2"})["threads"] == 2
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "train",
            "--dataset",
            "builtin:digits",
            "--threads",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--threads must be at least 1" in bad.stderr
