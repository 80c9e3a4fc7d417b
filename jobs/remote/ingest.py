"""The server's side of the remote transport, on the store: claims, heartbeats, records, outcomes.

Every function takes the database and the worker name a token proved (``tokens.authenticate``)
and refuses what that worker does not hold. Records are written exactly once per
(run, attempt, seq): each chunk's points, events and the attempt's new high-water mark commit in
one transaction, so a retried chunk (the ack was lost, the worker restarted) is acknowledged
again without being written twice. Points go through the store's own batched-write code
(``jobs.store.writer``: the same statements and downsampled levels as a local run's writer).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import numpy as np
import sqlite_utils

from engine.vocab import TERMINAL
from jobs.errors import IllegalTransition, LostClaim, RunNotFound
from jobs.remote.tokens import holds
from jobs.remote.wire import Chunk, WireError
from jobs.store import registry
from jobs.store.writer import _INSERT_EVENT, _INSERT_POINTS, _UPSERT_BUCKETS, bucket_rows

OUTCOMES = ("finished", "diverged", "cancelled", "failed", "released")


class Refused(Exception):
    """The worker asked for something its token does not allow (HTTP 403/404/409)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def _run_or_refuse(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    try:
        return registry.get_run(db, run_id)
    except RunNotFound as e:
        raise Refused(404, f"run {run_id} does not exist") from e


def _slot(worker: str, slot: str | None) -> str:
    """The name the run is held under: the token's worker, or one of its slots."""
    slot = slot or worker
    if not holds(worker, slot) or len(slot) > 128:
        raise Refused(403, f"worker {worker!r} cannot act as {slot!r}")
    return slot


# --- claim ---------------------------------------------------------------------------------


def claim(
    db: sqlite_utils.Database, worker: str, run_id: int, *, slot: str | None, device: str
) -> dict[str, Any]:
    """What ``jobs.queue.tasks`` does on a local worker, for a remote one: the message for
    ``run_id`` is a turn for the next run of its queue in the fair order (or resumes this lost
    run); returns ``{"skipped": why}`` or the claimed run's spec, dataset and shipped files."""
    from jobs.runs import quotas

    slot = _slot(worker, slot)
    try:
        run = registry.get_run(db, run_id)
    except RunNotFound:
        return {"skipped": "missing"}
    cap = quotas.max_running_per_user(db)
    candidates = (
        [run_id]
        if run["status"] == "lost"
        else registry.fair_queue(db, run["queue"], max_running=cap)
    )
    for candidate in candidates:
        try:
            claimed = registry.claim_run(db, candidate, worker=slot, device=device, max_running=cap)
        except IllegalTransition:
            continue
        with db.conn:
            db.execute(
                "INSERT INTO remote_attempts (run_id, attempt, worker, last_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, attempt) DO UPDATE SET worker = excluded.worker, hwm = 0",
                [candidate, claimed["attempt"], slot, time.time()],
            )
        return handout(db, claimed)
    return {"skipped": f"run {run_id} is {run['status']}"}


def handout(db: sqlite_utils.Database, run: dict[str, Any]) -> dict[str, Any]:
    ds = None
    if run.get("dataset_id") is not None:
        try:
            ds = registry.get_dataset(db, run["dataset_id"])
        except LookupError:
            ds = None
    files = {
        r["name"]: {"sha256": r["sha256"], "size": r["size"]}
        for r in db.query("SELECT name, sha256, size FROM run_files WHERE run_id = ?", [run["id"]])
    }
    return {
        "run_id": run["id"],
        "attempt": run["attempt"],
        "spec": run["spec"],
        "dataset": ds,
        "files": files,
    }


# --- heartbeat, presence -------------------------------------------------------------------


def heartbeat(
    db: sqlite_utils.Database,
    worker: str,
    run_id: int,
    *,
    slot: str | None,
    attempt: int,
    progress: float | None,
) -> dict[str, Any]:
    """The attempt is alive; says whether it is still held and whether cancel was asked."""
    slot = _slot(worker, slot)
    run = _run_or_refuse(db, run_id)
    if run["attempt"] != attempt or run["worker"] != slot:
        return {"held": False, "status": run["status"], "cancel": False}
    try:
        registry.heartbeat(db, run_id, worker=slot, progress=progress)
    except LostClaim as e:
        return {"held": False, "status": e.current, "cancel": False}
    return {"held": True, "status": "running", "cancel": registry.cancel_requested(db, run_id)}


_PRESENCE = ("host", "device", "gpu_name", "gpu_mem_total", "queue", "current_run", "status")


def presence(db: sqlite_utils.Database, worker: str, report: dict[str, Any]) -> None:
    """A remote worker's row on the Workers page, with its spool backlog and sync lag."""
    slot = _slot(worker, report.get("name"))
    fields = {k: report.get(k) for k in _PRESENCE}
    for k in ("host", "device", "gpu_name", "queue", "status"):
        if fields[k] is not None:
            fields[k] = str(fields[k])[:200]
    registry.upsert_worker(db, slot, **fields, pid=None, started_at=report.get("started_at"))
    with db.conn:
        db.execute(
            "UPDATE workers SET remote = 1, spool_backlog = ?, sync_lag_s = ? WHERE name = ?",
            [int(report.get("backlog") or 0), float(report.get("lag_s") or 0.0), slot],
        )


# --- records -------------------------------------------------------------------------------


class Ingest:
    """Writes chunks for one server process; caches metric key ids (names never change id)."""

    def __init__(self) -> None:
        self._key_ids: dict[str, int] = {}

    def _kids(self, conn: sqlite3.Connection, keys: list[str]) -> np.ndarray:
        missing = [k for k in keys if k not in self._key_ids]
        if missing:
            conn.executemany(
                "INSERT OR IGNORE INTO metric_keys (name) VALUES (?)", [(k,) for k in missing]
            )
            marks = ", ".join("?" * len(missing))
            for kid, name in conn.execute(
                f"SELECT id, name FROM metric_keys WHERE name IN ({marks})", missing
            ):
                self._key_ids[name] = kid
        return np.array([self._key_ids[k] for k in keys], dtype=np.int64)

    def apply(self, db: sqlite_utils.Database, worker: str, chunks: list[Chunk]) -> dict[str, Any]:
        """Write the chunks in order; returns the high-water mark of every (run, attempt) they
        touched, and the ones refused with a status: 403 not this worker's (drop them), 409 a gap
        (keep them; nothing the worker still has can fill it)."""
        acks: dict[tuple[int, int], int] = {}
        refused: dict[tuple[int, int], tuple[int, str]] = {}
        for c in chunks:
            key = (c.run, c.attempt)
            if key in refused:
                continue
            if c.outcome is not None and (c.points or c.events):
                raise WireError("an outcome chunk carries no points or events")
            try:
                acks[key] = self._apply_one(db, worker, c)
            except Refused as e:
                refused[key] = (e.status, str(e))
        return {
            "acks": [[r, a, h] for (r, a), h in acks.items()],
            "refused": [[r, a, code, why] for (r, a), (code, why) in refused.items()],
        }

    def _apply_one(self, db: sqlite_utils.Database, worker: str, c: Chunk) -> int:
        conn = db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT worker, hwm FROM remote_attempts WHERE run_id = ? AND attempt = ?",
                [c.run, c.attempt],
            ).fetchone()
            if row is None or not holds(worker, row[0]):
                raise Refused(403, f"run {c.run} attempt {c.attempt} was not handed to {worker}")
            hwm = row[1]
            if c.last <= hwm:  # a retry: acknowledged, not written again
                conn.rollback()
                return hwm
            if c.first != hwm + 1:
                raise Refused(409, f"records {hwm + 1}..{c.first - 1} are missing")
            if c.outcome is not None:
                # Recorded before the mark moves: a crash between the two makes the retry
                # record it again, which the registry refuses as an illegal transition, so the
                # outcome is recorded once either way.
                conn.rollback()
                record_outcome(db, c.run, c.attempt, row[0], c.outcome)
                with conn:
                    conn.execute(
                        "UPDATE remote_attempts SET hwm = max(hwm, ?), last_at = ? "
                        "WHERE run_id = ? AND attempt = ?",
                        [c.last, time.time(), c.run, c.attempt],
                    )
                return c.last
            self._write(conn, c)
            conn.execute(
                "UPDATE remote_attempts SET hwm = ?, points = points + ?, last_at = ? "
                "WHERE run_id = ? AND attempt = ?",
                [c.last, c.points, time.time(), c.run, c.attempt],
            )
            conn.commit()
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        return c.last

    def _write(self, conn: sqlite3.Connection, c: Chunk) -> None:
        if c.points:
            kids = self._kids(conn, c.keys)[c.key_idx]
            steps = c.steps.astype(np.int64)
            values = c.values.astype(np.float64)
            conn.executemany(
                _INSERT_POINTS.format(run_id=c.run),
                zip(kids.tolist(), steps.tolist(), values.tolist(), strict=True),
            )
            conn.executemany(_UPSERT_BUCKETS, bucket_rows(c.run, kids, steps, values))
        if c.events:
            conn.executemany(
                _INSERT_EVENT,
                [
                    (c.run, int(step), str(kind)[:64], str(msg), _json(data), float(at))
                    for step, kind, msg, data, at in c.events
                ],
            )


