"""The ``auto`` preset: settings derived from the dataset itself, each with its tip and reason.

``engine/presets/auto.toml`` holds what never depends on the data (T2 standardizing, T4 mean
loss, T5 SGD with momentum…). :func:`derive` adds what does: the batch size, epochs, dropout,
weight decay, patience, the plateau cut and how often the update/weight ratio is measured, from
a few facts about the dataset (:class:`DataFacts`: rows, task, classes, input size). The facts
travel with the config (``Config.auto``) so a run's "why" column can be rebuilt later.

The rules are small and written out here rather than searched for, so a beginner can read why
each value was chosen; bench/quality.py measures the result against scikit-learn baselines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from engine.messages import Message

AUTO = "auto"

MIN_STEPS_PER_EPOCH = 20  # T3: fewer updates per epoch than this learn slowly
MAX_BATCH = 128  # T3: the advice's ~128; larger batches generalise worse
MIN_BATCH = 8
TARGET_STEPS = 4000  # total updates a run aims for, within the epoch bounds below
MIN_EPOCHS, MAX_EPOCHS = 30, 300
SMALL_DATA_ROWS = 2000  # training rows below which the small-data rules apply
SMALL_DATA_MEMBERS = 5
SMALL_DATA_WIDTH = 64  # T14 on small data, where a member costs seconds
RATIO_READINGS = 20  # T6: readings of the update/weight ratio per run (the rule needs >= 10)


@dataclass(frozen=True)
class DataFacts:
    """What the auto preset needs to know about a dataset (all from its report)."""

    rows: int
    task: str  # classification | regression
    modality: str = "tabular"
    classes: int | None = None
    features: int = 1  # input values per row (pixels for images, steps × features for sequences)
    # the smallest class's rows over the largest's (classification; None: unknown)
    smallest_class_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["smallest_class_ratio"] is None:  # facts recorded before it existed read the same
            del d["smallest_class_ratio"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataFacts:
        return cls(
            rows=int(d["rows"]),
            task=str(d["task"]),
            modality=str(d.get("modality") or "tabular"),
            classes=int(d["classes"]) if d.get("classes") else None,
            features=int(d.get("features") or 1),
            smallest_class_ratio=d.get("smallest_class_ratio"),
        )

    @classmethod
    def from_raw(cls, raw: Any) -> DataFacts:
        """From a loaded ``engine.data.RawDataset``."""
        return cls(
            rows=len(raw.y),
            task=raw.task,
            modality=raw.modality,
            classes=len(raw.class_names) if raw.class_names else None,
            features=max(1, math.prod(raw.x.shape[1:])),
            smallest_class_ratio=_ratio(
                list(np.bincount(np.asarray(raw.y, dtype=np.int64)))
                if raw.task == "classification"
                else []
            ),
        )

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> DataFacts:
        """From a stored dataset report (``engine.data.report.DatasetReport.to_dict``)."""
        balance = report.get("class_balance") or {}
        return cls(
            rows=int(report["rows"]),
            task=str(report["task"]),
            modality=str(report.get("modality") or "tabular"),
            classes=len(balance) or None,
            features=max(1, int(report.get("features") or report.get("columns", 2) - 1)),
            smallest_class_ratio=_ratio(list(balance.values())),
        )


def _ratio(counts: list[int]) -> float | None:
    counts = [int(c) for c in counts if int(c) > 0]
    return min(counts) / max(counts) if len(counts) >= 2 else None


@dataclass(frozen=True)
class Derived:
    field: str
    value: Any
    tip: str
    why: Message


def train_rows(facts: DataFacts, val_fraction: float = 0.2, test_fraction: float = 0.2) -> int:
    """Rows left for training after the validation and test splits (as engine.data.prepare)."""
    n = facts.rows
    return max(1, n - math.ceil(val_fraction * n) - math.ceil(test_fraction * n))


def _batch(n_train: int) -> tuple[int, Message]:
    """T3: a multiple of 8, never over 128, and small enough for ~20 updates per epoch."""
    b = min(MAX_BATCH, max(MIN_BATCH, (n_train // MIN_STEPS_PER_EPOCH) // 8 * 8))
    steps = math.ceil(n_train / b)
    if b == MAX_BATCH:
        why = Message("auto.batch_max", batch=b, rows=n_train, steps=steps)
    else:
        count = math.ceil(n_train / 128)
        why = Message("auto.batch", batch=b, rows=n_train, count=count, steps=steps)
    return b, why


def batch_for(n_train: int) -> int:
    """The batch the table presets use on ``n_train`` training rows (T3; the auto preset's,
    which sutskever, quick, small-data and ensemble follow on a known dataset)."""
    return _batch(n_train)[0]


def derive(
    facts: DataFacts, *, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> list[Derived]:
    """The data-dependent settings of the auto preset, each with its tip and plain reason."""
    n_tr = train_rows(facts, val_fraction, test_fraction)
    batch, batch_why = _batch(n_tr)
    steps = math.ceil(n_tr / batch)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps)))
    small = n_tr < SMALL_DATA_ROWS
    out = [Derived("train.batch_size", batch, "T3", batch_why)]
    out += _sequence() if facts.modality == "sequence" else [_lr(batch)]
    out.append(
        Derived(
            "train.epochs",
            epochs,
            "T15",
            Message("auto.epochs", epochs=epochs, updates=epochs * steps),
        )
    )
    out += _regularise(facts, n_tr, small)
    out += _embedding(facts)
    out += _imbalance(facts)
    return out + _schedule(epochs, steps, small)


def _embedding(facts: DataFacts) -> list[Derived]:
    """T2 for tables: numeric embeddings (PLR-lite; engine.models.PeriodicEmbedding). A plain
    MLP draws smooth functions of standardized inputs, where trees cut a column at thresholds;
    on Seattle weather and cars (bench/quality.py) that was a 10-point gap to gradient-boosted
    trees, and the embeddings (with square-root class weights) put the net ahead of them.

    Classification only, as measured: on the small regression tables (diabetes, barley) the
    embedded net peaked within its first 1–3 epochs and then overfit, so every healthy run
    earned a T13 overfitting warning (3 seeds of 3 on diabetes), for an RMSE within noise."""
    if not embedded(facts):
        return []
    return [Derived("model.embedding", "periodic", "T2", Message("auto.embedding"))]


IMBALANCED = 1 / 3  # the smallest class under this share of the largest: weight the loss (nets)


def _imbalance(facts: DataFacts) -> list[Derived]:
    """T1 on imbalanced classes: the square root of the balanced weights (``sqrt``). Full
    balanced weights buy balanced accuracy with overall accuracy: on Seattle weather they cost
    10 points of accuracy against unweighted baselines for no better balanced accuracy than
    the square root gives (bench/quality.py, docs/engine.md)."""
    r = facts.smallest_class_ratio
    if facts.task != "classification" or r is None or r >= IMBALANCED:
        return []
    return [
        Derived(
            "train.class_weight",
            "sqrt",
            "T1",
            Message("auto.class_weight_sqrt", share=r),
        )
    ]


def _lr(batch: int) -> Derived:
    """T5 with T3: 0.1 suits SGD with momentum at batch 128. A smaller batch gives noisier
    gradients, and the same LR then diverges (seen on 300-row tables at batch 16), so the LR
    scales with the batch (the linear scaling rule), down to 0.01 at most tenfold."""
    lr = max(0.01, round(0.1 * batch / MAX_BATCH, 4))
    return Derived(
        "optim.lr",
        lr,
        "T5",
        Message("auto.lr_base") if lr == 0.1 else Message("auto.lr", lr=lr, batch=batch),
    )


def _regularise(facts: DataFacts, n_tr: int, small: bool) -> list[Derived]:
    """T13/T14/T15: small data gets an ensemble, dropout, a smaller net and firmer decay."""
    if not small:
        if facts.modality == "sequence":  # the recurrent recipe (sequence preset) has none
            return []
        return [
            Derived(
                "optim.weight_decay",
                0.0005,
                "T15",
                Message("auto.decay_gentle", decay=0.0005, rows=n_tr),
            )
        ]
    return [
        Derived(
            "ensemble.members",
            SMALL_DATA_MEMBERS,
            "T14",
            Message("auto.ensemble", members=SMALL_DATA_MEMBERS, rows=n_tr),
        ),
        _dropout(facts, n_tr),
        Derived(
            "optim.weight_decay",
            0.01,
            "T15",
            Message("auto.decay_firm", decay=0.01, rows=n_tr),
        ),
        Derived(
            "model.hidden",
            [SMALL_DATA_WIDTH],
            "T13",
            Message(
                "auto.small_net",
                units=SMALL_DATA_WIDTH,
                rows=n_tr,
                weights=facts.features * 256 + 256 * 256,
            ),
        ),
    ]


def embedded(facts: DataFacts) -> bool:
    """Whether the auto preset gives this dataset periodic numeric embeddings (:func:`_embedding`)."""
    return facts.modality == "tabular" and facts.task == "classification"


def _dropout(facts: DataFacts, n_tr: int) -> Derived:
    """T13 on small data: 0.2; 0.3 with numeric embeddings, which give the net nine inputs per
    column to memorise with (measured on Seattle weather: at 0.2 two seeds of three rose on
    validation for three epochs running, a T13 overfitting warning; at 0.3 none, same accuracy)."""
    if embedded(facts):
        return Derived("model.dropout", 0.3, "T13", Message("auto.dropout_embedded", rows=n_tr))
    return Derived("model.dropout", 0.2, "T13", Message("auto.dropout", rows=n_tr))


def _schedule(epochs: int, steps: int, small: bool) -> list[Derived]:
    """T7: cut on a plateau and keep going until the LR is tiny. Short runs (few epochs per
    cut) divide by 5 so the LR reaches the floor within the epoch budget; otherwise halve.
    T6: the ratio is read often enough for the rule's window."""
    patience = 4 if small else 3
    factor = 0.5 if epochs >= 12 * (patience + 1) else 0.2
    every = max(1, epochs * steps // (RATIO_READINGS * 3))
    return [
        Derived(
            "schedule.plateau_patience",
            patience,
            "T7",
            Message("auto.patience_small" if small else "auto.patience", epochs=patience),
        ),
        Derived(
            "schedule.plateau_factor",
            factor,
            "T7",
            Message("auto.halve") if factor == 0.5 else Message("auto.divide_5", epochs=epochs),
        ),
        Derived(
            "train.early_stop_patience",
            3 * (patience + 1),
            "T7",
            Message("auto.early_stop", epochs=3 * (patience + 1)),
        ),
        Derived(
            "train.ratio_every",
            every,
            "T6",
            Message("auto.ratio_every", steps=every),
        ),
    ]


def _sequence() -> list[Derived]:
    """Sequences get the recurrent-net advice of the sequence preset: an LSTM with Adam, its
    forget gate open (T11) and its gradient clipped (T9)."""
    return [
        Derived(
            "optim.name",
            "adam",
            "T5",
            Message("auto.adam"),
        ),
        Derived(
            "optim.lr",
            0.003,
            "T5",
            Message("auto.adam_lr"),
        ),
        Derived(
            "schedule.lr_floor",
            0.00001,
            "T7",
            Message("auto.adam_floor"),
        ),
        Derived(
            "model.forget_bias",
            2.0,
            "T11",
            Message("auto.forget_gate"),
        ),
        Derived(
            "train.clip_norm",
            5.0,
            "T9",
            Message("auto.clip"),
        ),
    ]


def overrides(facts: DataFacts, **fractions: float) -> dict[str, Any]:
    return {d.field: d.value for d in derive(facts, **fractions)}
