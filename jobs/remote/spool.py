"""The worker's append-only spool: every record a run produces, kept on the worker's own disk
until the server acknowledges it.

One SQLite file (WAL) in the worker's data directory, shared by the worker process (which posts
chunks and deletes them once acknowledged) and its run processes (which append). A chunk is the
records ``first..last`` of one (run, attempt), encoded as it will be posted (``wire``). So a
server or network outage of any length loses nothing: runs keep training and appending, the
worker posts what is waiting when the server answers again. The small ``control`` table carries
the cancel flag and progress between the worker and its run process on the same host.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

SPOOL_FILE = "spool.db"

_DDL = (
    """CREATE TABLE IF NOT EXISTS chunks (
        run_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        points INTEGER NOT NULL,
        outcome INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (run_id, attempt, first)
    )""",
    """CREATE TABLE IF NOT EXISTS acked (
        run_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        hwm INTEGER NOT NULL,
        PRIMARY KEY (run_id, attempt)
    )""",
    """CREATE TABLE IF NOT EXISTS control (
        run_id INTEGER PRIMARY KEY,
        attempt INTEGER NOT NULL,
        cancel INTEGER NOT NULL DEFAULT 0,
        progress REAL,
        handout TEXT,
        updated_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS shipped (
        run_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
)


class Spool:
    """One connection to the spool (open one per thread and per process)."""

    def __init__(self, home: Path | str) -> None:
        self.path = Path(home) / SPOOL_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a committed chunk survives the process being killed (the case that matters
        # here); only an OS crash can drop the last commits.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        for ddl in _DDL:
            self.conn.execute(ddl)

    def close(self) -> None:
        self.conn.close()

    # --- run process side ----------------------------------------------------------------------

    def next_seq(self, run_id: int, attempt: int) -> int:
        """The seq the next record of (run, attempt) gets: numbering continues across restarts
        of the run's process on this worker."""
        row = self.conn.execute(
            "SELECT max(coalesce((SELECT max(last) FROM chunks WHERE run_id = ?1 AND attempt = ?2), 0),"
            " coalesce((SELECT hwm FROM acked WHERE run_id = ?1 AND attempt = ?2), 0))",
            [run_id, attempt],
        ).fetchone()
        return row[0] + 1

    def append(
        self,
        run_id: int,
        attempt: int,
        first: int,
        last: int,
        points: int,
        body: bytes,
        *,
        outcome: bool = False,
    ) -> None:
        self.conn.execute(
            "INSERT INTO chunks (run_id, attempt, first, last, points, outcome, created_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, attempt, first, last, points, int(outcome), time.time(), body],
        )

    def has_outcome(self, run_id: int, attempt: int) -> bool:
        """Whether the attempt's outcome is spooled (and not yet acknowledged)."""
        row = self.conn.execute(
            "SELECT 1 FROM chunks WHERE run_id = ? AND attempt = ? AND outcome = 1",
            [run_id, attempt],
        ).fetchone()
        return row is not None

    def cancel_requested(self, run_id: int) -> bool:
        row = self.conn.execute("SELECT cancel FROM control WHERE run_id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def set_progress(self, run_id: int, progress: float) -> None:
        self.conn.execute(
            "UPDATE control SET progress = ?, updated_at = ? WHERE run_id = ?",
            [progress, time.time(), run_id],
        )

    def handout(self, run_id: int) -> dict[str, Any] | None:
        import json

        row = self.conn.execute("SELECT handout FROM control WHERE run_id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # --- worker side ---------------------------------------------------------------------------

    def start_run(self, run_id: int, attempt: int, handout: dict[str, Any]) -> None:
        import json

        self.conn.execute(
            "INSERT INTO control (run_id, attempt, cancel, progress, handout, updated_at) "
            "VALUES (?, ?, 0, NULL, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
            "attempt = excluded.attempt, cancel = 0, progress = NULL, "
            "handout = excluded.handout, updated_at = excluded.updated_at",
            [run_id, attempt, json.dumps(handout), time.time()],
        )

    def set_cancel(self, run_id: int) -> None:
        self.conn.execute("UPDATE control SET cancel = 1 WHERE run_id = ?", [run_id])

    def progress(self, run_id: int) -> float | None:
        row = self.conn.execute(
            "SELECT progress FROM control WHERE run_id = ?", [run_id]
        ).fetchone()
        return row[0] if row else None

    def pending(self, max_bytes: int) -> list[tuple[int, int, int, int, bool, bytes]]:
        """The oldest waiting chunks, in record order per (run, attempt), up to ``max_bytes``
        (at least one): (run, attempt, first, last, outcome, body)."""
        out, size = [], 0
        cur = self.conn.execute(
            "SELECT run_id, attempt, first, last, outcome, body FROM chunks ORDER BY rowid"
        )
        for row in cur:
            if out and size + len(row[5]) > max_bytes:
                break
            out.append((row[0], row[1], row[2], row[3], bool(row[4]), row[5]))
            size += len(row[5]) + 4
        cur.close()
        return out

    def ack(self, run_id: int, attempt: int, hwm: int) -> None:
        """The server holds every record of (run, attempt) up to ``hwm``: forget them here."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute(
                "DELETE FROM chunks WHERE run_id = ? AND attempt = ? AND last <= ?",
                [run_id, attempt, hwm],
            )
            self.conn.execute(
                "INSERT INTO acked (run_id, attempt, hwm) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, attempt) DO UPDATE SET hwm = max(hwm, excluded.hwm)",
                [run_id, attempt, hwm],
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def drop(self, run_id: int, attempt: int) -> int:
        """Forget chunks the server refuses for good (the attempt is not this worker's)."""
        cur = self.conn.execute(
            "DELETE FROM chunks WHERE run_id = ? AND attempt = ?", [run_id, attempt]
        )
        return cur.rowcount

    def backlog(self, run_id: int | None = None) -> tuple[int, int, float]:
        """(chunks, points, seconds since the oldest waiting chunk was spooled)."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        n, pts, oldest = self.conn.execute(
            f"SELECT count(*), coalesce(sum(points), 0), min(created_at) FROM chunks {where}",
            params,
        ).fetchone()
        return n, pts, (time.time() - oldest) if oldest else 0.0

    def shipped(self, run_id: int, name: str) -> tuple[int, int, str] | None:
        row = self.conn.execute(
            "SELECT size, mtime_ns, sha256 FROM shipped WHERE run_id = ? AND name = ?",
            [run_id, name],
        ).fetchone()
        return tuple(row) if row else None

    def set_shipped(self, run_id: int, name: str, size: int, mtime_ns: int, sha: str) -> None:
        self.conn.execute(
            "INSERT INTO shipped (run_id, name, size, mtime_ns, sha256) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run_id, name) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
            [run_id, name, size, mtime_ns, sha],
        )
