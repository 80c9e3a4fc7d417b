"""Sweeps and their trials in the store (tables from migration 7; issue 23 §3).

The controller (``jobs.sweeps.controller``) is the only writer of a sweep's trials, and only
while it holds the sweep's lease (:func:`take_lease`): a compare-and-set on the row, so of the
workers that step a sweep at the same moment exactly one acts and the others find it taken.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlite_utils

from engine.messages import Message
from engine.vocab import SweepStatus, TrialState
from jobs.errors import StoreError

# Where a sweep is in its life. Only ``running`` queues trials; ``paused`` lets the trials in
# flight reach their rung and starts nothing; ``cancelled`` and ``finished`` never change again.
SWEEP_STATUSES = tuple(SweepStatus)  # engine.vocab: the one home of statuses
# Where a trial is: in flight (its run queued, running or lost), paused at a rung (its run
# finished there, its checkpoint kept), or over (complete at the top rung or stopped early by
# its own run, pruned when the sweep ended with it paused, failed, cancelled).
TRIAL_STATES = tuple(TrialState)
IN_FLIGHT = "running"


class SweepNotFound(StoreError):
    """No sweep has that id."""


def _decode(row: dict[str, Any], *fields: str) -> dict[str, Any]:
    out = dict(row)
    for f in fields:
        if out.get(f) is not None:
            out[f] = json.loads(out[f])
    return out


def create_sweep(
    db: sqlite_utils.Database,
    *,
    name: str,
    owner: str,
    dataset_id: int,
    preset: str,
    spec: dict[str, Any],
    metric: str,
    direction: str,
) -> int:
    with db.conn:
        return (
            db["sweeps"]
            .insert(
                {
                    "name": name,
                    "owner": owner,
                    "dataset_id": dataset_id,
                    "preset": preset,
                    "spec": json.dumps(spec),
                    "metric": metric,
                    "direction": direction,
                    "status": "running",
                    "created_at": time.time(),
                }
            )
            .last_pk
        )


def get_sweep(db: sqlite_utils.Database, sweep_id: int) -> dict[str, Any]:
    rows = list(db["sweeps"].rows_where("id = ?", [sweep_id]))
    if not rows:
        raise SweepNotFound(Message("sweep.not_found", id=sweep_id))
    return _decode(rows[0], "spec", "note")


def list_sweeps(
    db: sqlite_utils.Database, *, owner: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    where, params = ("owner = ?", [owner]) if owner is not None else (None, [])
    rows = db["sweeps"].rows_where(where, params, order_by="id DESC", limit=limit)
    return [_decode(r, "spec", "note") for r in rows]


def active_sweep_ids(db: sqlite_utils.Database) -> list[int]:
    """Sweeps a controller still has work in: running or paused ones, and cancelled ones with
    a trial still in flight (its run is being stopped)."""
    rows = db.execute(
        "SELECT id FROM sweeps WHERE status IN ('running', 'paused') OR (status = 'cancelled' "
        "AND EXISTS (SELECT 1 FROM sweep_trials t WHERE t.sweep_id = sweeps.id "
        "AND t.state = 'running')) ORDER BY id"
    ).fetchall()
    return [r[0] for r in rows]


def set_status(
    db: sqlite_utils.Database, sweep_id: int, status: str, *, allowed_from: tuple[str, ...]
) -> bool:
    """Move a sweep to ``status`` when it is in one of ``allowed_from``; False when it was not."""
    assert status in SWEEP_STATUSES
    finished = time.time() if status in ("cancelled", "finished") else None
    marks = ",".join("?" * len(allowed_from))
    with db.conn:
        cur = db.execute(
            f"UPDATE sweeps SET status = ?, finished_at = coalesce(?, finished_at) "
            f"WHERE id = ? AND status IN ({marks})",
            [status, finished, sweep_id, *allowed_from],
        )
    return cur.rowcount == 1


def set_note(db: sqlite_utils.Database, sweep_id: int, note: dict[str, Any] | None) -> None:
    with db.conn:
        db["sweeps"].update(sweep_id, {"note": json.dumps(note) if note else None})


def take_lease(
    db: sqlite_utils.Database,
    sweep_id: int,
    holder: str,
    seconds: float,
    *,
    steal_from: str | None = None,
) -> bool:
    """Take (or renew) the sweep's controller lease for ``seconds``; False when another holder
    has it. A holder that died lets it expire, or is named in ``steal_from`` by a process that
    saw it is gone."""
    now = time.time()
    with db.conn:
        cur = db.execute(
            "UPDATE sweeps SET lease_by = ?, lease_until = ? WHERE id = ? AND "
            "(lease_until IS NULL OR lease_until < ? OR lease_by = ? OR lease_by = ?)",
            [holder, now + seconds, sweep_id, now, holder, steal_from],
        )
    return cur.rowcount == 1


def drop_lease(db: sqlite_utils.Database, sweep_id: int, holder: str) -> None:
    with db.conn:
        db.execute(
            "UPDATE sweeps SET lease_by = NULL, lease_until = NULL WHERE id = ? AND lease_by = ?",
            [sweep_id, holder],
        )


def poke(db: sqlite_utils.Database, sweep_id: int) -> None:
    """Say that a trial's run ended: the lease holder, if any, steps the sweep once more."""
    with db.conn:
        db.execute("UPDATE sweeps SET poked_at = ? WHERE id = ?", [time.time(), sweep_id])


