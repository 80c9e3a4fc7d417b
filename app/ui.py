"""Small UI helpers shared by the pages: the database handle, badges, tip names, navigation."""

from __future__ import annotations

import streamlit as st

from engine.errors import ConfigError
from jobs.db import connect

# What each tip means, in one line, for the doctor panel and the preset cards.
TIP_TITLES: dict[str, str] = {
    "T1": "Data: enough clean, representative examples",
    "T2": "Preprocessing: centre and scale inputs, log(1+x) for wide ranges",
    "T3": "Batch size: around 128 examples per step",
    "T4": "Average the loss over the batch, so the LR does not depend on batch size",
    "T5": "Learning rate: start at a normal size (0.1 for SGD) and shrink it later",
    "T6": "Each update should change a weight matrix by about 1/1000 of its size",
    "T7": "Validate on held-out data; cut the LR when it stops improving",
    "T8": "Initialisation: small random weights, scaled for deep nets",
    "T9": "Clip the gradient norm so one huge step can't wreck the model",
    "T10": "Check hand-written gradients against numerical ones",
    "T11": "Open the LSTM forget gate at the start so memories last",
    "T12": "Augment: invent extra training examples",
    "T13": "Dropout: switch hidden units off at random while training",
    "T14": "Ensemble: average several networks for a reliable gain",
    "T15": "Sensible defaults: tens of epochs, momentum 0.9, a little weight decay",
}

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
