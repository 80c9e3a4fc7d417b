"""Reading metrics for charts: spike-preserving downsampled series, live increments, events, export.

:func:`series` returns at most ``max_points`` points per key. A range that holds more is
downsampled into at most ``(max_points - 3) // 2`` buckets, each drawn as its minimum and its
maximum at the steps where they occurred, plus the true last point: ranges of up to
``RAW_BUCKETING_FACTOR * max_points`` points are bucketed from the raw points, longer ones read one
stored level (see :mod:`jobs.store.writer`), so a chart of a million-step series reads about as many
rows as it draws, and no spike (global or local extreme) is ever averaged away.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from jobs.runs.format import csv_safe
from jobs.store.writer import SHIFTS

_NO_LOWER_BOUND = -(2**62)
RAW_BUCKETING_FACTOR = 8


@dataclass
class SeriesData:
    """One key's points, in step order. ``vmin``/``vmax`` are the band of the bucket a point
    stands for (equal to ``value`` where not downsampled)."""

    key: str
    step: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    vmin: list[float] = field(default_factory=list)
    vmax: list[float] = field(default_factory=list)
    downsampled: bool = False
    level: int = 0  # 0 = raw points, else the metrics_ds level read

    def __len__(self) -> int:
        return len(self.step)

    @property
    def last_step(self) -> int | None:
        """Step of the last point; pass it back as ``since_step`` for the next live read."""
        return self.step[-1] if self.step else None


def _f(v: float | None) -> float:
    return math.nan if v is None else v


def _key_ids(db: sqlite_utils.Database, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    rows = db.execute(f"SELECT name, id FROM metric_keys WHERE name IN ({marks})", names)
    return dict(rows.fetchall())


def series(
    db: sqlite_utils.Database,
    run_id: int,
    keys: str | Iterable[str],
    *,
    max_points: int = 2000,
    since_step: int | Mapping[str, int | None] | None = None,
) -> dict[str, SeriesData]:
    """Chart data for ``keys`` of a run, at most ``max_points`` points per key.

    ``since_step`` (an int, or a per-key mapping such as ``{k: s.last_step}``) limits the read to
    points with a greater step: a live chart passes what it already has and gets only new points.
    Prefer the per-key form: keys logged at different moments can have different last steps.
    All keys are read in one snapshot, so a read never sees half a commit.
    """
    names = [keys] if isinstance(keys, str) else list(keys)
    if max_points < 8:
        raise ValueError(f"max_points must be >= 8, got {max_points}")
    conn = db.conn
    own_txn = not conn.in_transaction
    if own_txn:
        conn.execute("BEGIN")  # one read snapshot for every key
    try:
        ids = _key_ids(db, names)
        lows = {}
        for name in names:
            since = since_step.get(name) if isinstance(since_step, Mapping) else since_step
            lows[name] = _NO_LOWER_BOUND if since is None else int(since) + 1
        # One statement fetches up to max_points + 1 raw points of every key: that answers a
        # live refresh (a few new points per key) in a single round trip; only keys with more
        # points than the chart can draw go on to the downsampled path.
        found = [n for n in names if n in ids]
        raw: dict[int, list[tuple[int, float | None]]] = {ids[n]: [] for n in found}
        if found:
            sql = " UNION ALL ".join(
                "SELECT * FROM (SELECT key_id, step, value FROM metrics WHERE run_id = ? "
                "AND key_id = ? AND step >= ? ORDER BY step LIMIT ?)"
                for _ in found
            )
            params = [p for n in found for p in (run_id, ids[n], lows[n], max_points + 1)]
            for kid, step, value in conn.execute(sql, params):
                raw[kid].append((step, value))
        out = {}
        for name in names:
            rows = raw.get(ids.get(name, -1))
            if not rows:
                out[name] = SeriesData(name)
            elif len(rows) <= max_points:
                values = [_f(r[1]) for r in rows]
                out[name] = SeriesData(name, [r[0] for r in rows], values, values[:], values[:])
            else:
                out[name] = _downsampled(db, run_id, name, ids[name], lows[name], max_points)
        return out
    finally:
        if own_txn:
            conn.execute("COMMIT")


def _downsampled(
    db: sqlite_utils.Database, run_id: int, name: str, kid: int, lo: int, max_points: int
) -> SeriesData:
    ex = db.conn.execute
    last = ex(
        "SELECT step, value FROM metrics WHERE run_id = ? AND key_id = ? AND step >= ? "
        "ORDER BY step DESC LIMIT 1",
        (run_id, kid, lo),
    ).fetchone()

    budget = (max_points - 3) // 2
    # Mid-sized ranges (up to RAW_BUCKETING_FACTOR x max_points points): bucket the raw points
    # here, at full chart resolution; the stored levels would give only a few hundred buckets.
    n_mid = ex(
        "SELECT count(*) FROM (SELECT 1 FROM metrics WHERE run_id = ? AND key_id = ? "
        "AND step >= ? LIMIT ?)",
        (run_id, kid, lo, RAW_BUCKETING_FACTOR * max_points + 1),
    ).fetchone()[0]
    if n_mid <= RAW_BUCKETING_FACTOR * max_points:
        rows = ex(
            "SELECT step, value FROM metrics WHERE run_id = ? AND key_id = ? AND step >= ? "
            "ORDER BY step",
            (run_id, kid, lo),
        ).fetchall()
        return _bucket_raw(name, rows, budget)
    # Long ranges read a stored level. The first (possibly partial) bucket is summarised from
    # raw points, so that a live read "since step N" never reports an extreme from before N.
    level, shift = _pick_level(db, run_id, kid, lo, last[0], budget)
    first_full = lo if lo == _NO_LOWER_BOUND else -((-lo) >> shift) << shift  # ceil to bucket
    pts: list[tuple[int, float, float, float]] = []  # (step, value, band min, band max)
    if first_full > lo:
        edge = ex(
            "SELECT step, value FROM metrics WHERE run_id = ? AND key_id = ? "
            "AND step >= ? AND step < ? ORDER BY step",
            (run_id, kid, lo, first_full),
        ).fetchall()
        pts += _extremes(edge)
    for _b, smin, vmin, smax, vmax in ex(
        "SELECT bucket, min_step, vmin, max_step, vmax FROM metrics_ds "
        "WHERE run_id = ? AND key_id = ? AND level = ? AND bucket >= ? ORDER BY bucket",
        (run_id, kid, level, first_full >> shift),
    ):
        vmin, vmax = _f(vmin), _f(vmax)
        if smin == smax:
            pts.append((smin, vmin, vmin, vmax))
        elif smin < smax:
            pts += [(smin, vmin, vmin, vmax), (smax, vmax, vmin, vmax)]
        else:
            pts += [(smax, vmax, vmin, vmax), (smin, vmin, vmin, vmax)]
    # The true last point always ends the series (its stored value, not a bucket's).
    last_step, last_value = last[0], _f(last[1])
    while pts and pts[-1][0] >= last_step:
        pts.pop()
    pts.append((last_step, last_value, last_value, last_value))
    return SeriesData(
        name,
        [p[0] for p in pts],
        [p[1] for p in pts],
        [p[2] for p in pts],
        [p[3] for p in pts],
        downsampled=True,
        level=level,
    )


def _bucket_raw(name: str, rows: list[tuple[int, float | None]], budget: int) -> SeriesData:
    """Min and max point of each of ``budget`` equal step ranges, plus the last point."""
    steps = np.array([r[0] for r in rows], dtype=np.int64)
    vals = np.array([math.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    width = -(-(int(steps[-1]) - int(steps[0]) + 1) // budget)  # ceil
    b = (steps - steps[0]) // width
    new = np.r_[True, b[1:] != b[:-1]]
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    nan = np.isnan(vals)
    lo = np.where(nan, np.inf, vals)
    hi = np.where(nan, -np.inf, vals)
    gmin, gmax = np.minimum.reduceat(lo, starts), np.maximum.reduceat(hi, starts)
    picks = []
    for arr, g in ((lo, gmin), (hi, gmax)):
        hit = np.flatnonzero(arr == g[gid])
        picks.append(hit[np.r_[True, gid[hit][1:] != gid[hit][:-1]]])
    idx = np.union1d(np.union1d(picks[0], picks[1]), [len(steps) - 1])  # sorted by step
    band_lo = np.where(np.isinf(gmin) & (gmin > 0), np.nan, gmin)[gid[idx]]
    band_hi = np.where(np.isinf(gmax) & (gmax < 0), np.nan, gmax)[gid[idx]]
    band_lo[-1] = band_hi[-1] = vals[-1]
    return SeriesData(
        name,
        steps[idx].tolist(),
        vals[idx].tolist(),
        band_lo.tolist(),
        band_hi.tolist(),
        downsampled=True,
    )


def _pick_level(
    db: sqlite_utils.Database, run_id: int, kid: int, lo: int, hi: int, budget: int
) -> tuple[int, int]:
    """The finest level with at most ``budget`` buckets in [lo, hi]. A level whose bucket span
    already fits is certain; finer ones are tried first with a bounded count (sparse series)."""
    lo_clamped = max(lo, 0)
    certain = len(SHIFTS)
    for level, shift in enumerate(SHIFTS, start=1):
        if (hi >> shift) - (lo_clamped >> shift) + 1 <= budget:
            certain = level
            break
    for level in range(1, certain):
        shift = SHIFTS[level - 1]
        start = -((-lo) >> shift) if lo != _NO_LOWER_BOUND else _NO_LOWER_BOUND
        n = db.conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM metrics_ds WHERE run_id = ? AND key_id = ? "
            "AND level = ? AND bucket >= ? LIMIT ?)",
            (run_id, kid, level, start, budget + 1),
        ).fetchone()[0]
        if n <= budget:
            return level, shift
    return certain, SHIFTS[certain - 1]


def _extremes(rows: list[tuple[int, float | None]]) -> list[tuple[int, float, float, float]]:
    vals = [(s, v) for s, v in rows if v is not None]
    if not vals:
        return [(s, math.nan, math.nan, math.nan) for s, _ in rows[:1]]
    smin, vmin = min(vals, key=lambda p: p[1])
    smax, vmax = max(vals, key=lambda p: p[1])
    pts = sorted({(smin, vmin), (smax, vmax)})
    return [(s, v, vmin, vmax) for s, v in pts]


def last_step(db: sqlite_utils.Database, run_id: int, key: str) -> int | None:
    """The step of a key's newest point (None before it has one): one primary-key seek."""
    row = db.execute(
        "SELECT step FROM metrics WHERE run_id = ? AND "
        "key_id = (SELECT id FROM metric_keys WHERE name = ?) ORDER BY step DESC LIMIT 1",
        [run_id, key],
    ).fetchone()
    return row[0] if row else None


