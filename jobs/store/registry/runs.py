"""Runs: create, claim, heartbeat, finish, fail, cancel, requeue, reopen, delete; the fair
queue between users and the run listings. Every status change is one guarded UPDATE (see the
package's docstring)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from engine.vocab import ACTIVE, TERMINAL, RunStatus
from jobs.errors import (
    IllegalTransition,
    LostClaim,
    QuotaExceeded,
    RunActive,
    RunNotFound,
)
from jobs.store.db import RUN_STATUSES
from jobs.store.registry._common import _decode, _dumps, _insert

S = RunStatus
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.QUEUED: (S.RUNNING, S.CANCELLED, S.FAILED),
    S.RUNNING: (S.FINISHED, S.FAILED, S.DIVERGED, S.CANCELLED, S.LOST),
    S.LOST: (S.RUNNING, S.QUEUED, S.FAILED, S.CANCELLED),
    **{s: () for s in TERMINAL},
    # reopened to be resumed from their checkpoint (reopen_run), not a transition of the loop
    S.FAILED: (S.QUEUED,),
    S.CANCELLED: (S.QUEUED,),
}
REOPENABLE: tuple[str, ...] = (S.FAILED, S.CANCELLED, S.LOST)
_RUN_JSON = ("spec", "summary")


def create_run(
    db: sqlite_utils.Database,
    *,
    spec: dict[str, Any],
    preset: str,
    dataset_id: int | None = None,
    owner: str = "local",
    name: str | None = None,
    queue: str = "cpu",
    group_id: str | None = None,
    max_attempts: int = 3,
    max_queued: int | None = None,
    ab_arm: str | None = None,
) -> int:
    """Record a new run in status ``queued``; return its id.

    ``max_queued``: refuse (QuotaExceeded) when ``owner`` already has that many queued runs;
    the count and the insert are one statement, so parallel submits can't slip past it.
    ``ab_arm``: "A" or "B" for a run of an A/B group (``group_id``)."""
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict (JSON object), got {type(spec).__name__}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    if ab_arm not in (None, "A", "B") or (ab_arm and not group_id):
        raise ValueError(f"ab_arm must be 'A' or 'B' in a group, got {ab_arm!r}")
    row = {
        "name": name,
        "dataset_id": dataset_id,
        "preset": preset,
        "spec": json.dumps(spec),
        "status": "queued",
        "owner": owner,
        "queue": queue,
        "attempt": 0,
        "max_attempts": max_attempts,
        "created_at": time.time(),
        "cancel_requested": 0,
        "group_id": group_id,
    }
    if ab_arm:  # only then: the column is migration 6's, and most runs have no arm
        row["ab_arm"] = ab_arm
    if max_queued is None:
        return _insert(db["runs"], row)
    cols = ", ".join(row)
    with db.conn:
        cur = db.execute(
            f"INSERT INTO runs ({cols}) SELECT {', '.join('?' * len(row))} "
            "WHERE (SELECT count(*) FROM runs WHERE owner = ? AND status = 'queued') < ?",
            [*row.values(), owner, max_queued],
        )
    if cur.rowcount != 1:
        raise QuotaExceeded(queued_quota_message(owner, max_queued))
    return int(cur.lastrowid)


def queued_quota_message(owner: str, max_queued: int) -> str:
    return (
        f"{owner!r} already has {max_queued} runs waiting in the queue, the most one person may "
        "have (TRAINBOARD_MAX_QUEUED_PER_USER on the server); wait for some to start, or cancel "
        "some."
    )


def count_queued(db: sqlite_utils.Database, owner: str) -> int:
    return db.execute(
        "SELECT count(*) FROM runs WHERE owner = ? AND status = 'queued'", [owner]
    ).fetchone()[0]


def get_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """The run as a dict with ``spec``/``summary`` decoded; raises RunNotFound."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise RunNotFound(f"no run with id {run_id}")
    return _decode(rows[0], _RUN_JSON)


def _transition(
    db: sqlite_utils.Database,
    run_id: int,
    action: str,
    allowed_from: tuple[str, ...],
    sets: dict[str, Any],
    raw_sets: str = "",
    where: str = "",
    where_params: Iterable[Any] = (),
) -> None:
    cols = ", ".join([f"{c} = ?" for c in sets] + ([raw_sets] if raw_sets else []))
    marks = ", ".join("?" * len(allowed_from))
    cur = db.execute(
        f"UPDATE runs SET {cols} WHERE id = ? AND status IN ({marks}){where}",
        [*sets.values(), run_id, *allowed_from, *where_params],
    )
    if cur.rowcount == 1:
        return
    row = db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        raise RunNotFound(f"no run with id {run_id}")
    raise IllegalTransition(run_id, row[0], action, allowed_from)


