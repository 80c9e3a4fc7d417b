"""The T7 plateau rule, shared by the training loop and by the store's annotations.

Trainboard does not re-implement the plateau rule: both the loop and
:func:`simulate_plateau_cuts` drive ``torch.optim.lr_scheduler.ReduceLROnPlateau`` itself,
so "a cut would have helped here" marks on a fixed-LR run are exactly where a scheduled run
would have cut. The loop runs a :class:`ShadowPlateau` on fixed-LR runs and records its cuts as
``plateau_hint`` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine import optim


def make_plateau_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    factor: float,
    patience: int,
    threshold: float,
    cooldown: int = 0,
    min_lr: float = 0.0,
    mode: str = "min",
) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=mode,
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode="rel",
        cooldown=cooldown,
        min_lr=min_lr,
    )


class ShadowPlateau:
    """A real ReduceLROnPlateau driving a throwaway optimizer: it sees the run's validation
    values but changes nothing, so its cuts are hints ("a cut would have helped here") for a run
    with a fixed LR. ``state_dict``/``load_state_dict`` let a resumed run continue it."""

    def __init__(
        self,
        lr: float,
        *,
        factor: float,
        patience: int,
        threshold: float,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str = "min",
    ) -> None:
        self._opt = optim.make(torch.optim.SGD, [torch.nn.Parameter(torch.zeros(1))], lr=lr)
        self._sched = make_plateau_scheduler(
            self._opt,
            factor=factor,
            patience=patience,
            threshold=threshold,
            cooldown=cooldown,
            min_lr=min_lr,
            mode=mode,
        )

    @property
    def lr(self) -> float:
        return self._opt.param_groups[0]["lr"]

    def step(self, value: float) -> tuple[float, float] | None:
        """Feed one validation value; ``(old_lr, new_lr)`` when the scheduler cuts."""
        old = self.lr
        self._sched.step(float(value))
        return (old, self.lr) if self.lr < old else None

    def state_dict(self) -> dict[str, Any]:
        # The scheduler's own state leaves out the optimizer's LR, which a cut changed.
        return {"lr": self.lr, "scheduler": self._sched.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sched.load_state_dict(state["scheduler"])
        self._opt.param_groups[0]["lr"] = state["lr"]


def simulate_plateau_cuts(
    values: Sequence[float],
    *,
    factor: float,
    patience: int,
    threshold: float,
    cooldown: int = 0,
    lr: float = 1.0,
    min_lr: float = 0.0,
    mode: str = "min",
) -> list[tuple[int, float, float]]:
    """Feed a validation series to a real ReduceLROnPlateau; return ``(index, old_lr, new_lr)``
    for every position where it would cut the LR (index into ``values``)."""
    shadow = ShadowPlateau(
        lr,
        factor=factor,
        patience=patience,
        threshold=threshold,
        cooldown=cooldown,
        min_lr=min_lr,
        mode=mode,
    )
    cuts = []
    for i, v in enumerate(values):
        if cut := shadow.step(v):
            cuts.append((i, *cut))
    return cuts
