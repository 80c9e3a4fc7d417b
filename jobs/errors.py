"""Named errors of the run registry and metric store.

StoreError
├── RunNotFound          no run with that id
├── DatasetNotFound      no dataset with that id
├── DatasetInUse         a dataset that active runs still use cannot be deleted
├── RunActive            a queued, running or lost run cannot be deleted
├── QuotaExceeded        the owner already has as many queued runs as allowed
├── IllegalTransition    the run is not in a status this change may start from
│   └── LostClaim        a worker heartbeats a run it no longer holds
└── WriterClosed         a MetricWriter was used after close(), or its flush thread failed
"""

from __future__ import annotations

from engine.errors import Refused

__all__ = ["Refused"]  # the door's one failure type (engine/errors.py); StoreError is one


class StoreError(Refused):
    """Base class of every error raised by ``jobs`` store modules."""


class RunNotFound(StoreError, LookupError):
    """No run with that id exists."""


class DatasetNotFound(StoreError, LookupError):
    """No dataset with that id exists."""


class DatasetInUse(StoreError):
    """The dataset cannot be deleted: runs still refer to it."""


class IllegalTransition(StoreError):
    """The run's status does not allow this change (e.g. finishing a queued run)."""

    def __init__(self, run_id: int, current: str | None, action: str, allowed: tuple[str, ...]):
        self.run_id = run_id
        self.current = current
        self.action = action
        self.allowed = allowed
        super().__init__(
            f"cannot {action} run {run_id}: its status is {current!r}, "
            f"and {action} is only allowed from {', '.join(allowed)}"
        )


class LostClaim(IllegalTransition):
    """A worker reported on a run it no longer holds (it was marked lost or re-claimed)."""


class WriterClosed(StoreError):
    """The metric writer is closed, or its background flush failed (the cause is chained)."""


class RunActive(StoreError):
    """The run is queued, running or lost: cancel it (or wait) before deleting it."""


class QuotaExceeded(StoreError):
    """The owner already has as many queued runs as one person may."""
