"""Workers: the ``workers`` row each worker keeps up to date, and the list the pages show."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

_WORKER_FIELDS = (
    "host",
    "device",
    "gpu_name",
    "gpu_mem_total",
    "pid",
    "queue",
    "current_run",
    "last_seen",
    "started_at",
    "status",
    # a worker on another host (jobs.remote): its spool's backlog and how far behind it is
    "remote",
    "spool_backlog",
    "sync_lag_s",
)


def upsert_worker(db: sqlite_utils.Database, name: str, **fields: Any) -> None:
    """Create or update a worker's row; ``last_seen`` defaults to now."""
    unknown = set(fields) - set(_WORKER_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown worker fields {sorted(unknown)}; allowed: {', '.join(_WORKER_FIELDS)}"
        )
    now = time.time()
    row = {"name": name, **fields}
    row.setdefault("last_seen", now)
    db["workers"].upsert(row, pk="name")
    db.execute(
        "UPDATE workers SET started_at = ? WHERE name = ? AND started_at IS NULL", [now, name]
    )


def largest_gpu_mib(db: sqlite_utils.Database) -> int | None:
    """The most GPU memory (MiB) of any worker not stopped, alive or not; None without one."""
    row = db.execute(
        "SELECT max(gpu_mem_total) FROM workers WHERE gpu_mem_total IS NOT NULL "
        "AND status IS NOT 'stopped'"
    ).fetchone()
    return int(row[0]) if row and row[0] else None


def list_workers(
    db: sqlite_utils.Database, alive_within_s: float | None = 30
) -> list[dict[str, Any]]:
    """Workers seen within ``alive_within_s`` seconds (all if None), each with an ``alive`` flag."""
    cutoff = time.time() - (alive_within_s if alive_within_s is not None else 30)
    where, params = (" WHERE last_seen >= ?", [cutoff]) if alive_within_s is not None else ("", [])
    rows = list(db.query(f"SELECT * FROM workers{where} ORDER BY name", params))
    for r in rows:
        r["alive"] = r["last_seen"] is not None and r["last_seen"] >= cutoff
    return rows