def claim_run(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    worker: str,
    device: str,
    max_running: int | None = None,
) -> dict[str, Any]:
    """queued/lost -> running for ``worker`` on ``device``; counts an attempt; returns the run.
    ``max_running``: refused (IllegalTransition, the run stays as it was) while its owner
    already has that many running, counted in the same statement, so two workers claiming at
    once can't both pass."""
    now = time.time()
    where, params = "", []
    if max_running is not None:
        where = (
            " AND (SELECT count(*) FROM runs AS mine WHERE mine.owner = runs.owner "
            "AND mine.status = 'running') < ?"
        )
        params = [max_running]
    _transition(
        db,
        run_id,
        "claim",
        ("queued", "lost"),
        {
            "status": "running",
            "worker": worker,
            "device": device,
            "started_at": now,
            "heartbeat_at": now,
            "finished_at": None,
            "error": None,
        },
        raw_sets="attempt = attempt + 1",
        where=where,
        where_params=params,
    )
    return get_run(db, run_id)


def heartbeat(
    db: sqlite_utils.Database, run_id: int, *, worker: str, progress: float | None = None
) -> None:
    """Record that ``worker`` still runs the run; raises LostClaim if it no longer holds it."""
    cur = db.execute(
        "UPDATE runs SET heartbeat_at = ?, progress = coalesce(?, progress) "
        "WHERE id = ? AND status = 'running' AND worker = ?",
        [time.time(), progress, run_id, worker],
    )
    if cur.rowcount == 1:
        return
    run = get_run(db, run_id)
    raise LostClaim(
        run_id,
        run["status"],
        f"heartbeat (as worker {worker!r}; the run is held by {run['worker']!r})",
        ("running",),
    )


def finish_run(
    db: sqlite_utils.Database, run_id: int, summary: dict[str, Any] | None = None
) -> None:
    """running -> finished, storing the summary."""
    _transition(
        db,
        run_id,
        "finish",
        ("running",),
        {
            "status": "finished",
            "finished_at": time.time(),
            "summary": _dumps(summary),
            "progress": 1.0,
        },
    )


def fail_run(
    db: sqlite_utils.Database, run_id: int, error: str, summary: dict[str, Any] | None = None
) -> None:
    """queued/running/lost -> failed with an error message."""
    _transition(
        db,
        run_id,
        "fail",
        ACTIVE,
        {
            "status": "failed",
            "finished_at": time.time(),
            "error": error,
            "summary": _dumps(summary),
        },
    )


def diverge_run(
    db: sqlite_utils.Database, run_id: int, reason: str, summary: dict[str, Any] | None = None
) -> None:
    """running -> diverged (loss went NaN/inf or exploded), with the reason."""
    _transition(
        db,
        run_id,
        "diverge",
        ("running",),
        {
            "status": "diverged",
            "finished_at": time.time(),
            "error": reason,
            "summary": _dumps(summary),
        },
    )


def cancel_run(db: sqlite_utils.Database, run_id: int, reason: str | None = None) -> None:
    """queued/running/lost -> cancelled (for a running run, the worker calls this once stopped);
    ``reason``: why, when nobody asked (the time limit), shown with the status."""
    sets: dict[str, Any] = {"status": "cancelled", "finished_at": time.time()}
    if reason:
        sets["error"] = reason
    _transition(db, run_id, "cancel", ACTIVE, sets)


def request_cancel(db: sqlite_utils.Database, run_id: int) -> str:
    """Ask a run to stop: a running run gets the flag (its worker stops cooperatively), a queued
    or lost run is cancelled at once. Returns the run's status afterwards."""
    for _ in range(3):  # the run may be claimed between our two guarded updates; try again
        cur = db.execute(
            "UPDATE runs SET cancel_requested = 1 WHERE id = ? AND status = 'running'", [run_id]
        )
        if cur.rowcount == 1:
            return "running"
        try:
            _transition(
                db,
                run_id,
                "cancel",
                ("queued", "lost"),
                {"status": "cancelled", "finished_at": time.time(), "cancel_requested": 1},
            )
            return "cancelled"
        except IllegalTransition as e:
            if e.current != "running":
                raise IllegalTransition(run_id, e.current, "request cancel of", ACTIVE) from e
    raise IllegalTransition(run_id, "running", "request cancel of", ACTIVE)


def cancel_requested(db: sqlite_utils.Database, run_id: int) -> bool:
    """Whether a stop was requested for the run (what the engine's ``should_stop`` reads)."""
    row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        raise RunNotFound(f"no run with id {run_id}")
    return bool(row[0])


