"""Runs: every run with status, progress, dataset, preset, best metric, duration, owner and
device; filters; cancel; pick several to compare."""

import pandas as pd
import streamlit as st

from app import i18n, session, ui
from app.i18n import N_, _
from jobs import service

st.title(_("Runs"))
ui.show_flashes()
db = ui.db()

opts = service.run_filters(db)
f1, f2, f3, f4 = st.columns(4)
ANY = "(any)"  # the option value; shown in the session's language


def _any(value: object) -> str:
    return _("(any)") if value == ANY else str(value)


status = f1.multiselect(
    _("Status"), opts["status"], key="runs_status", placeholder=_("(any)"), format_func=i18n.status
)
preset = f2.selectbox(_("Preset"), [ANY, *opts["preset"]], key="runs_preset", format_func=_any)
ds_names = dict(opts["dataset"])
dataset = f3.selectbox(
    _("Dataset"),
    [ANY, *ds_names],
    key="runs_dataset",
    format_func=lambda d: _any(d) if d == ANY else ds_names[d],
)
owner = f4.selectbox(_("Owner"), [ANY, *opts["owner"]], key="runs_owner", format_func=_any)
PAGE = 50
page = st.session_state.get("runs_page", 0)
filters = {
    "status": status or None,
    "preset": None if preset == "(any)" else preset,
    "dataset_id": None if dataset == "(any)" else dataset,
    "owner": None if owner == "(any)" else owner,
}
rows, total = service.run_rows(db, limit=PAGE, offset=page * PAGE, **filters)

if total == 0:
    if status or preset != "(any)" or dataset != "(any)" or owner != "(any)":
        st.info(_("No runs match these filters — clear a filter to see more."))
    else:
        st.info(_("No runs yet — go to **New run** to start one."))
        st.page_link(ui.PAGES["new_run"], label=_("New run →"), icon=":material/rocket_launch:")
    st.stop()
any_active = any(r["status"] in service.ACTIVE for r in rows)


def live_table() -> None:
    """The table and its actions: refreshed every 2 s while a run on this page is active."""
    db = ui.db()  # one connection per fragment run (a rerun may be on another thread)
    rows, total = service.run_rows(db, limit=PAGE, offset=page * PAGE, **filters)
    if any_active and not any(r["status"] in service.ACTIVE for r in rows):
        st.rerun()  # nothing is active any more: draw the page once more and stop refreshing
    _table(db, rows, total)


COLUMNS = {
    "id": N_("id"),
    "name": N_("name"),
    "status": N_("status"),
    "dataset": N_("dataset"),
    "preset": N_("preset"),
    "duration": N_("duration"),
    "owner": N_("owner"),
    "device": N_("device"),
}


SCORE_COLUMNS = {
    "test_balanced": N_("test balanced accuracy"),
    "test_f1": N_("test macro-F1"),
    "test_mae": N_("test MAE"),
    "test_r2": N_("test R²"),
}


def _table(db, rows, total) -> None:
    if not rows:
        st.info(_("No runs on this page any more."))
        return
    # The test split's other scores, each only when a run on this page has it: balanced
    # accuracy and macro-F1 for classifiers, MAE and R² for regressions (issue 20, §3).
    scores = [c for c in SCORE_COLUMNS if any(r[c] != "—" for r in rows)]
    table = pd.DataFrame(rows)[
        [
            "id",
            "name",
            "status",
            "progress",
            "dataset",
            "preset",
            "best",
            "test",
            *scores,
            "duration",
            "owner",
            "device",
        ]
    ]
    # The status in words (a sweep trial waiting at a rung reads "paused", not "finished").
    table["status"] = [ui.status_text(r) for r in rows]
    if i18n.zh():  # the values that are words; the frame keeps its English columns
        table["duration"] = [i18n.duration(r["seconds"]) for r in rows]
    ui.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            **ui.headers(COLUMNS),
            **ui.headers({c: SCORE_COLUMNS[c] for c in scores}),
            "progress": ui.progress_column(),
            "best": st.column_config.TextColumn(_("best validation")),
            "test": st.column_config.TextColumn(
                _("test (held out)"),
                help=_("Scored once at the end on rows never used for any choice."),
            ),
        },
    )
    st.caption(
        i18n.ngettext(
            "{total} run; showing {first}–{last}.", "{total} runs; showing {first}–{last}.", total
        ).format(total=total, first=page * PAGE + 1, last=page * PAGE + len(rows))
    )
    p1, p2, _rest = st.columns([1, 1, 6])
    if p1.button(_("← Newer"), disabled=page == 0):
        st.session_state["runs_page"] = page - 1
        st.rerun()
    if p2.button(_("Older →"), disabled=(page + 1) * PAGE >= total):
        st.session_state["runs_page"] = page + 1
        st.rerun()

    # No status in a label: it is the widget's value (Streamlit 1.67), and this table refreshes
    # while runs change (issue 20, §8); the status column beside it says it.
    labels = {r["id"]: f"#{r['id']} {r['name']}" for r in rows}
    picked = st.multiselect(
        _("Select runs"),
        list(labels),
        format_func=labels.get,
        key="runs_picked",
        placeholder=_("Choose runs"),
    )
    a1, a2, a3 = st.columns(3)
    if a1.button(_("Open"), disabled=len(picked) != 1, help=_("Open one selected run")):
        ui.open_run(picked[0])
    if a2.button(_("Compare"), disabled=len(picked) < 2, help=_("Overlay two or more runs")):
        ui.compare_runs(picked)
    if a3.button(
        _("Cancel"),
        disabled=not picked,
        help=_("Queued runs stop at once; running runs save a checkpoint and stop within seconds"),
    ):
        for run_id in picked:
            try:
                after = service.cancel_run(db, run_id, session.current_user(db))
            except service.Refused as e:
                ui.flash(
                    _("Run {id}: {error}").format(id=run_id, error=ui.plain(e, 2000)), "warning"
                )
            else:
                ui.flash(
                    (
                        _("Run {id}: cancelled.")
                        if after == "cancelled"
                        else _("Run {id}: stopping (saving a checkpoint)…")
                    ).format(id=run_id)
                )
        st.rerun()


ui.live(live_table, any_active)
