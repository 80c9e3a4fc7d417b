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
from engine.messages import Message, as_json

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
    target_why: Message | None = None
    # A table's column-type pass: one dict per feature column (name, kind, why, why_msg, tip,
    # chosen), as engine.data.columns.Column.to_dict writes it.
    columns: list[dict[str, Any]] = field(default_factory=list)
    # When the target was guessed: the top 3 columns to predict (name, why, why_msg, score),
    # and whether the guess is clearly ahead (else the Datasets page asks).
    target_candidates: list[dict[str, Any]] = field(default_factory=list)
    target_clear: bool = True


def warning(tip: str, message: Message, severity: str = "warning") -> dict[str, Any]:
    """A report or load warning as stored: its tip, its English text and, as ``msg``, its code
    and params (what the dashboard translates); ``severity`` "info" for a line that says what
    the preparation does about it, so a run's doctor panel shows no alarm for it."""
    out = {"tip": tip, "message": str(message), "msg": message.to_json()}
    if severity != "warning":
        out["severity"] = severity
    return out


def message_fields(out: dict[str, Any], *names: str) -> dict[str, Any]:
    """``out`` with each named field that holds a message as English text, plus its code and
    params beside it as ``NAME_msg`` (None for plain text), ready for JSON."""
    for name in names:
        value = out.get(name)
        out[f"{name}_msg"] = as_json(value)
        out[name] = None if value is None else str(value)
    return out
