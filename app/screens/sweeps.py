"""Sweeps (issue 23 §3): a sweep's trials, a parallel-coordinates chart with a top-k% filter,
Optuna's parameter importance and the device time ASHA's pruning saved; pause, resume, cancel;
and a form to start one (the same as ``trainboard sweep``)."""

import altair as alt
import pandas as pd
import streamlit as st

from app import engine_text, session, ui
from app.i18n import N_, _
from jobs import service

T, S = service.TrialState, service.SweepStatus
STATE_WORDS = {
    T.RUNNING: N_("in flight"),
    T.PAUSED: N_("paused at a rung"),
    T.COMPLETE: N_("complete"),
    T.PRUNED: N_("pruned"),
    T.FAILED: N_("failed"),
    T.CANCELLED: N_("cancelled"),
}
SWEEP_WORDS = {
    S.RUNNING: N_("running"),
    S.PAUSED: N_("paused"),
    S.CANCELLED: N_("cancelled"),
    S.FINISHED: N_("finished"),
}
TRIAL_COLUMNS = {
    "trial": N_("trial"),
    "run": N_("run"),
    "state": N_("state"),
    "epochs": N_("epochs"),
}

st.title(_("Sweeps"))
db = ui.db()
user = session.current_user(db)


def new_sweep_form() -> None:
    """Start a sweep on a stored dataset: the space as typed on the command line."""
    datasets = {d["id"]: d for d in service.list_datasets(db)}
    if not datasets:
        st.info(_("Add a dataset on **Datasets** first."))
        return
    with st.form("sweep_form"):
        ds_id = st.selectbox(
            _("Dataset"), list(datasets), format_func=lambda i: ui.short(datasets[i]["name"])
        )
        titles = {p.name: engine_text.text(p.title) for p in service.presets()}
        preset = st.selectbox(_("Preset"), list(titles), format_func=titles.get, key="sw_preset")
        space = st.text_area(
            _("Search space, one setting a line"),
            "optim.lr=log:1e-4:1\nmodel.dropout=0:0.5",
            max_chars=2000,
            help=_(
                "FIELD=LOW:HIGH, FIELD=log:LOW:HIGH, FIELD=int:LOW:HIGH or FIELD=choice:A,B; "
                "config fields only"
            ),
        )
        c1, c2, c3, c4 = st.columns(4)
        trials = c1.number_input(_("Trials"), 1, 200, 12)
        parallel = c2.number_input(_("At once"), 1, 16, 2)
        epochs = c3.number_input(_("Epochs (top rung)"), 1, 10_000, 9)
        eta = c4.number_input(_("η (rung factor)"), 2, 4, 3)
        if not st.form_submit_button(_("Start sweep")):
            return
    ds = datasets[ds_id]
    try:
        sweep_id = service.submit_sweep(
            preset,
            ds["path"],
            space=[line.strip() for line in space.splitlines() if line.strip()][:20],
            trials=int(trials),
            parallel=int(parallel),
            min_epochs=1,
            eta=int(eta),
            max_epochs=int(epochs),
            target=ds["target"],
            overrides=None,
            dataset_id=ds["id"],
            info=ds.get("report"),
            owner=(user or {}).get("name", "local"),
            db=db,
        )
    except service.Refused as e:
        st.error(ui.plain(engine_text.refusal(e), 1000))
        return
    st.session_state["sweep_pick"] = sweep_id
    ui.flash(_("Sweep {id} started.").format(id=sweep_id))
    st.rerun()


sweeps = {s["id"]: s for s in service.list_sweeps(db)}
with st.expander(_("New sweep"), expanded=not sweeps):
    new_sweep_form()
ui.show_flashes()
if not sweeps:
    st.info(_("No sweeps yet. Start one above, or with `trainboard sweep --dataset D --space …`."))
    st.stop()
if st.session_state.get("sweep_pick") not in sweeps:
    st.session_state["sweep_pick"] = next(iter(sweeps))
picked = st.selectbox(
    _("Sweep"),
    list(sweeps),
    format_func=lambda i: (
        f"#{i} {ui.short(sweeps[i]['name'])} · {_(SWEEP_WORDS[sweeps[i]['status']])}"
    ),
    key="sweep_pick",
)


