"""Code that the store tests run in separate, real processes (spawned, so importable by name).

Run as a script it is the SIGKILL test's writer: ``python -m tests.store_workers kill DB RUN``.
"""

from __future__ import annotations

import math
import sqlite3
import sys
import time

KEYS = ("train/loss", "lr", "grad_norm", "ratio/layer1.weight")


def point(run_id: int, step: int, key: str) -> float:
    """A deterministic value, so readers can check what they got without sharing memory."""
    return math.sin(step * 0.01 + run_id) + KEYS.index(key) if key in KEYS else float(step)


def write_run(db_path: str, steps: int, tag: str) -> dict:
    """One training-like writer: creates its run, logs ``steps`` steps of 4 keys plus a val
    point every 50 steps (a separate log call), events, and heartbeats through the registry."""
    from jobs.store import registry
    from jobs.store.db import connect
    from jobs.store.writer import MetricWriter

    db = connect(db_path)  # several of these race on a fresh file: migrations must cope
    run_id = registry.create_run(db, spec={"tag": tag}, preset="test", name=tag)
    registry.claim_run(db, run_id, worker=tag, device="cpu")
    errors = []
    with MetricWriter(db_path, run_id, flush_interval=0.1, flush_points=500) as w:
        for s in range(steps):
            w.log(s, {k: point(run_id, s, k) for k in KEYS})
            if s % 50 == 49:
                w.log(s, {"val/loss": float(s)})
                w.event(s, "checkpoint", f"step {s}", {"step": s})
            if s % 500 == 0:
                try:
                    registry.heartbeat(db, run_id, worker=tag, progress=s / steps)
                except sqlite3.OperationalError as e:
                    errors.append(str(e))
                time.sleep(0.02)  # spread the run over a few reader polls
    registry.finish_run(db, run_id, {"steps": steps})
    return {"run_id": run_id, "errors": errors}


def try_claim(db_path: str, run_ids: list[int], worker: str) -> list[int]:
    """Claim every run it can; return the ids it won."""
    from jobs.errors import IllegalTransition
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect(db_path)
    won = []
    for rid in run_ids:
        try:
            registry.claim_run(db, rid, worker=worker, device="cpu")
            won.append(rid)
        except IllegalTransition:
            pass
    return won


def kill_target(db_path: str, run_id: int) -> None:
    """Phase 1: 1,000 steps (triggers size-based flushes). Phase 2: 50 steps below the size
    threshold, then idle (only the interval flush can commit them). Phase 3, on a line from
    stdin: 50 more steps, reported, then wait to be killed. Never flushes or closes by hand."""
    from jobs.store.writer import MetricWriter

    w = MetricWriter(db_path, run_id, flush_interval=0.2, flush_points=1000)
    for s in range(1000):
        w.log(s, {k: point(run_id, s, k) for k in KEYS})
    for s in range(1000, 1050):
        w.log(s, {k: point(run_id, s, k) for k in KEYS})
    print("phase2 1050", flush=True)
    sys.stdin.readline()
    for s in range(1050, 1100):
        w.log(s, {k: point(run_id, s, k) for k in KEYS})
    print("phase3 1100", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        kill_target(sys.argv[2], int(sys.argv[3]))
