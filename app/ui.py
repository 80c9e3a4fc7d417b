"""Small UI helpers shared by the pages: the database handle, badges, tip names, navigation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app import engine_text, i18n
from app.i18n import N_, _
from jobs import service


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    icon: str


# Every page of the dashboard, in navigation order: main.py builds the navigation from this,
# and pages link to each other through it. A new page is one entry here plus its module.
PAGE_LIST: dict[str, Page] = {
    "home": Page("screens/home.py", N_("Home"), ":material/home:"),
    "datasets": Page("screens/datasets.py", N_("Datasets"), ":material/folder_open:"),
    "new_run": Page("screens/new_run.py", N_("New run"), ":material/rocket_launch:"),
    "runs": Page("screens/runs.py", N_("Runs"), ":material/list:"),
    "run": Page("screens/run_detail.py", N_("Run detail"), ":material/monitoring:"),
    "compare": Page("screens/compare.py", N_("Compare"), ":material/compare_arrows:"),
    "predict": Page("screens/predict.py", N_("Predict"), ":material/batch_prediction:"),
    "sweeps": Page("screens/sweeps.py", N_("Sweeps"), ":material/tune:"),
}
PAGES = {key: page.path for key, page in PAGE_LIST.items()}


# How often a page with an active run (queued, running, lost) refreshes its live parts.
REFRESH_S = 2.0


def refresh_every(active: bool) -> float | None:
    """``run_every`` for a page's live fragment: every REFRESH_S while something is active."""
    return REFRESH_S if active else None


def live(fn: Callable[[], None], active: bool) -> None:
    """Run ``fn`` as the page's live fragment. In team mode every refresh first checks the
    session again: a removed user (or an expired session) loses the page within one refresh,
    because a fragment rerun never passes through main.py's login check."""
    from app import session

    def guarded() -> None:
        if session.team_mode() and session.current_user(db()) is None:
            st.rerun()  # the whole app: main.py then shows the login page
        fn()

    st.fragment(run_every=refresh_every(active))(guarded)()


def guarded_download(read: Callable[[], bytes], token: str | None) -> Callable[[], bytes]:
    """Deferred download data that re-checks the session when the button is clicked (not when
    the page was drawn): a user removed meanwhile gets nothing. ``token``: the session's, taken
    when the page is drawn (the click is served outside the page's script run)."""

    def call() -> bytes:
        if service.auth.team_mode() and service.auth.session_user(service.connect(), token) is None:
            raise PermissionError(_("this session has ended: log in again to download"))
        return read()

    return call


def progress_column(label: str | None = N_("progress")) -> object:
    """The one way a run's progress is drawn (Home and Runs): a bar with a percentage."""
    return st.column_config.ProgressColumn(
        _(label) if label else label, min_value=0.0, max_value=1.0, format="percent"
    )


def headers(labels: dict[str, str]) -> dict[str, object]:
    """Column headers in the session's language for ``st.dataframe(column_config=…)``: the
    frame keeps its own (English) column names, only the header shown changes."""
    return {col: st.column_config.Column(_(label)) for col, label in labels.items()}


def dataframe(data: Any, **kwargs: Any) -> Any:
    """``st.dataframe`` for every table the pages show. Its toolbar's "Download as CSV" is
    written in the browser from the cells shown, so text cells (and the row and column labels:
    class names, run names) that a spreadsheet would run as a formula are made safe here
    (``service.csv_safe``: a leading apostrophe; numbers are untouched)."""
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(service.csv_safe)
    frame.index = frame.index.map(service.csv_safe)
    frame.columns = frame.columns.map(service.csv_safe)
    return st.dataframe(frame, **kwargs)


def uploader_in_language(types: list[str]) -> None:
    """Streamlit's file uploader writes its own words in English (its button's "Upload", and
    "200MB per file • CSV, …" beside it) and has no setting for them. On a Chinese page they
    are drawn over with this page's own translated words: one style block holding only our
    text (no user input; the CSP allows inline styles). ``types``: the uploader's types."""
    if not i18n.zh():
        return
    from streamlit import config

    upload = _("Upload")
    limit = _("{mb} MB per file • {types}").format(
        mb=config.get_option("server.maxUploadSize"), types=", ".join(t.upper() for t in types)
    )

    def css(text: str) -> str:
        return '"' + text.replace("\\", "").replace('"', "") + '"'

    zone = "[data-testid='stFileUploaderDropzone']"
    st.html(
        "<style>"
        f"{zone} button [data-testid='stMarkdownContainer'] p,"
        "[data-testid='stFileUploaderDropzoneInstructions'] span{font-size:0 !important}"
        f"{zone} button [data-testid='stMarkdownContainer'] p::after"
        f"{{content:{css(upload)};font-size:0.875rem}}"
        "[data-testid='stFileUploaderDropzoneInstructions'] span::after"
        f"{{content:{css(limit)};font-size:0.875rem}}"
        "</style>"
    )


def db():
    """A connection for this script run (SQLite handles are per thread; opening one is cheap
    once the schema has been checked in this process)."""
    return service.connect()


# Every ASCII punctuation character CommonMark lets a backslash escape; with them escaped,
# Streamlit's Markdown shows the text literally: no links or remote images (`[x](…)`, `![x](…)`),
# no colour directives (`:red[…]`), no LaTeX (`$…$`), no headings, lists or emphasis.
_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>:$~&\"'=/;?@^%,")


def short(text: object, limit: int = 120) -> str:
    """User text for a plain-text context (select options, table cells): one line, cut to
    ``limit`` characters, so a 20 MB name can't hang the browser."""
    s = str(text)
    s = s if len(s) <= 4 * limit else s[: 4 * limit]  # bounded before any work on it
    # No control or format characters (a bidi override would reverse what follows it): column
    # and class names come from files, and older rows were stored before jobs.runs.names existed.
    s = " ".join("".join(c for c in s if not service.invisible(c) or c in "\t\n\r").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def plain(text: object, limit: int = 200) -> str:
    """User text (run, dataset and column names, file names, messages that quote them) for a
    Markdown context: cut to ``limit`` characters and shown literally. The one helper every page
    uses for text a user typed or uploaded."""
    s = short(text, limit)  # newlines and tabs would start new Markdown blocks
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in s)


def badge(status: str) -> str:
    """Markdown for a coloured status badge (the status in the session's language)."""
    return f":{service.STATUS_COLORS.get(status, 'gray')}-badge[{i18n.status(status)}]"


def status_text(row: dict[str, Any]) -> str:
    """A run-table row's status in words: a sweep trial waiting at a rung (its run finished
    there and may go on) reads "paused at a rung (sweep N)", not "finished"."""
    if paused := row.get("sweep_paused"):
        return _("paused at a rung (sweep {sweep})").format(sweep=paused["sweep"])
    return i18n.status(row["status"])


def row_badge(row: dict[str, Any]) -> str:
    """:func:`badge` for a run-table row (:func:`status_text`'s words, orange when paused)."""
    if row.get("sweep_paused"):
        return f":orange-badge[{status_text(row)}]"
    return badge(row["status"])


def tip_label(tip: str | None) -> str:
    """ "T9 — Clip the gradient norm…", in the session's language."""
    return engine_text.tip_label(tip)


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
