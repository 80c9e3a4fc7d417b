"""The metric writer: the engine's sink, batching points into SQLite from a background thread.

``log()``/``event()`` only append to an in-memory buffer (a lock and a list append); a
background thread commits everything buffered every ``flush_interval`` seconds, or as soon as
``flush_points`` points are waiting, in one ``BEGIN IMMEDIATE`` transaction that also updates the
downsampled levels of every series it touches. A process killed with SIGKILL therefore loses only
what was logged since the last commit; WAL recovery rolls back a half-done one.

Downsampled levels (``metrics_ds``): level ``i`` (1-based) groups steps into buckets of
``2 ** SHIFTS[i - 1]`` steps and stores per bucket the count, the minimum and the maximum with
the steps where they occur. The writer computes the batch's own buckets with numpy and merges
them into the stored ones with ``ON CONFLICT DO UPDATE`` keeping the smaller min and the larger
max, so a replayed point (a resumed run) never shrinks a bucket's range: min/max stay exact or
conservative; ``n`` then over-counts and is used only as a size estimate.
"""

from __future__ import annotations

import atexit
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.messages import Message
from jobs.errors import WriterClosed
from jobs.store.db import connect

# Bucket widths 2**5 .. 2**23 steps, a factor of 4 apart: a chart of 2,000 points over more than
# 16,000 points (shorter ranges are bucketed from raw points by the reader) always finds a level
# with 250–1,000 buckets in range, and the levels cost 1/32 + 1/128 + ... ≈ 1/24 of a row per
# point (≈ 2 bytes/point).
SHIFTS: tuple[int, ...] = (5, 7, 9, 11, 13, 15, 17, 19, 21, 23)

