"""Compare: selected runs overlaid on the same axes, with the settings they differ in."""

import pandas as pd
import streamlit as st

from app import ab_report, charts, engine_text, i18n, ui
from app.ab_report import group_label
from app.i18n import N_, _
from jobs import service

st.title(_("Compare runs"))
db = ui.db()
rows, total = service.run_rows(db, limit=200)
if total < 2:
    st.info(_("Compare needs at least two runs — queue some on **New run** (try 'A/B one tip')."))
    st.page_link(ui.PAGES["new_run"], label=_("New run →"), icon=":material/rocket_launch:")
    st.stop()

# An A/B group over paired seeds (issue 23 §2) is judged as a whole: app/ab_report.py.
groups = {g["group_id"]: g for g in service.ab_groups(db)}
if groups:
    if st.session_state.get("compare_group") not in (None, *groups):
        st.session_state["compare_group"] = None  # a group deleted meanwhile
    group = st.selectbox(
        _("A/B group over seeds"),
        [None, *groups],
        format_func=lambda g: _("none: pick runs below") if g is None else group_label(groups[g]),
        key="compare_group",
    )
    if group is not None:
        live = groups[group]["active"] > 0  # the same statuses as the report's "active"
        ui.live(lambda: ab_report.show(ui.db(), group, live), live)
        st.stop()
# Only what never changes: a chip's label is its value (Streamlit 1.67), so a status in it went
# stale on screen and came back matching no run (issue 20, §8); the Outcome table below shows
# each run's status and follows the store.
labels = {r["id"]: f"#{r['id']} {ui.short(r['name'])} · {r['preset']}" for r in rows}
if "compare_pick" not in st.session_state:
    st.session_state["compare_pick"] = [
        i for i in st.session_state.get("compare_ids", []) if i in labels
    ]
picked = st.multiselect(
    _("Runs"),
    list(labels),
    format_func=labels.get,
    key="compare_pick",
    placeholder=_("Choose runs"),
)
if len(picked) < 2:
    st.info(_("Pick two or more runs to overlay them."))
    st.stop()

any_active = any(r["status"] in service.ACTIVE for r in rows if r["id"] in picked)
smoothing = st.slider(_("Smoothing"), 0.0, 0.99, 0.6, 0.01, key="compare_smoothing")

OUTCOME_COLUMNS = {
    "run": N_("run"),
    "name": N_("name"),
    "status": N_("status"),
    "best": N_("best validation"),
    "test (held out)": N_("test (held out)"),
    "test balanced acc": N_("test balanced accuracy"),
    "test macro-F1": N_("test macro-F1"),
    "worst class (test recall)": N_("class found least (test recall)"),
    "test MAE": N_("test MAE"),
    "test R²": N_("test R²"),
    "best baseline (same split)": N_("best scikit-learn baseline (same split)"),
    "best val loss": N_("best val loss"),
    "epochs": N_("epochs"),
    "LR cuts": N_("LR cuts"),
    "stop": N_("stop"),
    "time": N_("time"),
}


SCORES = (
    "test balanced acc",
    "test macro-F1",
    "worst class (test recall)",
    "test MAE",
    "test R²",
)


def _run_name(text: str) -> str:
    """ "run 3" (how the read models name a run in a table) in the session's language."""
    head, _sep, run_id = text.partition(" ")
    return _("run {id}").format(id=run_id) if head == "run" and run_id.isdigit() else text


def _outcome(runs: list[dict], paused: dict[int, dict]) -> pd.DataFrame:
    """``paused``: the runs that are sweep trials waiting at a rung (their status reads so)."""
    table = pd.DataFrame(service.compare_summary(runs))
    # a score no picked run has (a regression's among classifiers, or the other way) is left out
    table = table.drop(columns=[c for c in SCORES if (table[c] == "—").all()])
    table["time"] = [i18n.duration(v) for v in table["time"]]
    table["stop"] = [engine_text.stop_reason(v) for v in table["stop"]]
    table["status"] = [
        ui.status_text({"status": r["status"], "sweep_paused": paused.get(r["id"])}) for r in runs
    ]
    if i18n.zh():  # the values that are words; the frame keeps its English columns
        table["run"] = [_run_name(v) for v in table["run"]]
    return table


def live_compare() -> None:
    """Chart and outcomes; refreshed every 2 s while any of the picked runs is active."""
    db = ui.db()  # one connection per fragment run (a rerun may be on another thread)
    runs = [service.get_run(db, i) for i in picked]
    if any_active and not any(r["status"] in service.ACTIVE for r in runs):
        st.rerun()  # the last active run ended: draw once more and stop refreshing
    keys = sorted(set().union(*(service.metric_keys(db, i) for i in picked)))
    if keys:
        _chart(db, runs, keys)
    else:
        st.info(_("None of these runs has logged metrics yet."))
    st.subheader(_("Outcome"))
    ui.dataframe(
        _outcome(runs, service.paused_trials(db, picked)),
        hide_index=True,
        width="stretch",
        column_config=ui.headers(OUTCOME_COLUMNS),
    )
    if per_class := service.per_class_recall(runs):
        with st.expander(_("Recall of each class (test split)")):
            headers = {c: st.column_config.Column(_run_name(c)) for c in per_class[0]}
            headers["class"] = st.column_config.Column(_("class"))
            ui.dataframe(
                pd.DataFrame(per_class), hide_index=True, width="stretch", column_config=headers
            )
    st.subheader(_("Settings that differ"))
    diff = service.config_diff(runs)
    if diff:
        headers = {c: st.column_config.Column(_run_name(c)) for c in diff[0] if c != "setting"}
        headers["setting"] = st.column_config.Column(_("setting"))
        ui.dataframe(pd.DataFrame(diff), hide_index=True, width="stretch", column_config=headers)
    else:
        st.success(_("These runs have identical settings (only the seed of chance differs)."))


def _chart(db, runs: list[dict], keys: list[str]) -> None:
    default = "val/loss" if "val/loss" in keys else keys[0]
    if st.session_state.get("compare_key") not in keys:
        st.session_state["compare_key"] = default
    k1, k2 = st.columns([5, 1])
    key = k1.selectbox(_("Metric"), keys, key="compare_key")
    log = k2.checkbox(
        _("Log scale"), value=key == "lr" or key.startswith("ratio/"), key="compare_log"
    )
    # Legend entries name the run: "#3 my-run".
    names = {r["id"]: f"#{r['id']} {ui.short(r.get('name') or '', 60)}".strip() for r in runs}
    series = {i: service.series(db, i, [key], max_points=charts.MAX_POINTS)[key] for i in picked}
    frames = {names[i]: charts.series_frame(s, smoothing) for i, s in series.items() if len(s)}
    if frames:
        st.altair_chart(charts.compare_chart(frames, key, log=log), width="stretch")
    else:
        st.info(_("None of these runs has logged {key} yet.").format(key=key))


ui.live(live_compare, any_active)