def poked_since(db: sqlite_utils.Database, sweep_id: int, since: float) -> bool:
    row = db.execute("SELECT poked_at FROM sweeps WHERE id = ?", [sweep_id]).fetchone()
    return bool(row and row[0] is not None and row[0] >= since)


# --- trials -------------------------------------------------------------------------------------


def add_trial(
    db: sqlite_utils.Database,
    sweep_id: int,
    number: int,
    *,
    params: dict[str, Any],
    run_id: int | None,
    state: str,
    rung: int,
) -> None:
    assert state in TRIAL_STATES
    with db.conn:
        db["sweep_trials"].insert(
            {
                "sweep_id": sweep_id,
                "number": number,
                "run_id": run_id,
                "params": json.dumps(params),
                "state": state,
                "rung": rung,
                "epochs": 0,
                "seconds": 0.0,
                "rung_values": "{}",
                "updated_at": time.time(),
            }
        )


def update_trial(db: sqlite_utils.Database, sweep_id: int, number: int, **fields: Any) -> None:
    if "state" in fields:
        assert fields["state"] in TRIAL_STATES
    if "rung_values" in fields:
        fields["rung_values"] = json.dumps(fields["rung_values"])
    with db.conn:
        db["sweep_trials"].update((sweep_id, number), {**fields, "updated_at": time.time()})


def trials(db: sqlite_utils.Database, sweep_id: int) -> list[dict[str, Any]]:
    """A sweep's trials in order, each with its run's status, summary and error beside it."""
    rows = db.execute(
        "SELECT t.*, r.status AS run_status, r.summary AS run_summary, r.error AS run_error "
        "FROM sweep_trials t LEFT JOIN runs r ON r.id = t.run_id "
        "WHERE t.sweep_id = ? ORDER BY t.number",
        [sweep_id],
    )
    cols = [c[0] for c in rows.description]
    out = []
    for values in rows.fetchall():
        row = _decode(dict(zip(cols, values, strict=True)), "params", "run_summary")
        row["rung_values"] = {int(k): v for k, v in json.loads(row["rung_values"] or "{}").items()}
        out.append(row)
    return out


def paused_trials(db: sqlite_utils.Database, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The runs among ``run_ids`` whose sweep trial waits at a rung (its run finished there,
    its checkpoint kept for a promotion): ``{run_id: {"sweep": id, "epochs": n}}``. Their
    runs' status says "finished", which is not what a person should read (jobs.runs.views)."""
    if not run_ids or not db["sweep_trials"].exists():
        return {}
    marks = ", ".join("?" for _ in run_ids)
    rows = db["sweep_trials"].rows_where(
        f"state = ? AND run_id IN ({marks})",
        [TrialState.PAUSED, *run_ids],
        select="run_id, sweep_id, epochs",
    )
    return {r["run_id"]: {"sweep": r["sweep_id"], "epochs": r["epochs"]} for r in rows}


def trial_of_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """The sweep trial a run trains, or None for an ordinary run."""
    rows = list(db["sweep_trials"].rows_where("run_id = ?", [run_id], limit=1))
    return rows[0] if rows else None


def add_run_event(
    db: sqlite_utils.Database, run_id: int, step: int, kind: str, message: Any, data: dict
) -> None:
    """One timeline event on a trial's run, written by the controller (a pause at a rung, a
    promotion); ``message`` a ``Message`` whose code and params the store keeps beside it."""
    data = {**data, "msg": message.to_json()} if hasattr(message, "to_json") else data
    with db.conn:
        db["events"].insert(
            {
                "run_id": run_id,
                "step": step,
                "kind": kind,
                "message": str(message),
                "data": json.dumps(data),
                "created_at": time.time(),
            }
        )
