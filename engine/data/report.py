"""The dataset report shown on upload (T1, T2, T3): what is in the data and what looks wrong."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.auto import batch_for
from engine.data.base import RawDataset, message_fields, warning
from engine.data.rules import as_matrix, check_enough_rows, log1p_rule
from engine.data.tabular import is_text
from engine.messages import Message

SMALL_ROWS = 500  # fewer rows than this: "small for a neural network" (T1)
ROWS_PER_CLASS = 50  # fewer rows per class on average: too few examples (T1)
RARE_CLASS_RATIO = 1 / 3  # a class under a third of the largest class is "rare" (T1)
MIN_BATCHES = (
    4  # the same bound as engine.doctor.check_batch_size, which a run checks with its own batch
)


@dataclass
class DatasetReport:
    """Counts and warnings about a loaded dataset; ``to_dict`` is JSON-serialisable."""

    rows: int
    columns: int
    modality: str
    task: str
    target: str | None
    class_balance: dict[str, int] | None
    missing: dict[str, int]
    duplicates: int
    constant_columns: list[str]
    log1p_columns: list[str]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    conflicting_labels: int = 0  # groups of identical inputs with different targets
    features: int = 0  # input values per row after encoding (pixels, steps × features…)
    target_why: Message | None = None  # why this target, when nobody named it (guess_target)
    # each feature column's kind and why (engine.data.columns), for a table
    column_kinds: list[dict[str, Any]] = field(default_factory=list)
    target_candidates: list[dict[str, Any]] = field(default_factory=list)  # see RawDataset
    target_clear: bool = True

    def to_dict(self) -> dict:
        return message_fields(asdict(self), "target_why")


def _row_keys(x: np.ndarray) -> np.ndarray:
    """One integer per row: equal rows get equal keys (NaN equals NaN here)."""
    flat = np.ascontiguousarray(x.reshape(len(x), -1)).astype(np.float64)
    flat = np.where(np.isnan(flat), np.inf, flat) + 0.0  # one NaN pattern; -0.0 == 0.0
    rows = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))
    _, inverse = np.unique(rows.ravel(), return_inverse=True)
    return inverse.ravel()


def _fmt(n: float) -> str:
    return f"{n:.0%}" if n >= 0.01 else f"{n:.1%}"


def dataset_report(
    raw: RawDataset,
    *,
    batch_size: int | None = None,
    log1p: str = "auto",
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DatasetReport:
    """Describe ``raw`` and warn, in plain words, about what could hurt training.

    ``batch_size``: the batch a run will use, for the T3 "too few batches" warning; None (at
    upload, before any run) judges the batch the presets pick for these rows
    (``engine.auto.batch_for``), the number New run then shows; a run checks its own batch
    size again before training (``engine.doctor.check_batch_size``). ``log1p``: the run's
    ``data.log1p``; a wide column is then information (the preparation squashes it) or, when
    off, a warning that nothing does.

    Raises ``DataError`` for data too small to split into a meaningful validation and test set
    (T1): an upload is refused with that message rather than failing later in a run."""
    check_enough_rows(raw.y, raw.task, raw.class_names, Path(raw.source).name)
    n = len(raw.x)
    warnings: list[dict[str, Any]] = list(raw.load_warnings)

    def warn(tip: str, message: Message, severity: str = "warning") -> None:
        warnings.append(warning(tip, message, severity))

    columns, text_columns, missing, duplicates, constant = _column_counts(raw)
    log1p_cols = _log1p_columns(raw, warn, log1p)
    # Identical inputs with different targets: likely label noise (T1).
    feat_keys = _row_keys(raw.x)
    pairs = np.unique(np.stack([feat_keys, _row_keys(raw.y.reshape(n, 1))], 1), axis=0)
    conflicting = int((np.bincount(pairs[:, 0]) > 1).sum())
    class_balance, small_warned = _class_warnings(raw, warn)
    if n < SMALL_ROWS and not small_warned:
        warn("T1", Message("report.small", rows=n))
    for col, v in missing.items():
        fill = Message("report.missing.text" if col in text_columns else "report.missing.number")
        share = _fmt(v / max(n, 1))
        warn("T1", Message("report.missing", column=col, count=v, share=share, fill=fill))
    if duplicates:
        warn("T1", Message("report.duplicates", count=duplicates, share=_fmt(duplicates / n)))
    if conflicting:
        warn("T1", Message("report.conflicting", count=conflicting))
    for col in constant:
        warn("T1", Message("report.constant", column=col))
    # the rows the split leaves for training, counted as engine.data.prepare splits them (the
    # doctor's T3 check and the New run page say the same number)
    train_rows = max(1, n - math.ceil(val_fraction * n) - math.ceil(test_fraction * n))
    # At upload no run is chosen yet: judge the batch the presets will use on these rows (they
    # follow the data, T3), not a fixed 128 that no preset uses on a small table any more.
    batch = batch_size or batch_for(train_rows)
    if train_rows < batch * MIN_BATCHES:
        warn("T3", Message("report.few_batches", rows=train_rows, batches=MIN_BATCHES, batch=batch))
    return DatasetReport(
        rows=int(n),
        columns=columns,
        modality=raw.modality,
        task=raw.task,
        target=raw.target,
        class_balance=class_balance,
        missing=missing,
        duplicates=duplicates,
        constant_columns=constant,
        log1p_columns=log1p_cols,
        warnings=warnings,
        conflicting_labels=conflicting,
        features=int(math.prod(raw.x.shape[1:])),
        target_why=getattr(raw, "target_why", None),
        column_kinds=list(raw.columns),
        target_candidates=list(raw.target_candidates),
        target_clear=raw.target_clear,
    )


def _column_counts(raw: RawDataset) -> tuple[int, set[str], dict[str, int], int, list[str]]:
    """(columns, text columns, missing values per column, duplicate rows, constant columns),
    from the raw table where there is one (its own column names), else from x."""
    n = len(raw.x)
    if raw.frame is not None:
        frame = raw.frame
        columns = int(frame.shape[1])
        text_columns = {str(c) for c in frame.columns if is_text(frame[c])}
        missing = {str(c): int(v) for c, v in frame.isna().sum().items() if v > 0}
        duplicates = int(frame.duplicated().sum())
        constant = [
            str(c) for c in frame.columns if c != raw.target and frame[c].nunique(dropna=False) <= 1
        ]
        return columns, text_columns, missing, duplicates, constant
    m = as_matrix(raw.x, raw.modality)
    nan = np.isnan(m).sum(axis=0)
    missing = {raw.feature_names[j]: int(v) for j, v in enumerate(nan) if v > 0}
    keys = _row_keys(np.concatenate([raw.x.reshape(n, -1), raw.y.reshape(n, 1)], axis=1))
    duplicates = int(n - len(np.unique(keys)))
    constant = [
        raw.feature_names[j]
        for j in range(m.shape[1])
        if np.nanmax(m[:, j], initial=-np.inf) == np.nanmin(m[:, j], initial=np.inf)
        or np.isnan(m[:, j]).all()
    ]
    return len(raw.feature_names), set(), missing, duplicates, constant


def _log1p_columns(raw: RawDataset, warn: Callable[..., None], log1p: str = "auto") -> list[str]:
    """T2: the columns the log(1 + x) rule applies to, each with a line: what the preparation
    does about it (information), or, with ``data.log1p`` off, that nothing does (a warning)."""
    if raw.modality == "image":
        return []
    cols: list[str] = []
    m = as_matrix(raw.x, raw.modality)
    for j, name in enumerate(raw.feature_names):
        col = m[:, j]
        if log1p_rule(col):
            cols.append(name)
            c = col[~np.isnan(col)]
            orders = math.log10((c.max() + 1) / (np.quantile(c, 0.05) + 1))
            if log1p == "off":
                warn("T2", Message("report.log1p_off", column=name, orders=orders))
            else:
                warn("T2", Message("report.log1p", column=name, orders=orders), severity="info")
    return cols


def _class_warnings(
    raw: RawDataset, warn: Callable[[str, Message], None]
) -> tuple[dict[str, int] | None, bool]:
    """T1 for classification: (rows per class, whether the "too few rows" warning was given)."""
    if raw.task != "classification" or raw.class_names is None:
        return None, False
    n = len(raw.x)
    small_warned = False
    counts = np.bincount(raw.y, minlength=len(raw.class_names))
    class_balance = {name: int(c) for name, c in zip(raw.class_names, counts, strict=True)}
    k = len(raw.class_names)
    if k < 2:
        warn("T1", Message("report.single_class"))
    elif n < ROWS_PER_CLASS * k:
        small_warned = True
        warn("T1", Message("report.few_per_class", rows=n, classes=k, per_class=ROWS_PER_CLASS))
    biggest = counts.max()
    for name, c in class_balance.items():
        if k >= 2 and c < RARE_CLASS_RATIO * biggest:
            warn("T1", Message("report.rare_class", name=name, share=_fmt(c / n), count=int(c)))
    return class_balance, small_warned
