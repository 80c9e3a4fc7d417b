"""Datasets: add, read, list and delete (only while no active run reads one)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlite_utils

from engine.vocab import ACTIVE
from jobs.errors import (
    DatasetInUse,
    DatasetNotFound,
)
from jobs.store.registry._common import _decode, _insert

_DATASET_FIELDS = (
    "name",
    "path",
    "sha256",
    "size_bytes",
    "format",
    "target",
    "task",
    "owner",
    "created_at",
    "report",
)


def add_dataset(db: sqlite_utils.Database, **fields: Any) -> int:
    """Record a dataset; ``name`` is required, ``report`` may be a dict. Returns its id."""
    unknown = set(fields) - set(_DATASET_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown dataset fields {sorted(unknown)}; allowed: {', '.join(_DATASET_FIELDS)}"
        )
    if not fields.get("name"):
        raise ValueError("a dataset needs a non-empty name")
    row = dict(fields)
    row.setdefault("owner", "local")
    row.setdefault("created_at", time.time())
    if not isinstance(row.get("report"), str | None):
        row["report"] = json.dumps(row["report"])
    return _insert(db["datasets"], row)


def reads_dataset(data: dict[str, Any], ds: dict[str, Any]) -> bool:
    """Whether a run spec's ``data`` section names exactly the registered dataset ``ds``: its
    stored file and its target (an empty target and none are the same)."""
    return data.get("dataset") == ds["path"] and (data.get("target") or None) == (
        ds.get("target") or None
    )


def running_dataset_files(db: sqlite_utils.Database, sha256: str) -> list[tuple[str, str]]:
    """(worker, path) for each running run that reads the dataset with content hash ``sha256``
    (the file a worker on another host may download)."""
    rows = db.execute(
        "SELECT r.worker, d.path FROM runs r JOIN datasets d ON d.id = r.dataset_id "
        "WHERE r.status = 'running' AND d.sha256 = ?",
        [sha256],
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def get_dataset(db: sqlite_utils.Database, dataset_id: int) -> dict[str, Any]:
    """The dataset with ``report`` decoded; raises DatasetNotFound."""
    rows = list(db.query("SELECT * FROM datasets WHERE id = ?", [dataset_id]))
    if not rows:
        raise DatasetNotFound(f"no dataset with id {dataset_id}")
    return _decode(rows[0], ("report",))


def list_datasets(db: sqlite_utils.Database, *, owner: str | None = None) -> list[dict[str, Any]]:
    """All datasets (of ``owner`` if given), newest first."""
    where, params = (" WHERE owner = ?", [owner]) if owner is not None else ("", [])
    return [
        _decode(r, ("report",))
        for r in db.query(f"SELECT * FROM datasets{where} ORDER BY id DESC", params)
    ]


def delete_dataset(db: sqlite_utils.Database, dataset_id: int) -> dict[str, Any]:
    """Delete the dataset's record (not its file: ``jobs.datasets.ingest.remove``); refuses with
    DatasetInUse while a queued, running or lost run uses it. Runs that are over keep their
    record and lose the link. Returns the deleted row."""
    ds = get_dataset(db, dataset_id)
    marks = ", ".join("?" * len(ACTIVE))
    with db.conn:
        active = db.execute(
            f"SELECT id, status FROM runs WHERE dataset_id = ? AND status IN ({marks}) "
            "ORDER BY id LIMIT 5",
            [dataset_id, *ACTIVE],
        ).fetchall()
        if active:
            which = ", ".join(f"run {r[0]} ({r[1]})" for r in active)
            raise DatasetInUse(
                f"dataset {dataset_id} is used by {which}; cancel those runs or wait until "
                "they are over, then delete it"
            )
        db.execute("UPDATE runs SET dataset_id = NULL WHERE dataset_id = ?", [dataset_id])
        db.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])
    return ds