def cancels_among(db: sqlite_utils.Database, run_ids: Iterable[int]) -> list[int]:
    """Those of ``run_ids`` that are running with a stop requested, by id."""
    ids = set(run_ids)
    rows = db.execute(
        "SELECT id FROM runs WHERE status = 'running' AND cancel_requested = 1 ORDER BY id"
    ).fetchall()
    return [r for (r,) in rows if r in ids]


def running_holders(db: sqlite_utils.Database) -> list[tuple[int, str | None]]:
    """(id, worker) of every running run, by id."""
    rows = db.execute("SELECT id, worker FROM runs WHERE status = 'running' ORDER BY id")
    return [(r[0], r[1]) for r in rows.fetchall()]


def mark_lost(db: sqlite_utils.Database, run_id: int, reason: str) -> None:
    """running -> lost (its worker vanished or its heartbeat went stale)."""
    _transition(db, run_id, "mark lost", ("running",), {"status": "lost", "error": reason})


def release_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """running -> queued, handed back by a worker that shuts down cleanly (its run saved a
    checkpoint first). Unlike a lost run, this gives the attempt back: restarting a server
    three times must not fail a long run. Returns the run afterwards."""
    _transition(
        db,
        run_id,
        "release",
        ("running",),
        {"status": "queued", "worker": None, "heartbeat_at": None, "error": None},
        raw_sets="attempt = max(attempt - 1, 0)",
    )
    return get_run(db, run_id)


def requeue_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """lost -> queued while attempts remain, else lost -> failed with a clear message.
    Returns the run afterwards (check its ``status``)."""
    cur = db.execute(
        "UPDATE runs SET status = 'queued', worker = NULL, heartbeat_at = NULL "
        "WHERE id = ? AND status = 'lost' AND attempt < max_attempts",
        [run_id],
    )
    if cur.rowcount == 1:
        return get_run(db, run_id)
    run = get_run(db, run_id)
    message = (
        f"gave up after {run['attempt']} attempts (max_attempts={run['max_attempts']}); "
        f"last attempt was lost: {run['error'] or 'no reason recorded'}"
    )
    _transition(
        db,
        run_id,
        "requeue",
        ("lost",),
        {"status": "failed", "finished_at": time.time(), "error": message},
        where=" AND attempt >= max_attempts",
    )
    return get_run(db, run_id)


def reopen_run(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    spec: dict[str, Any] | None = None,
    max_queued: int | None = None,
    statuses: tuple[str, ...] = REOPENABLE,
) -> dict[str, Any]:
    """failed/cancelled/lost -> queued, to be resumed from its checkpoint by the next worker
    (the engine resumes whenever the run's folder holds one). The run gets fresh attempts and
    no cancel flag; ``spec`` replaces the stored one (e.g. more epochs). ``max_queued``: the
    owner's queued-run quota, checked in the same statement. ``statuses``: where it may come
    from (a sweep also reopens a trial that finished at a rung: ``jobs.sweeps``). Returns the
    run afterwards."""
    run = get_run(db, run_id)
    sets = {
        "status": "queued",
        "worker": None,
        "heartbeat_at": None,
        "finished_at": None,
        "error": None,
        "summary": None,
        "cancel_requested": 0,
        "attempt": 0,
    }
    if spec is not None:
        sets["spec"] = json.dumps(spec)
    where, params = "", []
    if max_queued is not None:
        where = " AND (SELECT count(*) FROM runs WHERE owner = ? AND status = 'queued') < ?"
        params = [run["owner"], max_queued]
    try:
        _transition(db, run_id, "resume", statuses, sets, where=where, where_params=params)
    except IllegalTransition as e:
        if max_queued is not None and e.current in statuses:
            raise QuotaExceeded(queued_quota_message(run["owner"], max_queued)) from e
        raise
    return get_run(db, run_id)


def delete_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """Delete a run that is over, with its metrics, events and send record, in one transaction.
    Raises RunActive while it is queued, running or lost. Returns the deleted row (its files
    are the caller's: ``jobs.runs.submit.delete_run``)."""
    run = get_run(db, run_id)
    db.execute("BEGIN IMMEDIATE")  # the status read and the deletes, with nobody in between
    try:
        status = db.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()[0]
        if status in ACTIVE:
            raise RunActive(
                f"run {run_id} is {status}; cancel it first (a run can be deleted once it is over)"
            )
        db.execute("UPDATE runs SET parent_run_id = NULL WHERE parent_run_id = ?", [run_id])
        for table in ("metrics", "metrics_ds", "events", "queue_sends"):
            db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        db.execute("DELETE FROM runs WHERE id = ?", [run_id])
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return run


