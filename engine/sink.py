"""How the engine reports: a small sink protocol plus two sinks that ship with it.

The engine never imports a database, a queue or a UI. It calls ``sink.log(step, values)`` for
metrics and ``sink.event(step, kind, message, data)`` for everything a user should see on a
timeline (LR cuts, early stops, clip bursts, doctor findings). ``jobs`` provides a sink that
writes to SQLite; tests use :class:`MemorySink`; the CLI uses :class:`ConsoleSink`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None:
        """Record scalar metrics at a global step (one step = one optimizer update)."""

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Record something that happened at ``step``: ``kind`` is a short machine name."""


# Event kinds the engine emits; the store and the UI key their annotations on these.
EVENT_KINDS = (
    "run_start",
    "preflight",  # a pre-flight doctor check (data: tip, severity, passed)
    "lr_cut",  # data: old_lr, new_lr, epoch, tip="T7"
    "lr_floor",  # run ended because the LR fell below the floor
    "early_stop",
    "best_restored",
    "clip_burst",  # clipping fired on many steps in a row (T9)
    "doctor",  # a live doctor finding (data: tip, severity, rule, suggestion)
    "diverged",
    "cancelled",
    "oom",  # the device ran out of memory; the run fails with a suggestion
    "checkpoint",
    "resumed",
    "run_end",
)


@dataclass
class MemorySink:
    """Keeps everything in lists; for tests and notebooks."""

    points: list[tuple[int, str, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.points.append((step, key, float(value)))

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append({"step": step, "kind": kind, "message": message, "data": data or {}})

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, v) for s, k, v in self.points if k == key]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]


class MultiSink:
    """Fans every call out to several sinks (e.g. the database writer and a console)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def log(self, step: int, values: dict[str, float]) -> None:
        for s in self.sinks:
            s.log(step, values)

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        for s in self.sinks:
            s.event(step, kind, message, data)
