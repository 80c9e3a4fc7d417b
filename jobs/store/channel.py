"""The one narrow interface between a run's process and the store.

Records go out (metric points, events, progress heartbeats, the final status); the run's
resolved spec and its cancel flag come in. ``jobs.queue.runner`` uses nothing else of the
store, so a remote transport (workers on other hosts, no shared disk) can replace
:class:`StoreChannel` with any object of the same shape (``jobs.queue.runner.RunChannel``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from engine.messages import Message
from jobs.errors import IllegalTransition
from jobs.store import registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter


class StoreChannel:
    """A run's channel to the local SQLite store (a context manager: closing flushes)."""

    def __init__(
        self, run_id: int, *, worker: str, heartbeat_s: float, cancel_poll_s: float
    ) -> None:
        self.run_id = run_id
        self.worker = worker
        self.heartbeat_s = heartbeat_s
        self.cancel_poll_s = cancel_poll_s
        self._db = connect()
        self._writer: MetricWriter | None = None
        self._last_beat = 0.0
        self._last_poll = 0.0
        self._cancel = False

    # --- in ------------------------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        """The run's resolved config, as validated and stored at submit."""
        return registry.get_run(self._db, self.run_id)["spec"]

    def dataset(self) -> dict[str, Any] | None:
        """The registered dataset the run was queued on (None when it was deleted)."""
        run = registry.get_run(self._db, self.run_id)
        if run.get("dataset_id") is None:
            return None
        try:
            return registry.get_dataset(self._db, run["dataset_id"])
        except LookupError:
            return None

    def cancel_requested(self) -> bool:
        """The run's cancel flag, read from the store at most every ``cancel_poll_s``."""
        now = time.monotonic()
        if not self._cancel and now - self._last_poll >= self.cancel_poll_s:
            self._last_poll = now
            self._cancel = registry.cancel_requested(self._db, self.run_id)
        return self._cancel

    # --- out -----------------------------------------------------------------------------------

    def __enter__(self) -> StoreChannel:
        self._writer = MetricWriter(db_path(), self.run_id)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def log(self, step: int, values: dict[str, float]) -> None:
        assert self._writer is not None, "use the channel as a context manager"
        self._writer.log(step, values)

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        assert self._writer is not None, "use the channel as a context manager"
        self._writer.event(step, kind, message, data)

    def flush(self, timeout: float = 30) -> None:
        """Commit what was logged so far (before a checkpoint: no epoch without its metrics)."""
        assert self._writer is not None, "use the channel as a context manager"
        self._writer.flush(timeout=timeout)

    def heartbeat(self, progress: float) -> None:
        """The run is alive and this far along (0..1); written at most every ``heartbeat_s``."""
        now = time.monotonic()
        if now - self._last_beat < self.heartbeat_s:
            return
        self._last_beat = now
        registry.heartbeat(self._db, self.run_id, worker=self.worker, progress=float(progress))

    def record(self, status: str, *, error: str | None = None, summary: dict | None = None) -> str:
        """Record the run's outcome; returns the status, or ``lost`` when the run was taken from
        this worker meanwhile (the new holder records it)."""
        db, run_id = self._db, self.run_id
        try:
            if status == "finished":
                registry.finish_run(db, run_id, summary or {})
            elif status == "diverged":
                registry.diverge_run(db, run_id, error or "diverged", summary)
            elif status == "cancelled":
                registry.cancel_run(db, run_id, reason=error)
            else:
                registry.fail_run(db, run_id, error or "failed", summary)
        except IllegalTransition as e:
            print(f"not recording {status}: {e}", file=sys.stderr)
            return "lost"
        if isinstance(error, Message):  # its code and params, for the reader's language
            db["runs"].update(run_id, {"error_msg": json.dumps(error.to_json())})
        return status
