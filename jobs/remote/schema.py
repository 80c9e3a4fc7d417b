"""The remote transport's tables, created on first use of the ingest or the token commands.

Kept beside the code that owns them while ``jobs/store/db.py``'s migrations are being moved
(the restructure of jobs/); every statement is ``IF NOT EXISTS`` or checks the column first,
so running it on every start is a no-op after the first.
"""

from __future__ import annotations

import sqlite_utils

_TABLES = (
    # A worker token is stored as the SHA-256 of a 256-bit random secret: a slow hash (scrypt)
    # protects guessable passwords, but nothing can guess 2**256, and every request checks it.
    """CREATE TABLE IF NOT EXISTS worker_tokens (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL,
        last_used_at REAL
    )""",
    # Per (run, attempt): which worker the attempt was handed to (only it may write records
    # for it) and the high-water mark of the records written: a chunk at or below it is a
    # retry and is acknowledged without being written again.
    """CREATE TABLE IF NOT EXISTS remote_attempts (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        worker TEXT NOT NULL,
        hwm INTEGER NOT NULL DEFAULT 0,
        points INTEGER NOT NULL DEFAULT 0,
        last_at REAL,
        PRIMARY KEY (run_id, attempt)
    )""",
    # The files a remote worker shipped into a run's folder, by content hash (a resume on
    # another worker downloads the checkpoint by it).
    """CREATE TABLE IF NOT EXISTS run_files (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded_at REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    )""",
)

# What a remote worker reports beside the local ones' columns (the Workers page shows them).
_WORKER_COLUMNS = {"spool_backlog": "INTEGER", "sync_lag_s": "REAL", "remote": "INTEGER"}

_done: set[str] = set()  # database files already checked by this process


def ensure(db: sqlite_utils.Database) -> None:
    """Create the tables and columns if they are missing (cheap after the first call)."""
    key = db.execute("PRAGMA database_list").fetchone()[2]
    if key in _done and db["worker_tokens"].exists():
        return
    for ddl in _TABLES:
        db.execute(ddl)
    have = {c.name for c in db["workers"].columns}
    for name, kind in _WORKER_COLUMNS.items():
        if name not in have:
            try:
                db.execute(f"ALTER TABLE workers ADD COLUMN {name} {kind}")
            except Exception as e:  # another process added it a moment ago
                if "duplicate column" not in str(e):
                    raise
    _done.add(key)
