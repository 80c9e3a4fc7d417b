"""Remote workers' tables (migration 8): ``worker_tokens``, ``remote_attempts`` (each attempt's
record high-water mark) and ``run_files`` (files shipped into a run's folder); and the ingest's
write of a remote run's records.

The rules around them (what a token may touch, when a chunk is a retry or a gap, which outcome
counts) are ``jobs.remote``'s; the statements are here. Exactly-once ingest rests on
:func:`locked_attempt`: a chunk's points, events and the attempt's new mark commit in one
``BEGIN IMMEDIATE`` transaction, whose first statement reads the mark under the write lock.
The worker's own spool (``jobs.remote.spool``) is not the store: it is a file on the worker's
host that the server never opens (docs/store.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import sqlite_utils

from jobs.store.writer import _INSERT_EVENT, _INSERT_POINTS, _UPSERT_BUCKETS, bucket_rows

# --- worker_tokens -------------------------------------------------------------------------


def save_token(db: sqlite_utils.Database, name: str, token_hash: str, now: float) -> None:
    """Worker ``name``'s token is now the one hashing to ``token_hash`` (an earlier one of that
    name, revoked or not, is replaced and forgotten)."""
    with db.conn:
        db.execute(
            "INSERT INTO worker_tokens (name, token_hash, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
            "created_at = excluded.created_at, revoked_at = NULL, last_used_at = NULL",
            [name, token_hash, now],
        )


def list_tokens(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every token's worker name and dates (never its hash), by name."""
    return list(
        db.query(
            "SELECT name, created_at, revoked_at, last_used_at FROM worker_tokens ORDER BY name"
        )
    )


def revoke_token(db: sqlite_utils.Database, name: str, now: float) -> bool:
    """Revoke ``name``'s token; False when it has none that is still active."""
    with db.conn:
        cur = db.execute(
            "UPDATE worker_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            [now, name],
        )
    return cur.rowcount == 1


def token_owner(db: sqlite_utils.Database, token_hash: str) -> tuple[str, float | None] | None:
    """(worker name, last used at) of the active token hashing to ``token_hash``, or None."""
    row = db.execute(
        "SELECT name, last_used_at FROM worker_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        [token_hash],
    ).fetchone()
    return (row[0], row[1]) if row else None


def touch_token(db: sqlite_utils.Database, name: str, now: float) -> None:
    with db.conn:
        db.execute("UPDATE worker_tokens SET last_used_at = ? WHERE name = ?", [now, name])


# --- remote_attempts -----------------------------------------------------------------------


def start_attempt(
    db: sqlite_utils.Database, run_id: int, attempt: int, worker: str, now: float
) -> None:
    """``worker`` claimed ``attempt`` of the run: its records start over from mark 0."""
    with db.conn:
        db.execute(
            "INSERT INTO remote_attempts (run_id, attempt, worker, last_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (run_id, attempt) DO UPDATE SET worker = excluded.worker, hwm = 0",
            [run_id, attempt, worker, now],
        )


def high_water_mark(db: sqlite_utils.Database, run_id: int, attempt: int) -> int:
    """The last record of (run, attempt) the store holds; 0 when none (or never handed out)."""
    row = db.execute(
        "SELECT hwm FROM remote_attempts WHERE run_id = ? AND attempt = ?", [run_id, attempt]
    ).fetchone()
    return row[0] if row else 0


@contextmanager
def locked_attempt(
    db: sqlite_utils.Database, run_id: int, attempt: int
) -> Iterator[tuple[str, int] | None]:
    """One write transaction around a chunk of (run, attempt): yields its (worker, mark) read
    under the write lock, or None when it was never handed out. What the body writes
    (:meth:`RecordWriter.write`, :func:`advance_mark`) commits together on a normal exit and not
    at all when it raises."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT worker, hwm FROM remote_attempts WHERE run_id = ? AND attempt = ?",
            [run_id, attempt],
        ).fetchone()
        yield (row[0], row[1]) if row else None
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def advance_mark(
    db: sqlite_utils.Database, run_id: int, attempt: int, last: int, points: int, now: float
) -> None:
    """Inside :func:`locked_attempt`: the attempt now holds records up to ``last``."""
    db.conn.execute(
        "UPDATE remote_attempts SET hwm = ?, points = points + ?, last_at = ? "
        "WHERE run_id = ? AND attempt = ?",
        [last, points, now, run_id, attempt],
    )


def raise_mark(db: sqlite_utils.Database, run_id: int, attempt: int, last: int, now: float) -> None:
    """In its own transaction: the mark moves up to ``last`` (never down)."""
    with db.conn:
        db.execute(
            "UPDATE remote_attempts SET hwm = max(hwm, ?), last_at = ? "
            "WHERE run_id = ? AND attempt = ?",
            [last, now, run_id, attempt],
        )


class RecordWriter:
    """Writes a remote run's points and events with the store's own statements (those of
    ``jobs.store.writer``: the same rows and downsampled levels as a local run's writer), for
    one server process; caches metric key ids (a name never changes id)."""

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

    def write(
        self,
        db: sqlite_utils.Database,
        run_id: int,
        keys: list[str],
        key_idx: np.ndarray,
        steps: np.ndarray,
        values: np.ndarray,
        events: Sequence[tuple[int, str, str, str, float]],
    ) -> None:
        """Inside :func:`locked_attempt`: points ``keys[key_idx[i]]`` = ``values[i]`` at
        ``steps[i]``, and events (step, kind, message, data as JSON, at)."""
        conn = db.conn
        if len(steps):
            kids = self._kids(conn, keys)[key_idx]
            steps = steps.astype(np.int64)
            values = values.astype(np.float64)
            conn.executemany(
                _INSERT_POINTS.format(run_id=run_id),
                zip(kids.tolist(), steps.tolist(), values.tolist(), strict=True),
            )
            conn.executemany(_UPSERT_BUCKETS, bucket_rows(run_id, kids, steps, values))
        if events:
            conn.executemany(_INSERT_EVENT, [(run_id, *e) for e in events])


# --- run_files -----------------------------------------------------------------------------


def save_run_file(
    db: sqlite_utils.Database, run_id: int, name: str, sha256: str, size: int, now: float
) -> None:
    """The run's folder now holds ``name`` with this content hash and size."""
    with db.conn:
        db.execute(
            "INSERT INTO run_files (run_id, name, sha256, size, uploaded_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
            "sha256 = excluded.sha256, size = excluded.size, uploaded_at = excluded.uploaded_at",
            [run_id, name, sha256, size, now],
        )


def run_files(db: sqlite_utils.Database, run_id: int) -> dict[str, dict[str, Any]]:
    """The files shipped into the run's folder: name -> {sha256, size}."""
    return {
        r["name"]: {"sha256": r["sha256"], "size": r["size"]}
        for r in db.query("SELECT name, sha256, size FROM run_files WHERE run_id = ?", [run_id])
    }
