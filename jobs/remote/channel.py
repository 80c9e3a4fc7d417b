"""``RemoteChannel``: a run's channel on a remote worker, the same shape as ``StoreChannel``.

Records go into the worker's spool (``spool.py``), never straight to the network: ``log()`` and
``event()`` buffer in memory like the store's writer, a background thread appends a chunk to the
spool every ``flush_interval`` seconds (or at ``flush_points`` points), and the worker process
posts the spool to the server. ``flush()`` therefore waits only for the local disk, so a server
outage never stalls training, and a run process killed outright loses at most the records
buffered since the last chunk (its parent says how many steps that can be). The spec, the
dataset and the cancel flag come from the worker through the spool's control row.
"""

from __future__ import annotations

import atexit
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine.messages import Message
from jobs.remote import wire
from jobs.remote.spool import Spool


class RemoteChannel:
    """A run's channel through the spool (a context manager: closing spools what is left)."""

    def __init__(
        self,
        run_id: int,
        *,
        home: Path | str,
        cancel_poll_s: float = 0.5,
        flush_interval: float = 0.25,
        flush_points: int = 20_000,
    ) -> None:
        self.run_id = int(run_id)
        self.home = Path(home)
        self.cancel_poll_s = cancel_poll_s
        self.flush_interval = flush_interval
        self.flush_points = flush_points
        self._spool = Spool(self.home)
        handout = self._spool.handout(self.run_id)
        if handout is None:
            raise LookupError(f"run {run_id} was not handed to this worker (no spool control row)")
        self._handout = handout
        self.attempt = int(handout["attempt"])
        self._names: list[str] = []
        self._steps: list[int] = []
        self._values: list[float] = []
        self._events: list[list[Any]] = []
        self._records = 0
        self._buffered = 0
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._cycles_started = 0
        self._cycles_done = 0
        self._closing = False
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._last_poll = 0.0
        self._cancel = False
        self.points_spooled = 0
        self.last_error: str | None = None

    # --- in ------------------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        return self._handout["spec"]

    def dataset(self) -> dict[str, Any] | None:
        return self._handout.get("dataset")

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._last_poll >= self.cancel_poll_s:
            self._last_poll = now
            self._cancel = self._spool.cancel_requested(self.run_id)
        return self._cancel

    # --- out -----------------------------------------------------------------------------------

    def __enter__(self) -> RemoteChannel:
        self._thread = threading.Thread(
            target=self._run, name=f"RemoteChannel-run{self.run_id}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is None:
            return
        atexit.unregister(self.close)
        with self._cond:
            self._closing = True
        self._wake.set()
        self._thread.join()
        self._thread = None
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"spool of run {self.run_id} failed") from self._error

    def log(self, step: int, values: dict[str, float]) -> None:
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        vals = list(map(float, values.values()))
        names = list(values)
        with self._cond:
            self._names += names
            self._values += vals
            self._steps += [step] * len(vals)
            self._records += 1
            self._buffered += len(vals)
            buffered = self._buffered
        if buffered >= self.flush_points and not self._wake.is_set():
            self._wake.set()

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        if isinstance(message, Message):  # the store keeps its code and params beside the text
            data = {**(data or {}), "msg": message.to_json()}
        with self._cond:
            self._events.append([int(step), kind, str(message), data or {}, time.time()])
            self._records += 1
        self._wake.set()

    def flush(self, timeout: float = 30) -> None:
        """Block until everything logged so far is in the spool (on this worker's disk)."""
        with self._cond:
            target = self._cycles_started + 1
            self._wake.set()
            ok = self._cond.wait_for(
                lambda: self._cycles_done >= target or self._error is not None, timeout
            )
        self._check()
        if not ok:
            raise TimeoutError(f"records of run {self.run_id} not spooled within {timeout} s")

    def heartbeat(self, progress: float) -> None:
        """The worker reads the progress from the spool and sends it with its heartbeat."""
        self._spool.set_progress(self.run_id, float(progress))

    def record(self, status: str, *, error: str | None = None, summary: dict | None = None) -> str:
        """Spool the outcome as the run's last record (after everything logged before it); the
        server records it when it arrives, unless the run was taken from this worker meanwhile."""
        if self._thread is not None:
            self.flush()
        outcome = {
            "status": status,
            "error": None if error is None else str(error),
            "error_msg": error.to_json() if isinstance(error, Message) else None,
            "summary": summary,
        }
        seq = self._spool.next_seq(self.run_id, self.attempt)
        chunk = wire.Chunk(self.run_id, self.attempt, seq, seq, outcome=outcome)
        self._spool.append(self.run_id, self.attempt, seq, seq, 0, wire.encode(chunk), outcome=True)
        return status

    # --- background thread ---------------------------------------------------------------------

    def _run(self) -> None:
        spool = Spool(self.home)  # this thread's own connection
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                with self._cond:
                    closing = self._closing
                    names, steps, values = self._names, self._steps, self._values
                    events, records = self._events, self._records
                    self._names, self._steps, self._values, self._events = [], [], [], []
                    self._records = self._buffered = 0
                    self._cycles_started += 1
                    cycle = self._cycles_started
                if records:
                    try:
                        self._spool_chunk(spool, names, steps, values, events, records)
                    except sqlite3.OperationalError as e:
                        # The worker's disk is full or busy: keep the records, in order, and
                        # try again (flush() times out meanwhile, as the store's writer does).
                        self.last_error = str(e)
                        with self._cond:
                            self._names[:0], self._steps[:0], self._values[:0] = (
                                names,
                                steps,
                                values,
                            )
                            self._events[:0] = events
                            self._records += records
                            self._buffered += len(names)
                        if closing:
                            raise
                        time.sleep(0.5)
                        continue
                    self.last_error = None
                with self._cond:
                    self._cycles_done = cycle
                    self._cond.notify_all()
                if closing:
                    return
        except BaseException as e:
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:
            spool.close()

    def _spool_chunk(self, spool, names, steps, values, events, records) -> None:
        pos: dict[str, int] = {}
        for n in names:
            if n not in pos:
                pos[n] = len(pos)
        first = spool.next_seq(self.run_id, self.attempt)
        chunk = wire.Chunk(
            self.run_id,
            self.attempt,
            first,
            first + records - 1,
            keys=list(pos),
            key_idx=np.fromiter(map(pos.__getitem__, names), np.int32, len(names)),
            steps=np.array(steps, dtype=np.int64),
            values=np.array(values, dtype=np.float64),
            events=events,
        )
        spool.append(
            self.run_id, self.attempt, chunk.first, chunk.last, len(steps), wire.encode(chunk)
        )
        self.points_spooled += len(steps)