def _json(data: Any) -> str:
    return data if isinstance(data, str) else json.dumps(data or {})


def record_outcome(
    db: sqlite_utils.Database, run_id: int, attempt: int, holder: str, outcome: dict[str, Any]
) -> str:
    """What ``StoreChannel.record`` and ``tasks._conclude`` do locally, for a remote attempt.
    Only the attempt that still holds the run records it; a late one is ignored."""
    from jobs.queue.sends import send_run

    status = outcome.get("status")
    if status not in OUTCOMES:
        raise WireError(f"outcome status must be one of {', '.join(OUTCOMES)}")
    run = registry.get_run(db, run_id)
    if run["status"] in TERMINAL or run["attempt"] != attempt or run["worker"] != holder:
        return "lost"
    error = outcome.get("error")
    summary = outcome.get("summary") if isinstance(outcome.get("summary"), dict) else None
    try:
        if status == "finished":
            registry.finish_run(db, run_id, summary or {})
        elif status == "diverged":
            registry.diverge_run(db, run_id, str(error or "diverged"), summary)
        elif status == "cancelled":
            registry.cancel_run(db, run_id, reason=error)
        elif status == "released":
            registry.release_run(db, run_id)
            send_run(db, run_id)
        else:
            registry.fail_run(db, run_id, str(error or "failed"), summary)
    except IllegalTransition:
        return "lost"
    msg = outcome.get("error_msg")
    if isinstance(msg, dict):
        db["runs"].update(run_id, {"error_msg": json.dumps(msg)})
    _next_turn(db, run["queue"])
    return status


def _next_turn(db: sqlite_utils.Database, queue: str) -> None:
    """As ``jobs.queue.tasks._next_turn``: with a running cap, a freed slot sends a turn."""
    from jobs.queue.sends import send_run
    from jobs.runs import quotas

    cap = quotas.max_running_per_user(db)
    if cap is None:
        return
    waiting = registry.fair_queue(db, queue, limit=1, max_running=cap)
    if waiting:
        send_run(db, waiting[0])


def hwm(db: sqlite_utils.Database, run_id: int, attempt: int) -> int:
    row = db.execute(
        "SELECT hwm FROM remote_attempts WHERE run_id = ? AND attempt = ?", [run_id, attempt]
    ).fetchone()
    return row[0] if row else 0


def run_held_by(db: sqlite_utils.Database, worker: str, run_id: int) -> dict[str, Any]:
    """The run, if ``worker`` holds it now (running); else Refused."""
    run = _run_or_refuse(db, run_id)
    if run["status"] != "running" or not holds(worker, run["worker"]):
        raise Refused(403, f"run {run_id} is not running on {worker}")
    return run
