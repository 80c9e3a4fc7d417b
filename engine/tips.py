"""The tip ids (T1–T15), each in one line of plain words: for the UI, the docs and doctor
messages (the advice itself is summarised in the project's TIPS.md; these are our own words),
and the off switch of each tip that has one, for A/B pairs. Plain data: no torch, so the
dashboard and ``jobs`` read it too. A new tip is one entry in :data:`TIPS` (and, if it can be
switched off beyond its preset's own settings, one in :data:`TIP_OFF`)."""

from __future__ import annotations

from typing import Any

TIPS: dict[str, str] = {
    "T1": "Data: enough clean, representative examples",
    "T2": "Preprocessing: centre and scale inputs, log(1+x) for wide ranges",
    "T3": "Batch size: around 128 examples per step",
    "T4": "Average the loss over the batch, so the LR does not depend on batch size",
    "T5": "Learning rate: start at a normal size (0.1 for SGD) and shrink it later",
    "T6": "Each update should change a weight matrix by about 1/1000 of its size",
    "T7": "Validate on held-out data; cut the LR when it stops improving",
    "T8": "Initialisation: small random weights, scaled for deep nets",
    "T9": "Clip the gradient norm so one huge step can't wreck the model",
    "T10": "Check hand-written gradients against numerical ones",
    "T11": "Open the LSTM forget gate at the start so memories last",
    "T12": "Augment: invent extra training examples",
    "T13": "Dropout: switch hidden units off at random while training",
    "T14": "Ensemble: average several networks for a reliable gain",
    "T15": "Sensible defaults: tens of epochs, momentum 0.9, a little weight decay",
}

# What "switching a tip off" means for an A/B pair, where the preset's own values alone would
# not say it (a preset that sets a tip's field to its default would otherwise change nothing):
# dotted config fields and their "off" values (``jobs.runs.submit.tip_off_overrides``).
TIP_OFF: dict[str, dict[str, Any]] = {
    "T2": {"data.standardize": False, "data.log1p": "off"},
    "T7": {"schedule.enabled": False, "train.early_stop_patience": None},
    "T4": {"optim.loss_reduction": "sum"},
    "T9": {"train.clip_norm": None},
    "T11": {"model.forget_bias": 0.0},
    "T12": {
        "augment.shift": 0,
        "augment.flip": False,
        "augment.rotate_deg": 0.0,
        "augment.noise_std": 0.0,
    },
    "T13": {"model.dropout": 0.0},
    "T14": {"ensemble.members": 1},
    "T8": {"model.init": "default"},
    "T10": {"train.preflight": False, "train.overfit_one_batch": False},
}


# Each tip's rank as a root cause (issue 20, §4): data and scale (T1, T2, T3) before init and
# gradients (T8, T10), before the LR (T5, T6, T7, T9), before overfitting (T12, T13) and
# ensembles (T14): fix the first and the later ones often go away. The findings panel sorts by
# it (jobs.runs.views.findings).
ROOT_CAUSE_RANK: dict[str, int] = {
    "T1": 0, "T2": 0, "T3": 1, "T4": 1, "T8": 2, "T10": 2, "T11": 2,
    "T5": 3, "T6": 3, "T7": 4, "T9": 3, "T12": 5, "T13": 5, "T14": 6, "T15": 6,
}  # fmt: skip

# Tips an A/B pair never offers: T10 checks hand-written gradients before training; it changes
# nothing about how a run trains, so "without T10" would compare a run with itself.
NOT_AB: frozenset[str] = frozenset({"T10"})
