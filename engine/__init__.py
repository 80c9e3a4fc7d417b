"""Trainboard's engine: Sutskever's training advice (tips T1–T15) as a plain PyTorch library.

It imports neither ``jobs`` nor ``app`` (nor Celery, Streamlit or SQLite)::

    from engine import resolve_config, run_training, MemorySink
    cfg = resolve_config("sutskever", dataset="builtin:digits")
    result = run_training(cfg, sink=MemorySink())

The names below are loaded on first use (PEP 562), so ``import engine.config`` or
``engine.vocab`` stays light: the dashboard uses those without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainResult": "engine.api",
    "run_training": "engine.api",
    "Config": "engine.config",
    "list_presets": "engine.config",
    "resolve_config": "engine.config",
    "CheckpointError": "engine.errors",
    "ConfigError": "engine.errors",
    "EngineError": "engine.errors",
    "MemorySink": "engine.sink",
    "Sink": "engine.sink",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