def parallel_chart(report: dict, top_pct: int) -> alt.LayerChart | None:
    """One line per trial across the parameters' axes and the score's, each axis normalised
    (log axes in log space) and labelled with its ends; the best ``top_pct``% of trials."""
    points = pd.DataFrame(report["points"])
    if points.empty:
        return None
    scores = points.drop_duplicates("trial").set_index("trial")["score"]
    keep = max(1, round(len(scores) * top_pct / 100))
    best = scores.sort_values(ascending=not report["maximize"]).index[:keep]
    points = points[points["trial"].isin(best)]
    names = {a["axis"]: a["axis"] + (" (log)" if a["log"] else "") for a in report["axes"]}
    order = list(names.values())
    points = points.assign(axis=points["axis"].map(names))
    metric = report["sweep"]["metric"]
    # each parameter's axis is the x axis's grid line (a rule layer with y/y2 left the whole
    # layered chart blank in the browser: Vega drew nothing, with no error)
    axis = alt.Axis(labelAngle=0, grid=True, gridColor="#999")
    x = alt.X("axis:N", sort=order, title=None, axis=axis)
    lines = (
        alt.Chart(points)
        .mark_line(opacity=0.7)
        .encode(
            x=x,
            y=alt.Y("norm:Q", scale=alt.Scale(domain=[0, 1]), axis=None),
            color=alt.Color("score:Q", title=metric, scale=alt.Scale(scheme="viridis")),
            detail="trial:N",
            tooltip=["trial:N", "axis:N", "label:N", "score:Q"],
        )
    )
    dots = lines.mark_point(filled=True, size=30)
    ends = pd.DataFrame(
        [{"axis": names[a["axis"]], "norm": 0.0, "text": a["low"]} for a in report["axes"]]
        + [{"axis": names[a["axis"]], "norm": 1.0, "text": a["high"]} for a in report["axes"]]
    )
    labels = (
        alt.Chart(ends)
        .mark_text(dx=4, align="left", color="#555")
        .encode(x=x, y="norm:Q", text="text:N")
    )
    # SVG, as the other charts: its text (the axes, the title) is in the page, not a canvas
    return (lines + dots + labels).properties(
        height=320,
        title=_("Parallel coordinates"),
        usermeta={"embedOptions": {"renderer": "svg"}},
    )


def show(sweep_id: int) -> None:
    db = ui.db()
    try:
        report = service.sweep_report(db, sweep_id)
    except service.Refused as e:
        st.warning(ui.plain(engine_text.refusal(e), 500))
        return
    sweep, saved = report["sweep"], report["saved"]
    trials = report["trials"]
    counts = {s: sum(1 for t in trials if t["state"] == s) for s in STATE_WORDS}
    cols = st.columns(5)
    cols[0].metric(_("Status"), _(SWEEP_WORDS[sweep["status"]]))
    cols[1].metric(_("Trials"), f"{len(trials)} / {sweep['spec']['trials']}")
    cols[2].metric(_("Complete"), counts["complete"])
    cols[3].metric(_("Paused or pruned"), counts["paused"] + counts["pruned"])
    cols[4].metric(
        _("GPU-hours saved by pruning"),
        f"{saved['hours_saved']:.3f}",
        help=_(
            "Epochs not trained by the trials ASHA stopped at a rung ({epochs}), times each "
            "one's measured seconds per epoch."
        ).format(epochs=saved["epochs_saved"]),
    )
    st.caption(
        _("Space: {space}. Rungs at {rungs} epochs; the best 1/{eta} at a rung go on.").format(
            space="; ".join(report["space"]),
            rungs=", ".join(map(str, report["rungs"])),
            eta=sweep["spec"]["eta"],
        )
    )
    if sweep.get("note"):
        st.info(_("Waiting for a slot in the queue: {why}").format(why=sweep["note"].get("text")))
    st.subheader(_("Parallel coordinates"))
    top = st.slider(_("Show the best (% of scored trials)"), 5, 100, 100, 5, key="sweep_top")
    chart = parallel_chart(report, top)
    if chart is None:
        st.info(_("No trial has a score yet."))
    else:
        st.altair_chart(chart, width="stretch")
    st.subheader(_("Trials"))
    frame = pd.DataFrame(trials)
    if not frame.empty:
        frame["state"] = frame["state"].map(lambda s: _(STATE_WORDS.get(s, s)))
        ui.dataframe(frame, hide_index=True, column_config=ui.headers(TRIAL_COLUMNS))


def importance(sweep_id: int) -> None:
    st.subheader(_("Hyperparameter importance"))
    try:
        imp = service.sweep_importance(ui.db(), sweep_id)
    except service.Refused:
        imp = None
    if not imp:
        st.caption(_("Shown once at least 3 trials have completed every rung (Optuna's fANOVA)."))
        return
    frame = pd.DataFrame({"setting": list(imp), "importance": list(imp.values())})
    st.altair_chart(
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("importance:Q", title=_("importance")),
            y=alt.Y("setting:N", sort="-x", title=None),
        ),
        width="stretch",
    )


sweep = sweeps[picked]
buttons = st.columns(6)
actions = {"running": ("pause", "cancel"), "paused": ("resume", "cancel")}.get(sweep["status"], ())
labels = {"pause": N_("Pause"), "resume": N_("Resume"), "cancel": N_("Cancel sweep")}
for i, action in enumerate(actions):
    if buttons[i].button(_(labels[action]), key=f"sweep_{action}"):
        try:
            service.control_sweep(db, picked, action, user)
        except service.Refused as e:
            st.error(ui.plain(engine_text.refusal(e), 500))
        else:
            st.rerun()
ui.live(lambda: show(picked), sweep["status"] in ("running", "paused") or sweep["running"] > 0)
importance(picked)
