"""The data rules that need no torch: the T2 log1p rule, the T1 minimum rows, the feature
matrix view. The dataset report (run in the upload check's child process) uses them without
importing torch or scikit-learn, which ``engine.data.prepare`` needs for the split and tensors;
that saves the check about 3 s of imports per upload."""

from __future__ import annotations

import numpy as np

from engine.data.base import DataError
from engine.messages import Message

LOG1P_MIN_RATIO = 1e3  # "spans at least three orders of magnitude"


def log1p_rule(column: np.ndarray) -> bool:
    """True when a column should be log1p-transformed (T2).

    The rule: ignoring missing values, every value is >= 0 and
    ``(max + 1) / (q05 + 1) >= 1000``, where q05 is the 5th percentile; that is, the column spans
    at least three orders of magnitude above its low end. The +1 matches log1p: values near 0
    count as 1, so a 0/1 flag or a small count never qualifies. A column with negative values
    never qualifies (log1p would be undefined or misleading for it).
    """
    v = np.asarray(column, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0 or not np.isfinite(v).all() or v.min() < 0:
        return False
    return bool((v.max() + 1.0) / (np.quantile(v, 0.05) + 1.0) >= LOG1P_MIN_RATIO)


def as_matrix(x: np.ndarray, modality: str) -> np.ndarray:
    """All values of each feature/channel as the columns of a 2-D (M, F) matrix."""
    if modality == "image":
        return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return x.reshape(-1, x.shape[-1])


# T1: below these, a validation or test score is one or two rows' worth of noise; refuse instead.
MIN_ROWS = 10
MIN_ROWS_PER_CLASS = 2


def check_enough_rows(y: np.ndarray, task: str, class_names: list[str] | None, where: str) -> None:
    """T1: refuse data too small for a validation and a test score to mean anything."""
    n = len(y)
    if n < MIN_ROWS:
        raise DataError(Message("data.too_few_rows", where=where, rows=n, min_rows=MIN_ROWS))
    if task != "classification":
        return
    counts = np.bincount(y, minlength=len(class_names or []))
    rare = [i for i, c in enumerate(counts) if 0 < c < MIN_ROWS_PER_CLASS]
    if rare:
        names = [class_names[i] if class_names else str(i) for i in rare]
        shown = ", ".join(repr(str(c)) for c in names[:5]) + (" …" if len(names) > 5 else "")
        raise DataError(
            Message(
                "data.single_row_classes",
                where=where,
                count=len(rare),
                classes=shown,
                min_rows=MIN_ROWS_PER_CLASS,
            )
        )
