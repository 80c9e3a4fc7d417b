"""How the engine reports: a small sink protocol plus the in-memory sink that ships with it.

The engine never imports a database, a queue or a UI. It calls ``sink.log(step, values)`` for
metrics, ``sink.event(step, kind, message, data)`` for everything a user should see on a
timeline (LR cuts, early stops, clip bursts, doctor findings; the kinds are
``engine.vocab.EventKind``) and ``sink.progress(fraction)`` after each epoch. ``jobs`` provides
a sink that writes to SQLite; tests use :class:`MemorySink`; the CLI uses
``engine.console.ConsoleSink``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None:
        """Record scalar metrics at a global step (one step = one optimizer update)."""

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        """Record something that happened at ``step``: ``kind`` is an ``EventKind`` (a str)."""

    def progress(self, fraction: float) -> None:
        """Called after each epoch with the fraction of the configured epochs done (0–1]."""


@dataclass
class MemorySink:
    """Keeps everything in lists; for tests and notebooks."""

    points: list[tuple[int, str, float]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    fractions: list[float] = field(default_factory=list)  # every progress() call

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.points.append((step, key, float(value)))

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.append({"step": step, "kind": kind, "message": message, "data": data or {}})

    def progress(self, fraction: float) -> None:
        self.fractions.append(fraction)

    def series(self, key: str) -> list[tuple[int, float]]:
        return [(s, v) for s, k, v in self.points if k == key]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]
