"""The server's side of the remote transport, on the store: claims, heartbeats, records, outcomes.

Every function takes the database and the worker name a token proved (``tokens.authenticate``)
and refuses what that worker does not hold. Records are written exactly once per
(run, attempt, seq): each chunk's points, events and the attempt's new high-water mark commit in
one transaction (``jobs.store.remote.locked_attempt``), so a retried chunk (the ack was lost,
the worker restarted) is acknowledged again without being written twice. Points go through the
store's own statements (``jobs.store.remote.RecordWriter``: those of ``jobs.store.writer``, the
same rows and downsampled levels as a local run's writer). The statements are the store's
(``jobs.store.remote``, ``jobs.store.registry``); the rules are here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlite_utils

from engine.vocab import TERMINAL, RunStatus
from jobs.errors import IllegalTransition, LostClaim, RunNotFound
from jobs.remote.tokens import holds
from jobs.remote.wire import Chunk, WireError
from jobs.store import registry
from jobs.store import remote as store

S = RunStatus
OUTCOMES = (
    S.FINISHED,
    S.DIVERGED,
    S.CANCELLED,
    S.FAILED,
    "released",
)  # released: back to the queue


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
        store.start_attempt(db, candidate, claimed["attempt"], slot, time.time())
        return handout(db, claimed)
    return {"skipped": f"run {run_id} is {run['status']}"}


def handout(db: sqlite_utils.Database, run: dict[str, Any]) -> dict[str, Any]:
    ds = None
    if run.get("dataset_id") is not None:
        try:
            ds = registry.get_dataset(db, run["dataset_id"])
        except LookupError:
            ds = None
    return {
        "run_id": run["id"],
        "attempt": run["attempt"],
        "spec": run["spec"],
        "dataset": ds,
        "files": store.run_files(db, run["id"]),
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
    registry.upsert_worker(
        db,
        slot,
        **fields,
        pid=None,
        started_at=report.get("started_at"),
        remote=1,
        spool_backlog=int(report.get("backlog") or 0),
        sync_lag_s=float(report.get("lag_s") or 0.0),
    )


# --- records -------------------------------------------------------------------------------


class Ingest:
    """Writes chunks for one server process (its ``RecordWriter`` caches metric key ids)."""

    def __init__(self) -> None:
        self._records = store.RecordWriter()

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
        with store.locked_attempt(db, c.run, c.attempt) as row:
            if row is None or not holds(worker, row[0]):
                raise Refused(403, f"run {c.run} attempt {c.attempt} was not handed to {worker}")
            holder, hwm = row
            if c.last <= hwm:  # a retry: acknowledged, not written again
                return hwm
            if c.first != hwm + 1:
                raise Refused(409, f"records {hwm + 1}..{c.first - 1} are missing")
            if c.outcome is None:
                events = [
                    (int(step), str(kind)[:64], str(msg), _json(data), float(at))
                    for step, kind, msg, data, at in c.events
                ]
                self._records.write(db, c.run, c.keys, c.key_idx, c.steps, c.values, events)
                store.advance_mark(db, c.run, c.attempt, c.last, c.points, time.time())
                return c.last
        # An outcome, recorded after the (empty) transaction ends and before the mark moves: a
        # crash between the two makes the retry record it again, which the registry refuses as
        # an illegal transition, so the outcome is recorded once either way.
        record_outcome(db, c.run, c.attempt, holder, c.outcome)
        store.raise_mark(db, c.run, c.attempt, c.last, time.time())
        return c.last


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
    """The last record of (run, attempt) the server holds (0: none)."""
    return store.high_water_mark(db, run_id, attempt)


def run_held_by(db: sqlite_utils.Database, worker: str, run_id: int) -> dict[str, Any]:
    """The run, if ``worker`` holds it now (running); else Refused."""
    run = _run_or_refuse(db, run_id)
    if run["status"] != "running" or not holds(worker, run["worker"]):
        raise Refused(403, f"run {run_id} is not running on {worker}")
    return run
