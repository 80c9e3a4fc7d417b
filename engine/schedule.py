"""The T7 plateau rule, shared by the training loop and by the store's annotations.

Trainboard does not re-implement the plateau rule: both the loop and
:func:`simulate_plateau_cuts` drive ``torch.optim.lr_scheduler.ReduceLROnPlateau`` itself,
so "a cut would have helped here" marks on a fixed-LR run are exactly where a scheduled run
would have cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def make_plateau_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    factor: float,
    patience: int,
    threshold: float = 1e-4,
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


def simulate_plateau_cuts(
    values: Sequence[float],
    *,
    factor: float = 0.5,
    patience: int = 3,
    threshold: float = 1e-4,
    cooldown: int = 0,
    lr: float = 1.0,
    min_lr: float = 0.0,
    mode: str = "min",
) -> list[tuple[int, float, float]]:
    """Feed a validation series to a real ReduceLROnPlateau; return ``(index, old_lr, new_lr)``
    for every position where it would cut the LR (index into ``values``)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    sched = make_plateau_scheduler(
        opt, factor=factor, patience=patience, threshold=threshold, cooldown=cooldown,
        min_lr=min_lr, mode=mode,
    )
    cuts = []
    for i, v in enumerate(values):
        old = opt.param_groups[0]["lr"]
        sched.step(float(v))
        new = opt.param_groups[0]["lr"]
        if new < old:
            cuts.append((i, old, new))
    return cuts
