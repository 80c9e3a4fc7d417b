"""Datasets that ship with Trainboard and need no network.

``digits``, ``diabetes`` and ``breast-cancer`` are read from scikit-learn's package data; the
adding problem is generated from a fixed seed, so every call gives the same data.
"""

from __future__ import annotations

import re

import numpy as np

from engine.data.base import DataError, RawDataset
from engine.data.tabular import dataset_from_frame, encode_target
from engine.messages import Message

BUILTINS: dict[str, str] = {
    "digits": "8x8 handwritten digits: 1,797 grayscale images, 10 classes (scikit-learn).",
    "diabetes": "Diabetes progression: 442 rows, 10 raw clinical features, regression "
    "(scikit-learn).",
    "breast-cancer": "Breast cancer diagnosis: 569 rows, 30 features, 2 classes (scikit-learn).",
    "adding": "Adding problem: sequences of length 100 with a value and a marker channel; predict "
    "the sum of the 2 marked values (regression, long-range; 'adding-T' sets the length T).",
}

ADDING_ROWS = 4000
ADDING_SEED = 1234
_ADDING = re.compile(r"adding(?:-(\d+))?")
MAX_ADDING_LENGTH = 1_000


def adding_problem(length: int = 100, rows: int = ADDING_ROWS, seed: int = ADDING_SEED):
    """The adding problem (Hochreiter & Schmidhuber): x (rows, length, 2), y (rows,).

    Channel 0 is uniform in [0, 1); channel 1 marks one step in the first half and one in the
    second half; the target is the sum of the two marked values. Predicting the mean (1.0)
    gives an MSE of 1/6, so a model has learned the long-range link only well below that.
    """
    rng = np.random.default_rng(seed)
    values = rng.random((rows, length))
    half = length // 2
    first = rng.integers(0, half, rows)
    second = rng.integers(half, length, rows)
    marker = np.zeros((rows, length))
    marker[np.arange(rows), first] = 1.0
    marker[np.arange(rows), second] = 1.0
    x = np.stack([values, marker], axis=-1).astype(np.float32)
    y = (values[np.arange(rows), first] + values[np.arange(rows), second]).astype(np.float32)
    return x, y


def load_builtin(
    name: str,
    *,
    target: str | None = None,
    task: str = "auto",
    columns: dict[str, str] | None = None,
) -> RawDataset:
    """Load ``builtin:NAME``; ``target`` only applies to the tabular ones."""
    source = f"builtin:{name}"
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True, scaled=False).frame
        return dataset_from_frame(frame, source=source, target=target, task=task, columns=columns)
    if name == "breast-cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer(as_frame=True)
        raw = dataset_from_frame(
            bunch.frame, source=source, target=target, task=task, columns=columns
        )
        if raw.target == "target" and raw.class_names == ["0", "1"]:
            raw.class_names = [str(n) for n in bunch.target_names]
        return raw
    if name == "digits":
        import pandas as pd
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images[:, None, :, :] / 16.0).astype(np.float32)
        y, task, class_names = encode_target(pd.Series(bunch.target), _task(task), "digit", source)
        return RawDataset(x, y, "image", task, ["gray"], class_names, source, "digit")
    m = _ADDING.fullmatch(name)
    if m:
        digits = m.group(1) or "100"
        length = int(digits) if len(digits) <= 5 else MAX_ADDING_LENGTH + 1
        # Bounded before anything is allocated: 4,000 rows × T × 2 channels, ~130 MB at most.
        if not 2 <= length <= MAX_ADDING_LENGTH:
            raise DataError(
                Message("data.adding_length", where=source[:60], limit=MAX_ADDING_LENGTH)
            )
        x, y = adding_problem(length)
        if task == "classification":
            raise DataError(Message("data.adding_regression", where=source))
        return RawDataset(x, y, "sequence", "regression", ["value", "marker"], None, source, "sum")
    raise unknown_builtin(name)


def is_builtin(name: str) -> bool:
    return name in BUILTINS or _ADDING.fullmatch(name) is not None


def unknown_builtin(name: str) -> DataError:
    known = ", ".join(f"builtin:{k}" for k in BUILTINS)
    return DataError(Message("data.unknown_builtin", name=name[:60], known=known))


def _task(task: str) -> str:
    # Digits are classes; "auto" would call 10 classes in 1,797 rows classification anyway.
    return "classification" if task == "auto" else task
