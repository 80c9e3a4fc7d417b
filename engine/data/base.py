"""The types every part of the data layer shares: the error and the loaded dataset.

Exceptions:
    DataError(ValueError) -- a dataset can't be used; the message names the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import DataError as _DataError

MODALITIES = ("tabular", "image", "sequence")
TASKS = ("classification", "regression")


# Defined in engine.errors (which imports nothing heavy, so the dashboard can catch it without
# torch) and re-exported here, beside the loaders that raise it.
DataError = _DataError


@dataclass
class RawDataset:
    """A dataset as loaded, before any split or transform.

    ``x`` is float32: tabular (N, F), image (N, C, H, W), sequence (N, T, F); it may hold NaN
    (missing values are imputed in :func:`engine.data.prepare`). ``y`` is int64 class indices for
    classification and float32 for regression.
    """

    x: np.ndarray
    y: np.ndarray
    modality: str
    task: str
    feature_names: list[str]
    class_names: list[str] | None
    source: str
    target: str | None
    frame: pd.DataFrame | None = None
    # Things the loader did that a user should know about (e.g. rows dropped for a missing
    # target), in the same {"tip", "message"} shape as the report's warnings.
    load_warnings: list[dict[str, Any]] = field(default_factory=list)
    # A table's own `split` column (train/val/test per row), which overrides the random split.
    split: np.ndarray | None = None
    # Why the target column was chosen when nobody named it (engine.data.tabular.guess_target).
    target_why: str | None = None
