"""The state a resumed run continues: counters, bests and the histories the rules read.

It travels in every checkpoint as ``checkpoint["state"]`` (plain numbers, lists and dicts, so
``torch.load(weights_only=True)`` reads it); :meth:`LoopState.load_state_dict` also reads the
dicts older versions of the engine wrote.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Keys older checkpoints carry that no field holds any more (never read, so safe to drop).
_RETIRED_KEYS = frozenset({"clip_steps"})


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer updates so far (the global step of every logged point)
    best_loss: float = math.inf  # best validation loss (mean member) so far …
    best_epoch: int = 0  # … the epoch it came from (0: none yet) …
    best_metric: float | None = None  # … and that epoch's metric
    member_metrics: list[float] | None = None  # T14: each member's metric at the best epoch
    bad_epochs: int = 0  # epochs in a row without a new best (early stopping, T7)
    # With class weights (imbalanced classes): the best epoch's (-balanced accuracy, loss)
    best_key: list[float] | None = None
    best_balanced: float | None = None  # … and its balanced accuracy
    n_cuts: int = 0  # LR cuts made
    first_cut_epoch: int = 0  # the epoch after which the first cut came (0: none yet)
    best_lr: float | None = None  # the LR that trained the best epoch (the range-test note)
    train_losses: list[float] = field(default_factory=list)  # one per epoch
    val_losses: list[float] = field(default_factory=list)  # one per epoch (mean member)
    val_metrics: list[float] = field(default_factory=list)  # one per epoch
    ratio_summary: list[float] = field(default_factory=list)  # T6 medians, bounded by keep_last
    grad_norms: list[float] = field(default_factory=list)  # T9 logged norms, bounded by keep_last
    initial_loss: float | None = None  # the first logged training loss (T5)
    fired: dict[str, int] = field(default_factory=dict)  # doctor rule → epoch it last warned
    findings: list[dict[str, Any]] = field(default_factory=list)  # every live finding reported
    preflight: list[dict[str, Any]] = field(default_factory=list)  # the pre-flight findings

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)  # deep copies: a saved dict never changes with the running state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take a dict from :meth:`state_dict` (or an older checkpoint); a key it lacks keeps
        its default. Raises ``ValueError`` on a key no version of the engine wrote."""
        names = {f.name for f in fields(self)}
        unknown = set(state) - names - _RETIRED_KEYS
        if unknown:
            raise ValueError(f"unknown loop state keys {sorted(unknown)}; expected {sorted(names)}")
        for name in names & set(state):
            setattr(self, name, state[name])


def keep_last(history: list, n: int) -> None:
    """Bound a per-step history the doctor reads only the tail of (it also goes into every
    checkpoint): trimmed to `n` once it reaches 2n, so the cost per step stays constant."""
    if len(history) >= 2 * n:
        del history[:-n]
