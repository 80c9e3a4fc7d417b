"""How values read to a person: durations, metrics, config values; shared by the read models
(``jobs.runs.views``) and the derived submissions (``jobs.runs.submit``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A spreadsheet opened on an exported CSV runs a cell that starts with one of these as a formula
# (OWASP, "CSV injection"): =HYPERLINK(…), +cmd|…, -2+3+cmd|…, @SUM(…), and a leading tab or
# CR. Such a text cell gets a leading apostrophe, which spreadsheets show as text; a cell that
# is only a number ("-0.5", "+3", "-12%") is left alone, since it can't be a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d[\d,]*\.?\d*|\.\d+)(e[+-]?\d+)?%?", re.IGNORECASE)


def csv_safe(value: Any) -> Any:
    """``value`` as it may go into an exported table: text that a spreadsheet would run as a
    formula gets a leading apostrophe; everything else (numbers included) is unchanged."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def format_duration(seconds: float | None) -> str:
    """A duration as people say it: "45 s", "1 min 20 s", "2 h 05 min"."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_metric(metric: str | None, value: float | None) -> str:
    """A metric value as people read it: accuracy as a percentage ("97.4%", "100%"), anything
    else (losses, RMSE) with 4 significant digits ("0.9737")."""
    if metric is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == "acc":
        pct = f"{value * 100:.1f}"
        return (pct[:-2] if pct.endswith(".0") else pct) + "%"
    return f"{value:.4g}"


def metric_name(metric: str | None) -> str:
    """The metric's name for a label: "accuracy", "RMSE"."""
    return {"acc": "accuracy", "rmse": "RMSE"}.get(metric or "", metric or "")


def one_line(text: object, limit: int = 200) -> str:
    """A name for a table or a list: one line, at most ``limit`` characters (a 20 MB run name
    must not reach the browser)."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def format_mib(mib: int | None) -> str:
    """A device's memory from nvidia-smi's MiB: "80 GiB", "512 MiB", or a dash."""
    if not mib:
        return "—"
    return f"{mib / 1024:.0f} GiB" if mib >= 1024 else f"{mib} MiB"


def show_value(v: Any) -> str:
    """A config value in a table cell: lists and dicts as JSON, None as a dash."""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return "—" if v is None else str(v)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
