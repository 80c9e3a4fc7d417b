"""ASHA's rungs and its promotion rule (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", MLSys 2020, algorithm 2), as pure functions.

Written here rather than taken from Optuna: Optuna's ``SuccessiveHalvingPruner`` (and Ray
Tune's ASHA) decides "stop now" when a trial reports, and a stopped trial never comes back.
Here a trial behind at a rung is *paused* (its run ends at the rung, its checkpoint kept) and
is *promoted* later when enough trials reach that rung for it to be in their top 1/η: the rule
ASHA's paper states, and the one that lets a sweep resume trials instead of restarting them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def rungs(min_epochs: int, eta: int, max_epochs: int) -> tuple[int, ...]:
    """The epochs a trial is judged at: r, r·η, r·η², … below ``max_epochs``, then
    ``max_epochs`` itself (the last rung is the whole budget)."""
    if min_epochs < 1 or eta < 2 or max_epochs < min_epochs:
        raise ValueError(
            f"rungs need 1 <= min_epochs <= max_epochs and eta >= 2, got "
            f"{min_epochs}, {eta}, {max_epochs}"
        )
    out, r = [], min_epochs
    while r < max_epochs:
        out.append(r)
        r *= eta
    out.append(max_epochs)
    return tuple(out)


@dataclass(frozen=True)
class TrialAtRungs:
    """What the rule needs of a trial: its number, whether it waits for a promotion (paused),
    and its score at each rung it finished (epochs → value)."""

    number: int
    paused: bool
    values: dict[int, float]


def promotion(
    trials: Sequence[TrialAtRungs], ladder: Sequence[int], eta: int, *, maximize: bool
) -> tuple[int, int] | None:
    """The trial to promote now and the rung (epochs) it goes on to, or None.

    From the highest rung down: among the trials that finished rung k, the best
    ⌊n_k / η⌋ are promotable; the best of them that is paused at k (not promoted yet, not
    over) goes on to rung k+1. Ties go to the older trial, so the choice is deterministic."""
    for k in range(len(ladder) - 2, -1, -1):
        at = ladder[k]
        scored = [t for t in trials if at in t.values and t.values[at] == t.values[at]]
        top = math.floor(len(scored) / eta)
        if top == 0:
            continue
        sign = -1.0 if maximize else 1.0
        best = sorted(scored, key=lambda t: (sign * t.values[at], t.number))[:top]
        for t in best:
            if t.paused and max(t.values) == at:
                return t.number, ladder[k + 1]
    return None
