"""What the registry's three tables share: JSON columns and inserts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlite_utils


def _decode(row: dict[str, Any], json_cols: Iterable[str]) -> dict[str, Any]:
    for c in json_cols:
        if row.get(c) is not None:
            row[c] = json.loads(row[c])
    return row


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _insert(table: sqlite_utils.db.Table, row: dict[str, Any]) -> int:
    """Insert ``row``; its new id."""
    table.insert(row)
    assert table.last_pk is not None
    return int(table.last_pk)