def fair_queue(
    db: sqlite_utils.Database, queue: str, limit: int = 8, max_running: int | None = None
) -> list[int]:
    """Queued runs of ``queue`` in the order workers should take them, fair between users:
    each user's oldest queued run, users with the fewest running runs first, then the user who
    last had a run start longest ago, then the longest wait. With one user it is plain FIFO;
    with A's 100 runs ahead of B's one, B's run starts next. ``max_running``: users who already
    have that many running are left out (their runs wait for one of theirs to end)."""
    cap = "" if max_running is None else "WHERE coalesce(b.n, 0) < ?"
    rows = db.execute(
        f"""
        WITH waiting AS (
            SELECT owner, min(id) AS first FROM runs
            WHERE status = 'queued' AND queue = ? GROUP BY owner
        ),
        busy AS (
            SELECT owner, count(*) AS n FROM runs WHERE status = 'running' GROUP BY owner
        ),
        served AS (
            SELECT owner, max(started_at) AS t FROM runs
            WHERE started_at IS NOT NULL GROUP BY owner
        )
        SELECT w.first FROM waiting w
        LEFT JOIN busy b ON b.owner = w.owner
        LEFT JOIN served s ON s.owner = w.owner
        {cap}
        ORDER BY coalesce(b.n, 0), coalesce(s.t, 0), w.first
        LIMIT ?
        """,
        [queue, *([] if max_running is None else [max_running]), limit],
    ).fetchall()
    return [r[0] for r in rows]


def stale_runs(db: sqlite_utils.Database, older_than_s: float) -> list[dict[str, Any]]:
    """Running runs whose last heartbeat (or start) is older than ``older_than_s`` seconds."""
    cutoff = time.time() - older_than_s
    rows = db.query(
        "SELECT * FROM runs WHERE status = 'running' "
        "AND coalesce(heartbeat_at, started_at, created_at) < ? ORDER BY id",
        [cutoff],
    )
    return [_decode(r, _RUN_JSON) for r in rows]


def _run_filters(
    status: str | Iterable[str] | None,
    owner: str | None,
    dataset_id: int | None,
    preset: str | None,
    group_id: str | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = set(statuses) - set(RUN_STATUSES)
        if unknown:
            raise ValueError(
                f"unknown status {sorted(unknown)}; allowed: {', '.join(RUN_STATUSES)}"
            )
        clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += statuses
    for col, val in (
        ("owner", owner),
        ("dataset_id", dataset_id),
        ("preset", preset),
        ("group_id", group_id),
    ):
        if val is not None:
            clauses.append(f"{col} = ?")
            params.append(val)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_runs(
    db: sqlite_utils.Database,
    *,
    status: str | Iterable[str] | None = None,
    owner: str | None = None,
    dataset_id: int | None = None,
    preset: str | None = None,
    group_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Runs matching all given filters, newest first, one page of ``limit`` from ``offset``."""
    where, params = _run_filters(status, owner, dataset_id, preset, group_id)
    rows = db.query(
        f"SELECT * FROM runs{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
    )
    return [_decode(r, _RUN_JSON) for r in rows]


def ab_groups(db: sqlite_utils.Database, limit: int = 50) -> list[dict[str, Any]]:
    """The A/B groups (runs with an arm), newest first: ``group_id``, ``runs``, ``active``
    (queued, running or lost), ``a_id``/``b_id`` (each arm's first run) and ``dataset_id``."""
    active = ", ".join(f"'{s}'" for s in ACTIVE)
    rows = db.query(
        f"""SELECT group_id, count(*) AS runs, sum(status IN ({active})) AS active,
            min(CASE WHEN ab_arm = 'A' THEN id END) AS a_id,
            min(CASE WHEN ab_arm = 'B' THEN id END) AS b_id,
            min(dataset_id) AS dataset_id, max(id) AS last_id
        FROM runs WHERE ab_arm IS NOT NULL AND group_id IS NOT NULL
        GROUP BY group_id ORDER BY last_id DESC LIMIT ?""",
        [limit],
    )
    return list(rows)


def filter_values(db: sqlite_utils.Database) -> list[tuple[Any, Any, Any]]:
    """Every distinct (preset, owner, dataset_id) among the runs: what the run filters offer."""
    return db.execute("SELECT DISTINCT preset, owner, dataset_id FROM runs").fetchall()


def status_counts(db: sqlite_utils.Database) -> dict[str, int]:
    """How many runs are in each status (statuses with none are left out)."""
    return dict(db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())


def count_runs(
    db: sqlite_utils.Database,
    *,
    status: str | Iterable[str] | None = None,
    owner: str | None = None,
    dataset_id: int | None = None,
    preset: str | None = None,
    group_id: str | None = None,
) -> int:
    """How many runs match the filters (for paging)."""
    where, params = _run_filters(status, owner, dataset_id, preset, group_id)
    return db.execute(f"SELECT count(*) FROM runs{where}", params).fetchone()[0]
