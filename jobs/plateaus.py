"""Plateau annotations for any stored validation series, with or without a scheduler.

:func:`find_plateaus` replays a run's stored validation series through the engine's own plateau
rule (:func:`engine.schedule.simulate_plateau_cuts`, a real ``ReduceLROnPlateau``), so a run with
a fixed LR gets "a cut would have helped here" marks exactly where a scheduled run would cut.
"""

from __future__ import annotations

import math
from typing import Any

import sqlite_utils

_MAX_MODE_HINTS = ("acc", "accuracy", "auc", "f1", "precision", "recall", "r2")


def _stored(db: sqlite_utils.Database, run_id: int, key: str) -> list[tuple[int, float]]:
    rows = db.execute(
        "SELECT m.step, m.value FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE m.run_id = ? AND k.name = ? ORDER BY m.step",
        [run_id, key],
    ).fetchall()
    return [(s, math.nan if v is None else v) for s, v in rows]


def find_plateaus(
    db: sqlite_utils.Database,
    run_id: int,
    key: str = "val/loss",
    factor: float = 0.5,
    patience: int = 3,
    threshold: float = 1e-4,
    cooldown: int = 0,
    lr: float | None = None,
    min_lr: float = 0.0,
    mode: str | None = None,
) -> list[dict[str, Any]]:
    """Where the plateau rule would cut the LR on the stored ``key`` series (one point per
    epoch). ``mode`` defaults to "max" for accuracy-like keys, else "min"; ``lr`` defaults to the
    run's first logged ``lr``, else 1.0 (only the ratio old/new matters then).
    Returns ``[{step, epoch, value, old_lr, new_lr, message}]``."""
    if mode is None:
        leaf = key.rsplit("/", 1)[-1].lower()
        mode = "max" if any(h in leaf for h in _MAX_MODE_HINTS) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    points = _stored(db, run_id, key)
    if not points:
        return []
    if lr is None:
        lrs = _stored(db, run_id, "lr")
        lr = lrs[0][1] if lrs and lrs[0][1] > 0 else 1.0
    from engine.schedule import simulate_plateau_cuts  # imports torch: only when needed

    cuts = simulate_plateau_cuts(
        [v for _, v in points], factor=factor, patience=patience, threshold=threshold,
        cooldown=cooldown, lr=lr, min_lr=min_lr, mode=mode,
    )  # fmt: skip
    return [
        {
            "step": points[i][0],
            "epoch": i,
            "value": points[i][1],
            "old_lr": old,
            "new_lr": new,
            "message": (
                f"a cut would have helped here: {key} had not improved for {patience} epochs "
                f"(LR {old:g} → {new:g}, T7)"
            ),
        }
        for i, old, new in cuts
    ]
