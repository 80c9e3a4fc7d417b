"""The data layer: load a dataset, report on it, prepare tensors, augment batches.

    raw = load_dataset("table.csv", target="price")     # or "builtin:digits"
    report = dataset_report(raw)                          # T1/T2/T3 warnings for the UI
    data = prepare(raw, val_fraction=0.2, seed=0)         # split + fitted Preprocessor (T2)
    xb = augment(xb, data.modality, shift=1, generator=g)  # training batches only (T12)

Exceptions: :class:`DataError` (a ``ValueError``) for any dataset that can't be used.
See docs/data.md for the rules.

The names above load on first use (PEP 562), not when the package is imported: importing any
submodule runs this file first, and ``engine.data.builtins`` (the CLI's choices) or
``engine.data.base`` must not pay for torch and scikit-learn, which ``prepare`` and ``report``
need (issue 20, §7: ``trainboard --help`` took 6.2 s with the eager imports).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

# public name → the submodule that defines it
_WHERE = {
    "augment": "augment",
    "DataError": "base",
    "RawDataset": "base",
    "BUILTINS": "builtins",
    "load_dataset": "loaders",
    "Prepared": "prepare",
    "Preprocessor": "prepare",
    "prepare": "prepare",
    "DatasetReport": "report",
    "dataset_report": "report",
    "log1p_rule": "rules",
}
__all__ = sorted(_WHERE, key=str.lower)


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


class _Package(types.ModuleType):
    """``prepare`` and ``augment`` name both a submodule and its function. Importing a submodule
    binds it on its package (``engine.data.prepare = <module>``); the eager imports used to
    rebind the function over it at once. Here the function is bound instead, so
    ``from engine.data import prepare`` means the function whoever imported the module first
    (the module itself stays in ``sys.modules``, where ``import engine.data.prepare`` finds it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _WHERE.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
