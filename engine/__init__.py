"""Trainboard's engine: Sutskever's training advice (tips T1–T15) as a plain PyTorch library.

It imports neither ``jobs`` nor ``app`` (nor Celery, Streamlit or SQLite)::

    from engine import resolve_config, run_training, MemorySink
    cfg = resolve_config("sutskever", dataset="builtin:digits")
    result = run_training(cfg, sink=MemorySink())
"""

from engine.api import TrainResult, run_training
from engine.config import Config, list_presets, resolve_config
from engine.errors import CheckpointError, ConfigError, EngineError
from engine.sink import MemorySink, Sink

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "EngineError",
    "MemorySink",
    "Sink",
    "TrainResult",
    "list_presets",
    "resolve_config",
    "run_training",
]