# The run id is the same for every row of a writer, so it is written into the statement (an
# int, formatted once per writer) rather than bound 1,000,000 times: one parameter less per row.
_INSERT_POINTS = (
    "INSERT INTO metrics (run_id, key_id, step, value) VALUES ({run_id:d}, ?, ?, ?) "
    "ON CONFLICT (run_id, key_id, step) DO UPDATE SET value = excluded.value"
)
# In an UPDATE every right-hand side sees the row's old values, so the CASEs compare against the
# stored min/max before either is replaced. NULL (an all-NaN bucket) never wins a comparison.
_UPSERT_BUCKETS = """
INSERT INTO metrics_ds (run_id, key_id, level, bucket, n, min_step, vmin, max_step, vmax)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, key_id, level, bucket) DO UPDATE SET
    n = n + excluded.n,
    min_step = CASE WHEN vmin IS NULL OR excluded.vmin < vmin THEN excluded.min_step ELSE min_step END,
    vmin = CASE WHEN vmin IS NULL OR excluded.vmin < vmin THEN excluded.vmin ELSE vmin END,
    max_step = CASE WHEN vmax IS NULL OR excluded.vmax > vmax THEN excluded.max_step ELSE max_step END,
    vmax = CASE WHEN vmax IS NULL OR excluded.vmax > vmax THEN excluded.vmax ELSE vmax END
"""
_INSERT_EVENT = (
    "INSERT INTO events (run_id, step, kind, message, data, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)


def bucket_rows(
    run_id: int, key_ids: np.ndarray, steps: np.ndarray, values: np.ndarray
) -> list[tuple[Any, ...]]:
    """Aggregate points into ``metrics_ds`` rows for every level (one numpy pass per level,
    each level built from the one below it, so the cost is dominated by the finest level)."""
    if len(steps) > 1 and bool(np.all(steps[1:] >= steps[:-1])):
        # The usual batch: steps ascending with keys interleaved; a stable sort by key suffices.
        order = np.argsort(key_ids, kind="stable")
    else:
        order = np.lexsort((steps, key_ids))
    k = key_ids[order]
    b = steps[order]  # bucket index at the current level; starts as the step itself
    v = values[order]
    nan = np.isnan(v)
    if nan.any():  # NaN never wins min/max
        lo, hi = np.where(nan, np.inf, v), np.where(nan, -np.inf, v)
    else:
        lo = hi = v
    lo_step = hi_step = b
    n = np.ones(len(b), dtype=np.int64)
    rows: list[tuple[Any, ...]] = []
    prev_shift = 0
    for level, shift in enumerate(SHIFTS, start=1):
        b = b >> (shift - prev_shift)
        prev_shift = shift
        new = np.empty(len(b), dtype=bool)
        new[0] = True
        np.not_equal(b[1:], b[:-1], out=new[1:])
        new[1:] |= k[1:] != k[:-1]
        starts = np.flatnonzero(new)
        gid = np.cumsum(new) - 1
        gmin = np.minimum.reduceat(lo, starts)
        gmax = np.maximum.reduceat(hi, starts)
        hit = np.flatnonzero(lo == gmin[gid])  # first position of each group's minimum
        first = hit[np.r_[True, gid[hit][1:] != gid[hit][:-1]]]
        new_lo_step = lo_step[first]
        hit = np.flatnonzero(hi == gmax[gid])
        first = hit[np.r_[True, gid[hit][1:] != gid[hit][:-1]]]
        new_hi_step = hi_step[first]
        k, b, n = k[starts], b[starts], np.add.reduceat(n, starts)
        lo, hi, lo_step, hi_step = gmin, gmax, new_lo_step, new_hi_step
        all_nan = np.isinf(lo) & (lo > 0) & np.isinf(hi) & (hi < 0)
        out_lo = np.where(all_nan, np.nan, lo)  # NaN binds as NULL
        out_hi = np.where(all_nan, np.nan, hi)
        rows.extend(
            zip(
                [run_id] * len(k),
                k.tolist(),
                [level] * len(k),
                b.tolist(),
                n.tolist(),
                lo_step.tolist(),
                out_lo.tolist(),
                hi_step.tolist(),
                out_hi.tolist(),
                strict=True,
            )
        )
    return rows


class MetricWriter:
    """Sink that stores a run's metrics and events in the database at ``db_path``.

    Thread-safe for callers; commits only on its own background thread. Use as a context
    manager or call :meth:`close`, which flushes everything still buffered.
    """

    def __init__(
        self,
        db_path: Path | str,
        run_id: int,
        *,
        flush_interval: float = 0.5,
        flush_points: int = 1000,
        max_buffered_points: int | None = None,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be > 0 seconds, got {flush_interval}")
        if flush_points < 1:
            raise ValueError(f"flush_points must be >= 1, got {flush_points}")
        self.db_path = Path(db_path)
        self.run_id = int(run_id)
        self.flush_interval = flush_interval
        self.flush_points = flush_points
        # Back-pressure: a producer far faster than SQLite waits instead of growing memory.
        self.max_buffered_points = max_buffered_points or max(20_000, 20 * flush_points)
        # The buffer is three flat, parallel columns (metric name, step, value): log() fills
        # them with C-level list.extend calls, and the flusher hands them to numpy and SQLite
        # without a per-point Python loop.
        self._names: list[str] = []
        self._steps: list[int] = []
        self._values: list[float] = []
        self._seen_names: set[str] = set()
        self._events: list[tuple[Any, ...]] = []
        self._buffered = 0
        self._lock = threading.Lock()  # guards the buffers; a plain Lock is the cheapest
        self._cond = threading.Condition(self._lock)  # same lock: flush and back-pressure waits
        self._wake = threading.Event()
        self._cycles_started = 0
        self._cycles_done = 0
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self.last_write_error: str | None = None  # the latest transient failure, e.g. disk full
        self._key_ids: dict[str, int] = {}
        self._insert_points = _INSERT_POINTS.format(run_id=self.run_id)
        self.points_written = 0
        self.commits = 0
        # The connection is opened on the caller's thread first so that a bad path or a failing
        # migration raises here, not later in the background.
        connect(self.db_path).close()
        self._thread = threading.Thread(
            target=self._run, name=f"MetricWriter-run{self.run_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    # --- the sink protocol (caller's thread: buffer only) -----------------------------------

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Buffer scalar metrics at ``step``."""
        # This is the training loop's hot path: a few attribute reads, one dict, one lock.
        if self._closed or self._error is not None:
            self._check_open()
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        try:
            vals = list(map(float, values.values()))
        except (TypeError, ValueError) as e:
            raise TypeError(f"metric values must be numbers, got {dict(values)!r}") from e
        names = list(values)  # same order as values() for the same, unmodified mapping
        if not self._seen_names.issuperset(names):
            self._check_names(names)
        n = len(vals)
        with self._lock:
            self._names += names
            self._values += vals
            self._steps += [step] * n
            self._buffered += n
            buffered = self._buffered
        if buffered >= self.flush_points:
            if not self._wake.is_set():  # set() takes a lock: only once per batch
                self._wake.set()
            if buffered > self.max_buffered_points:
                with self._cond:
                    while self._buffered > self.max_buffered_points and self._error is None:
                        self._cond.wait(0.1)

    def _check_names(self, names: list[str]) -> None:
        for name in names:
            if not isinstance(name, str) or not name:
                raise TypeError(f"metric names must be non-empty strings, got {name!r}")
        self._seen_names.update(names)

    def progress(self, fraction: float) -> None:
        """Part of the engine's sink protocol. A run's progress goes to its heartbeat
        (``jobs.store.channel``), not to the metric tables: the writer alone ignores it."""

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Buffer an event (committed with the next flush)."""
        self._check_open()
        if not kind or not isinstance(kind, str):
            raise ValueError(f"event kind must be a non-empty string, got {kind!r}")
        if isinstance(message, Message):  # the store keeps its code and params beside the text
            data = {**(data or {}), "msg": message.to_json()}
        row = (self.run_id, int(step), kind, str(message), json.dumps(data or {}), time.time())
        with self._cond:
            self._events.append(row)
            self._wake.set()

    # --- control ----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged before this call is committed."""
        self._check_open()
        with self._cond:
            target = self._cycles_started + 1
            self._wake.set()
            ok = self._cond.wait_for(
                lambda: self._cycles_done >= target or self._error is not None, timeout
            )
        if self._error is not None:
            raise WriterClosed(f"metric writer for run {self.run_id} failed") from self._error
        if not ok:
            why = f": {self.last_write_error}" if self.last_write_error else ""
            raise TimeoutError(
                f"metrics of run {self.run_id} could not be written for {timeout} s{why}; "
                "they are kept in memory until the database accepts them"
            )

    def close(self) -> None:
        """Flush what is buffered and stop the background thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        with self._cond:
            self._closing = True
        self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise WriterClosed(f"metric writer for run {self.run_id} failed") from self._error

    def __enter__(self) -> MetricWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise WriterClosed(f"metric writer for run {self.run_id} is closed")
        if self._error is not None:
            raise WriterClosed(f"metric writer for run {self.run_id} failed") from self._error

    # --- background thread ------------------------------------------------------------------

    def _run(self) -> None:
        db = None
        failures = 0
        try:
            db = connect(self.db_path)
            conn = db.conn
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                with self._cond:
                    closing = self._closing
                    batch = (self._names, self._steps, self._values)
                    self._names, self._steps, self._values = [], [], []
                    events, self._events = self._events, []
                    npoints, self._buffered = self._buffered, 0
                    self._cycles_started += 1
                    cycle = self._cycles_started
                    self._cond.notify_all()  # wake producers held back by max_buffered_points
                try:
                    if batch[0] or events:
                        self._write(conn, *batch, events)
                except sqlite3.OperationalError as e:
                    # Transient (busy beyond the timeout, disk full, I/O hiccup): keep the
                    # points, retry; flush() reports the reason if it has to give up waiting.
                    failures += 1
                    self.last_write_error = str(e)
                    with self._cond:
                        self._names[:0], self._steps[:0], self._values[:0] = batch
                        self._events[:0] = events
                        self._buffered += npoints
                    if closing and failures >= 3:
                        raise
                    time.sleep(min(0.1 * failures, 1.0))
                    continue
                failures = 0
                self.last_write_error = None
                with self._cond:
                    self.points_written += npoints
                    self._cycles_done = cycle
                    self._cond.notify_all()
                    if closing and not self._names and not self._events:
                        return
        except BaseException as e:  # surfaced to the caller by log()/flush()/close()
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:
            if db is not None:
                db.close()

    def _intern(self, conn: sqlite3.Connection, names: Iterable[str]) -> None:
        missing = sorted(set(names) - self._key_ids.keys())
        if not missing:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR IGNORE INTO metric_keys (name) VALUES (?)", [(n,) for n in missing]
            )
            marks = ", ".join("?" * len(missing))
            for kid, name in conn.execute(
                f"SELECT id, name FROM metric_keys WHERE name IN ({marks})", missing
            ):
                self._key_ids[name] = kid
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _write(
        self,
        conn: sqlite3.Connection,
        names: list[str],
        steps: list[int],
        values: list[float],
        events: list[tuple[Any, ...]],
    ) -> None:
        run, ids = self.run_id, self._key_ids
        # Key ids for the names column; a name not seen before is interned first.
        try:
            kids = list(map(ids.__getitem__, names))
        except KeyError:
            self._intern(conn, set(names))
            kids = list(map(ids.__getitem__, names))
        ds_rows: list[tuple[Any, ...]] = []
        if kids:
            ds_rows = bucket_rows(
                run,
                np.array(kids, dtype=np.int64),
                np.array(steps, dtype=np.int64),
                np.array(values, dtype=np.float64),
            )
        # Raw executemany rather than sqlite-utils' insert_all: the store's throughput target
        # (≥ 250k points/s) leaves no room for per-row dict building and column checks.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if kids:
                conn.executemany(self._insert_points, zip(kids, steps, values, strict=True))
                conn.executemany(_UPSERT_BUCKETS, ds_rows)
            if events:
                conn.executemany(_INSERT_EVENT, events)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        self.commits += 1
