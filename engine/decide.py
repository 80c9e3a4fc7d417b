"""The loop's stop and cut decisions, as pure functions (decide first, then the loop acts).

Each function looks at the run's recent history and its settings and returns a
:class:`Decision`, or ``None`` when there is nothing to do; ``engine.train`` then emits the
decision's event and, for a stop, ends the run. The same split as Lightning's
``EarlyStopping._evaluate_stopping_criteria``. The LR cut itself is decided by torch's
``ReduceLROnPlateau`` (``engine.schedule``); :func:`lr_cut` and :func:`plateau_hint` only decide
how a cut, real or shadow, is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.messages import Message
from engine.vocab import EventKind, RunStatus, StopReason


class Action(StrEnum):
    REPORT = "report"  # emit the event; training goes on
    STOP = "stop"  # emit the event; the run ends, finished
    DIVERGE = "diverge"  # emit the event; the run ends, diverged


@dataclass(frozen=True)
class Decision:
    action: Action
    kind: EventKind  # the event the loop emits
    reason: str  # machine name; for a stop it becomes the summary's stop_reason
    tip: str
    message: Message
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        """How the run ends if the loop acts on this decision by stopping."""
        return RunStatus.DIVERGED if self.action is Action.DIVERGE else RunStatus.FINISHED


def lr_cut(old_lr: float, new_lr: float, *, epoch: int) -> Decision | None:
    """T7: report the cut the scheduler just made (nothing when the LR did not go down)."""
    if not new_lr < old_lr:
        return None
    return Decision(
        Action.REPORT,
        EventKind.LR_CUT,
        reason="plateau",
        tip="T7",
        message=Message("event.lr_cut", old=old_lr, new=new_lr),
        data={"tip": "T7", "old_lr": old_lr, "new_lr": new_lr, "epoch": epoch},
    )


def plateau_hint(old_lr: float, new_lr: float, *, epoch: int, patience: int) -> Decision | None:
    """T7 on a fixed-LR run: report where the shadow scheduler would have cut."""
    if not new_lr < old_lr:
        return None
    return Decision(
        Action.REPORT,
        EventKind.PLATEAU_HINT,
        reason="plateau",
        tip="T7",
        message=Message("event.plateau_hint", epochs=patience, old=old_lr, new=new_lr),
        data={"tip": "T7", "old_lr": old_lr, "new_lr": new_lr, "epoch": epoch},
    )


def lr_floor(lr: float, *, floor: float, epoch: int) -> Decision | None:
    """T7: once the schedule has cut the LR below the floor, the run is done."""
    if not lr < floor:
        return None
    return Decision(
        Action.STOP,
        EventKind.LR_FLOOR,
        reason=StopReason.LR_FLOOR,
        tip="T7",
        message=Message("event.lr_floor", lr=lr, floor=floor),
        data={"tip": "T7", "lr": lr, "floor": floor, "epoch": epoch},
    )


def early_stop(
    bad_epochs: int, *, patience: int | None, epoch: int, best_epoch: int
) -> Decision | None:
    """T7: stop after ``patience`` epochs in a row without a new best validation loss
    (``patience=None``: never)."""
    if patience is None or bad_epochs < patience:
        return None
    return Decision(
        Action.STOP,
        EventKind.EARLY_STOP,
        reason=StopReason.EARLY_STOP,
        tip="T7",
        message=Message("event.early_stop", epochs=bad_epochs),
        data={"tip": "T7", "epoch": epoch, "best_epoch": best_epoch},
    )


def diverged(
    latest: Mapping[str, float], *, lr: float, base_lr: float, clip_norm: float | None
) -> Decision | None:
    """T5: stop as diverged when any of the newest values (``{"train/loss": …, "grad/norm": …}``
    or ``{"val/loss": …}``) is NaN or infinite. ``lr`` is the LR now, ``base_lr`` the configured
    one that the suggestion divides by 10."""
    bad = [key for key, value in latest.items() if not math.isfinite(value)]
    if not bad:
        return None
    reason = (
        StopReason.NONFINITE_VAL_LOSS
        if all(key.startswith("val/") for key in bad)
        else StopReason.NONFINITE_LOSS
    )
    new_lr = f"{base_lr / 10:g}"
    return Decision(
        Action.DIVERGE,
        EventKind.DIVERGED,
        reason=reason,
        tip="T5",
        message=Message("event.diverged_clip" if clip_norm is None else "event.diverged"),
        data={
            "tip": "T5",
            "reason": reason,
            "lr": lr,
            "suggestion": f"optim.lr={new_lr}",
            "change": {"optim.lr": float(new_lr)},
        },
    )


CLIP_BURST_MIN_STEPS = 5  # shorter epochs say too little about how often clipping fires
CLIP_BURST_FRACTION = 0.5


def clip_burst(clipped: int, steps: int, *, bound: float | None, epoch: int) -> Decision | None:
    """T9: report an epoch in which the gradient was clipped on at least half the steps."""
    if bound is None or steps < CLIP_BURST_MIN_STEPS or clipped < CLIP_BURST_FRACTION * steps:
        return None
    return Decision(
        Action.REPORT,
        EventKind.CLIP_BURST,
        reason="clip_burst",
        tip="T9",
        message=Message("event.clip_burst", clipped=clipped, steps=steps, epoch=epoch),
        data={"tip": "T9", "epoch": epoch, "clipped": clipped, "steps": steps, "bound": bound},
    )
