"""A sweep's search space: ``FIELD=SPEC`` lines, each a config field a member may set.

    optim.lr=log:1e-4:1        a float on a log scale (low > 0)
    model.dropout=0:0.5        a float on a linear scale
    train.batch_size=int:16:256    a whole number (``int:log:16:256`` on a log scale)
    optim.name=choice:sgd,adam     one of a few values (each read as an override value is)

Only the fields of ``jobs.runs.submit.member_fields`` (the same allowlist as the "More
settings" box and the A/B path); ``train.epochs`` is the sweep's budget, not a dimension.
Input is bounded before anything is built from it (length, dimensions, choices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.messages import Message

MAX_DIMS = 8
MAX_CHOICES = 16
MAX_TEXT = 200
KINDS = ("float", "int", "choice")
# Fields a sweep itself sets: the rungs' epochs; the seed is allowed (a dimension like any).
BUDGET_FIELDS = frozenset({"train.epochs"})


@dataclass(frozen=True)
class Dim:
    """One dimension: a config field and the values a trial may take."""

    field: str
    kind: str  # float | int | choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def corners(self) -> tuple[Any, ...]:
        """The values validated before a sweep starts: both ends, or every choice."""
        if self.kind == "choice":
            return self.choices
        if self.kind == "int":
            return (int(self.low), int(self.high))
        return (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "choices": list(self.choices),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dim:
        return cls(
            d["field"],
            d["kind"],
            d.get("low"),
            d.get("high"),
            bool(d.get("log")),
            tuple(d.get("choices") or ()),
        )

    def text(self) -> str:
        """The dimension as it is typed (the page's caption, the CLI's summary)."""
        if self.kind == "choice":
            return f"{self.field}=choice:{','.join(map(str, self.choices))}"
        head = ("int:" if self.kind == "int" else "") + ("log:" if self.log else "")
        return f"{self.field}={head}{self.low:g}:{self.high:g}"


def _refuse(text: str, msg: Message) -> ConfigError:
    return ConfigError(msg, {"space": msg, text[:MAX_TEXT]: msg})


def _number(raw: str) -> float | None:
    try:
        x = float(raw)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_dim(text: str) -> Dim:
    """One ``FIELD=SPEC`` line → a :class:`Dim`; ``ConfigError`` on ``space`` saying why not.
    The field is not checked here (:func:`parse_space` does, against the member allowlist)."""
    from engine.config import parse_override

    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise _refuse(str(text)[:MAX_TEXT], Message("sweep.space_long", limit=MAX_TEXT))
    syntax = Message("sweep.space_syntax", text=text)
    field, eq, spec = text.partition("=")
    field, spec = field.strip(), spec.strip()
    if not eq or not field or not spec:
        raise _refuse(text, syntax)
    head, _, rest = spec.partition(":")
    if head == "choice":
        raw = [c.strip() for c in rest.split(",", MAX_CHOICES)]
        if len(raw) > MAX_CHOICES:
            raise _refuse(text, Message("sweep.space_choices", field=field, limit=MAX_CHOICES))
        if not all(raw):
            raise _refuse(text, syntax)
        values = tuple(parse_override(f"x={c}")[1] for c in raw)
        if len(set(map(repr, values))) != len(values):
            raise _refuse(text, Message("sweep.space_range", field=field))
        return Dim(field, "choice", choices=values)
    kind = "int" if head == "int" else "float"
    if kind == "int":
        head, _, rest = rest.partition(":")
        spec = f"{head}:{rest}" if rest else head
    log = spec.startswith("log:")
    parts = (spec[4:] if log else spec).split(":")
    if len(parts) != 2:
        raise _refuse(text, syntax)
    low, high = _number(parts[0]), _number(parts[1])
    if low is None or high is None:
        raise _refuse(text, syntax)
    if kind == "int" and (low != int(low) or high != int(high)):
        raise _refuse(text, syntax)
    if not low < high:
        raise _refuse(text, Message("sweep.space_range", field=field))
    if log and low <= 0:
        raise _refuse(text, Message("sweep.space_log", field=field))
    return Dim(field, kind, low, high, log)


def parse_space(lines: list[str] | tuple[str, ...]) -> list[Dim]:
    """Every line of a search space; ``ConfigError`` (fields: ``space`` and each line at
    fault) for a bad line, a field a member may not set, a field named twice, none at all or
    too many."""
    from jobs.runs.submit import member_override_errors

    if not isinstance(lines, (list, tuple)) or not lines:
        msg = Message("sweep.space_empty")
        raise ConfigError(msg, {"space": msg})
    if len(lines) > MAX_DIMS:
        msg = Message("sweep.space_size", limit=MAX_DIMS)
        raise ConfigError(msg, {"space": msg})
    dims = [parse_dim(line) for line in lines]
    seen: set[str] = set()
    for d, line in zip(dims, lines, strict=True):
        if d.field in BUDGET_FIELDS:
            raise _refuse(line, Message("sweep.space_budget", field=d.field))
        if why := member_override_errors({d.field: None}):
            ((_, msg),) = why.items()
            raise ConfigError(msg, {"space": msg, d.field[:MAX_TEXT]: msg})
        if d.field in seen:
            raise _refuse(line, Message("sweep.space_twice", field=d.field))
        seen.add(d.field)
    return dims
