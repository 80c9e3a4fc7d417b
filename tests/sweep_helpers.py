"""A sweep played to its end without workers, for the page tests: each trial's run is claimed
and finished in the store as a worker's runner would finish it, with a score that depends on
its parameters, then the real controller steps. (The real workers: tests/test_sweep_queue.py.)"""

from __future__ import annotations

import math

from jobs.store import registry
from jobs.store import sweeps as store
from jobs.store.db import run_dir
from jobs.sweeps import controller

SPACE = ["optim.lr=log:1e-4:1", "model.dropout=0:0.5"]


def score(params: dict, epochs: int) -> float:
    """Higher is better: best near lr = 1e-2, a little better with more epochs."""
    lr = params.get("optim.lr", 1e-2)
    return (
        0.9 - 0.1 * abs(math.log10(lr) + 2) - 0.05 * params.get("model.dropout", 0) + 0.01 * epochs
    )


def finish_in_flight(db, sweep_id: int) -> int:
    """Finish every queued trial run at its rung, as a worker would; returns how many."""
    n = 0
    for t in store.trials(db, sweep_id):
        if t["state"] != "running" or t["run_status"] != "queued":
            continue
        run = registry.get_run(db, t["run_id"])
        epochs = run["spec"]["train"]["epochs"]
        registry.claim_run(db, t["run_id"], worker="test", device="cpu")
        folder = run_dir(t["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "checkpoint.pt").write_bytes(b"a checkpoint")  # resume needs one to exist
        summary = {
            "best_val_metric": score(t["params"], epochs),
            "epochs": epochs,
            "seconds": 0.5 * (epochs - (t["epochs"] or 0)),
            "steps": 10 * epochs,
            "stop_reason": "epochs",
        }
        registry.finish_run(db, t["run_id"], summary)
        n += 1
    return n


def play(db, sweep_id: int, max_rounds: int = 200) -> None:
    for _ in range(max_rounds):
        if store.get_sweep(db, sweep_id)["status"] == "finished":
            return
        finish_in_flight(db, sweep_id)
        controller.step(db, sweep_id)
    raise AssertionError("the sweep did not finish")
