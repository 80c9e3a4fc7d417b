"""The metric store's public face: the writer (engine sink) and the reader, in one import:
``from jobs.metrics import MetricWriter, series, events, keys, last_step, export_metrics``.
"""

from __future__ import annotations

from jobs.reader import SeriesData, events, export_metrics, keys, last_step, series
from jobs.writer import SHIFTS, MetricWriter

__all__ = [
    "SHIFTS",
    "MetricWriter",
    "SeriesData",
    "events",
    "export_metrics",
    "keys",
    "last_step",
    "series",
]