def keys(db: sqlite_utils.Database, run_id: int) -> list[str]:
    """Names of the metrics a run has logged, sorted.

    Every point lands in every level, so the coarsest level lists them all. Each known key is
    probed with the full primary-key prefix (run_id, key_id, level): a few index lookups, where
    filtering ``metrics_ds`` on (run_id, level) alone walks every bucket of every level of the
    run (~26 ms on a 1,000,000-step run, a third of the run page's chart data)."""
    rows = db.execute(
        "SELECT k.name FROM metric_keys k WHERE EXISTS (SELECT 1 FROM metrics_ds d "
        "WHERE d.run_id = ? AND d.key_id = k.id AND d.level = ?) ORDER BY k.name",
        [run_id, len(SHIFTS)],
    )
    return [r[0] for r in rows]


def events(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    since_id: int | None = None,
    kinds: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """A run's events in the order they were written (``id`` increases); ``data`` decoded.
    Pass the last seen ``id`` as ``since_id`` for live refresh."""
    sql = "SELECT * FROM events WHERE run_id = ?"
    params: list[Any] = [run_id]
    if since_id is not None:
        sql += " AND id > ?"
        params.append(since_id)
    if kinds is not None:
        kinds = list(kinds)
        sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
        params += kinds
    rows = list(db.query(sql + " ORDER BY id", params))
    for r in rows:
        r["data"] = json.loads(r["data"]) if r["data"] else {}
    return rows


def write_points_csv(db: sqlite_utils.Database, run_id: int, out: Any) -> int:
    """Every stored point of the run as CSV rows ``key, step, value`` (by key, then step) into
    the text stream ``out``, streamed in batches; a key that begins with ``=``, ``+``, ``-`` or
    ``@`` is made safe for spreadsheets (``csv_safe``). Returns the row count."""
    cur = db.execute(
        "SELECT k.name, m.step, m.value FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE m.run_id = ? ORDER BY k.name, m.step",
        [run_id],
    )
    w = csv.writer(out)
    w.writerow(["key", "step", "value"])
    n = 0
    while chunk := cur.fetchmany(50_000):
        w.writerows((csv_safe(k), step, v) for k, step, v in chunk)
        n += len(chunk)
    return n


def export_metrics(
    db: sqlite_utils.Database, run_id: int, path: Path | str, fmt: str = "csv"
) -> int:
    """Write every stored point of the run as long rows ``key, step, value`` (sorted by key,
    then step) to CSV or Parquet; NaN is written as an empty cell / null. Returns the row count."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cur = db.execute(
        "SELECT k.name, m.step, m.value FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE m.run_id = ? ORDER BY k.name, m.step",
        [run_id],
    )
    n = 0
    if fmt == "csv":
        cur.close()
        with path.open("w", newline="") as f:
            return write_points_csv(db, run_id, f)
    import pyarrow as pa  # only exports need pyarrow; keep it off the import path of the store
    import pyarrow.parquet as pq

    schema = pa.schema([("key", pa.string()), ("step", pa.int64()), ("value", pa.float64())])
    with pq.ParquetWriter(str(path), schema) as w:
        while chunk := cur.fetchmany(200_000):
            k, s, v = zip(*chunk, strict=True)
            w.write_table(pa.table([list(k), list(s), list(v)], schema=schema))
            n += len(chunk)
    return n
