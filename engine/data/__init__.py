"""The data layer: load a dataset, report on it, prepare tensors, augment batches.

    raw = load_dataset("table.csv", target="price")     # or "builtin:digits"
    report = dataset_report(raw)                          # T1/T2/T3 warnings for the UI
    data = prepare(raw, val_fraction=0.2, seed=0)         # split + fitted Preprocessor (T2)
    xb = augment(xb, data.modality, shift=1, generator=g)  # training batches only (T12)

Exceptions: :class:`DataError` (a ``ValueError``) for any dataset that can't be used.
See docs/data.md for the rules.
"""

from engine.data.augment import augment
from engine.data.base import DataError, RawDataset
from engine.data.builtins import BUILTINS
from engine.data.loaders import load_dataset
from engine.data.prepare import Prepared, Preprocessor, prepare
from engine.data.report import DatasetReport, dataset_report
from engine.data.rules import log1p_rule

__all__ = [
    "BUILTINS",
    "DataError",
    "DatasetReport",
    "Prepared",
    "Preprocessor",
    "RawDataset",
    "augment",
    "dataset_report",
    "load_dataset",
    "log1p_rule",
    "prepare",
]
