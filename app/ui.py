"""Small UI helpers shared by the pages: the database handle, badges, tip names, navigation."""

from __future__ import annotations

import streamlit as st

from engine.errors import ConfigError
from engine.tips import TIPS
from jobs.db import connect

# What each tip means, in one line (engine.tips, shared with docs/presets.md).
TIP_TITLES = TIPS

STATUS_COLORS = {
    "queued": "gray",
    "running": "blue",
    "finished": "green",
    "failed": "red",
    "diverged": "orange",
    "cancelled": "violet",
    "lost": "orange",
}

PAGES = {
    "home": "screens/home.py",
    "datasets": "screens/datasets.py",
    "new_run": "screens/new_run.py",
    "runs": "screens/runs.py",
    "run": "screens/run_detail.py",
    "compare": "screens/compare.py",
}


def db():
    """A connection for this script run (SQLite handles are per thread; opening one is cheap
    once the schema has been checked in this process)."""
    return connect()


def badge(status: str) -> str:
    """Markdown for a coloured status badge."""
    return f":{STATUS_COLORS.get(status, 'gray')}-badge[{status}]"


def tip_label(tip: str | None) -> str:
    if not tip or tip not in TIP_TITLES:
        return tip or ""
    return f"{tip} — {TIP_TITLES[tip]}"


def config_errors(e: ConfigError) -> dict[str, str]:
    """Split the engine's "field: what's wrong; field: ..." message into one entry per field."""
    out: dict[str, str] = {}
    for part in str(e).split("; "):
        field, sep, msg = part.partition(": ")
        if not sep:
            field, msg = "config", part
        out[field] = f"{out[field]}; {msg}" if field in out else msg
    return out


def open_run(run_id: int) -> None:
    """Go to the run-detail page of ``run_id``."""
    st.session_state["run_id"] = int(run_id)
    st.switch_page(PAGES["run"])


def compare_runs(run_ids: list[int]) -> None:
    st.session_state["compare_ids"] = [int(r) for r in run_ids]
    st.switch_page(PAGES["compare"])


def flash(message: str, kind: str = "success") -> None:
    """A message shown once on the next page render (survives a page switch or rerun)."""
    st.session_state.setdefault("_flash", []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop("_flash", []):
        getattr(st, kind)(message)
