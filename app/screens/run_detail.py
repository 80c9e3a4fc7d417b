"""Run detail, live: tiles, charts with LR-cut and doctor annotations, the doctor panel,
config, event log and downloads. While the run is active, everything below the run selector
refreshes every 2 s in one fragment (one connection per refresh); the charts read only new
points."""

import contextlib
import json
import logging

import pandas as pd
import streamlit as st

from app import charts, engine_text, i18n, lr_find_view, session, ui
from app.i18n import N_, _
from jobs import service

REFRESH_S = ui.REFRESH_S
CONFIG_COLUMNS = {
    "setting": N_("setting"),
    "value": N_("value"),
    "tip": N_("tip"),
    "why": N_("why"),
}
LOG_COLUMNS = {"step": N_("step"), "kind": N_("kind"), "message": N_("message"), "tip": N_("tip")}

st.title(_("Run detail"))
ui.show_flashes()
db = ui.db()

if "run" in st.query_params and "run_id" not in st.session_state:
    with contextlib.suppress(ValueError):
        st.session_state["run_id"] = int(st.query_params["run"])
recent, total = service.run_rows(db, limit=100)
if total == 0:
    st.info(_("No runs yet — go to **New run** to start one."))
    st.page_link(ui.PAGES["new_run"], label=_("New run →"), icon=":material/rocket_launch:")
    st.stop()
# A select widget's value travels as its label (Streamlit 1.67): a label that changed while the
# page was open (a status: "running" → "finished") stayed on screen and came back as a value
# that matches no run (issue 20, §8). So the labels hold only what never changes; the status is
# the header's badge, which the live part below keeps current.
choices = {r["id"]: f"#{r['id']} {ui.short(r['name'])}" for r in recent}
run_id = st.session_state.get("run_id")
if run_id not in choices:
    if run_id is not None:
        try:
            r = service.get_run(db, run_id)
            choices = {run_id: f"#{run_id} {ui.short(r.get('name') or '')}", **choices}
        except service.RunNotFound:
            st.warning(_("There is no run {id}; showing the latest run instead.").format(id=run_id))
            run_id = None
    if run_id is None:
        run_id = recent[0]["id"]
ids = list(choices)


def _picked() -> None:
    st.session_state["run_id"] = st.session_state["rd_run"]


# A keyed selector: its value survives refreshes even when the labels (statuses) or the list of
# recent runs change; a run opened from another page (session "run_id") is put into it here.
if st.session_state.get("rd_run") != run_id:
    st.session_state["rd_run"] = run_id
run_id = st.selectbox(_("Run"), ids, format_func=choices.get, key="rd_run", on_change=_picked)
st.session_state["run_id"] = run_id
st.query_params["run"] = str(run_id)

detail = service.run_detail(db, run_id)
spec = detail["run"]["spec"]
active = detail["run"]["status"] in service.ACTIVE

smoothing = st.slider(
    _("Smoothing (exponential moving average of the faint raw line)"),
    0.0,
    0.99,
    0.6,
    0.01,
    key="smoothing",
)
# A loss that starts at 500,000 (unscaled inputs) flattens every later epoch at the bottom of
# a linear axis: a log axis shows them (as Compare offers).
log_loss = st.checkbox(_("Log scale for the loss"), value=False, key="log_loss")


def live() -> None:
    """Everything that changes while the run is active: the tiles, the stop notice, the charts,
    the doctor and the event log. Refreshed every 2 s while the run is queued, running or lost."""
    db = ui.db()  # one connection per fragment run (a rerun may be on another thread)
    try:
        detail = service.run_detail(db, run_id)
    except service.RunNotFound:
        st.warning(_("Run {id} no longer exists.").format(id=run_id))
        return
    run = detail["run"]
    if active and run["status"] not in service.ACTIVE:
        st.rerun()  # the run just ended: draw the whole page once more and stop refreshing
    _header(db, detail)
    if (found := service.lr_find_result(run)) is not None:  # a run that is an LR range test
        lr_find_view.show(found)
    try:
        _charts(db, run)
    except Exception as e:  # like the entry file: a message, not a traceback
        logging.getLogger("trainboard.app").exception("live charts of run %s failed", run_id)
        st.error(_("The charts could not be drawn: {error}").format(error=e))
    events = service.events(db, run_id)
    _doctor(db, events)
    _tabs(detail, events)


def _header(db, detail: dict) -> None:
    run, row = detail["run"], detail["row"]
    summary = run.get("summary") or {}
    st.markdown(
        f"### {ui.plain(row['name'])}\n{ui.row_badge(row)} · {ui.plain(row['dataset'])} · "
        + _("preset **{preset}**").format(preset=ui.plain(row["preset"]))
        + f" · {ui.plain(row['device'])}"
        # a worker on another host whose records are still on their way (jobs.remote)
        + (" · :orange-badge[" + _("buffered, catching up") + "]" if row.get("catching_up") else "")
    )
    h1, h0, h2, h3, h4, h5 = st.columns(6)
    best_label = (
        _("Best validation {metric}").format(metric=engine_text.word(row["metric_name"]))
        if row["metric_name"]
        else _("Best validation")
    )
    h1.metric(
        best_label,
        row["best"],
        help=_(
            "The best epoch was picked on the validation split, so this score flatters a little."
        ),
    )
    if run["status"] == "running":  # the test split is scored at the end: till then, the ETA
        _time_left(h0, row)
    else:
        h0.metric(
            _("Test (held out)"),
            row["test"],
            help=_(
                "The test split, scored once at the end with the best weights and never used "
                "for any choice: the honest score."
            ),
        )
    h2.metric(_("Duration"), i18n.duration(row["seconds"]))
    epochs = summary.get("epochs", row.get("live_epochs"))
    total = ((run.get("spec") or {}).get("train") or {}).get("epochs")
    h3.metric(
        _("Epochs"),
        "—" if epochs is None else f"{epochs} / {total}" if run["status"] == "running" else epochs,
    )
    h4.metric(_("LR cuts"), summary.get("lr_cuts", row.get("live_cuts", "—")))
    h5.metric(_("Progress"), f"{row['progress']:.0%}")
    _baselines(summary)
    if run["status"] == "running":
        st.progress(
            row["progress"],
            text=_("running · {progress} of the epochs").format(progress=f"{row['progress']:.0%}"),
        )
    if paused := row.get("sweep_paused"):
        st.info(
            _(
                "Sweep {sweep} paused this trial at a rung, after {epochs} epochs. If the sweep "
                "promotes it, it goes on from its checkpoint under this run's id; if not, it "
                "stays as it is."
            ).format(sweep=paused["sweep"], epochs=paused["epochs"])
        )
    if row["stopping"]:
        st.info(_("Stopping (saving a checkpoint)…"))
    if run.get("error"):
        st.error(
            f"{i18n.status(run['status']).capitalize()}: "
            f"{ui.plain(engine_text.run_error(run), 2000)}"
        )
    # While a stop is under way the notice above replaces the button (and goes with the run's
    # "cancelled" status: it is drawn from the run's state, not a one-shot message).
    can_cancel = run["status"] in service.ACTIVE and not row["stopping"]
    if can_cancel and st.button(_("Cancel this run")):
        try:
            after = service.cancel_run(db, run_id, session.current_user(db))
        except service.Refused as e:
            st.warning(ui.plain(e, 2000))
        else:
            if after == "cancelled":
                ui.flash(_("Cancelled."))
            st.rerun()
    _resume_or_delete(db, run, run_id)


def _time_left(tile, row: dict) -> None:
    """The ETA at the pace since the run (re)started; "estimating…" until it has trained
    two epochs. A run that may stop early (early stopping, the LR floor) gets "≤": its ETA
    is the most it will take."""
    seconds = row.get("eta_s")
    if seconds is None:
        tile.metric(
            _("Time left"),
            _("estimating…"),
            help=_("Shown once the run has trained two epochs, at the pace they took."),
        )
        return
    bound = row.get("eta_upper_bound")
    tile.metric(
        _("Time left"),
        ("≤ " if bound else "") + i18n.duration(seconds),
        help=_(
            "At most: the run may stop sooner, by early stopping or on the LR floor (T7). "
            "Measured on the epochs trained since it started."
        )
        if bound
        else _("At the pace of the epochs trained since it started."),
    )


def _resume_or_delete(db, run: dict, run_id: int) -> None:
    """A run that is over: resume it from its checkpoint (failed, cancelled, lost), or delete
    it with its files. Only its owner or an admin sees the buttons."""
    if run["status"] in service.ACTIVE or not session.may_modify(db, run.get("owner")):
        return
    point = service.resume_point(db, run_id)
    c1, c2 = st.columns([3, 1])
    if point.possible:
        with c1.form(f"resume-{run_id}"):
            st.caption(ui.plain(engine_text.text(point.reason), 500))
            epochs = st.number_input(
                _("Epochs in all"),
                min_value=1,
                value=int((run.get("spec") or {}).get("train", {}).get("epochs") or 1),
                step=1,
                key=f"rd_resume_epochs_{run_id}",
            )
            if st.form_submit_button(_("Resume from the checkpoint"), type="primary"):
                try:
                    service.resume_run(db, run_id, session.current_user(db), epochs=int(epochs))
                except service.auth.NotAllowed as e:
                    st.warning(ui.plain(engine_text.text(e), 1000))
                except service.Refused as e:
                    st.error(ui.plain(engine_text.refusal(e), 1000))
                else:
                    ui.flash(_("Resumed: run {id} is queued again.").format(id=run_id))
                    st.rerun()
    with c2.popover(_("Delete this run")):
        st.caption(_("Deletes its metrics, events, checkpoint and model. This can't be undone."))
        if st.button(_("Delete for good"), key=f"rd_delete_{run_id}", type="primary"):
            try:
                service.delete_run(db, run_id, session.current_user(db))
            except service.Refused as e:
                st.warning(ui.plain(e, 1000))
            else:
                st.session_state.pop("run_id", None)
                ui.flash(_("Run {id} was deleted.").format(id=run_id))
                st.switch_page(ui.PAGES["runs"])


def _annotations(data: charts.ChartData) -> None:
    notes = [
        _("**{label}** at step {step}").format(label=e.label, step=e.step)
        for e in data.events.itertuples()
        if e.kind not in ("cancelled", "released")
    ]
    hints = [
        _("{label} at step {step}").format(label=e.label, step=e.step)
        for e in data.hints.itertuples()
    ]
    if notes:
        st.caption(_("Marked on the charts: {marks}").format(marks=" · ".join(notes)))
    if hints:
        st.caption(_("Dashed marks — fixed LR, {marks} (T7)").format(marks=" · ".join(hints)))


def _charts(db, run: dict) -> None:
    key = f"chart-cache-{run_id}"
    if key not in st.session_state:
        st.session_state[key] = charts.RunCache(run_id)
    cache = st.session_state[key]
    status = run["status"]
    data = charts.run_chart_data(db, run_id, spec=spec, cache=cache, smoothing=smoothing)
    if data.points == 0:
        if status == "queued":
            st.info(_("Queued — waiting for a worker. The charts appear as soon as it starts."))
        else:
            st.info(_("No metrics logged yet."))
        return
    # Between two refreshes with nothing new, reuse the charts instead of rebuilding them.
    signature = (
        data.points,
        data.last_step,
        len(data.events),
        len(data.hints),
        smoothing,
        log_loss,
        i18n.lang(),  # titles and marks are drawn in the session's language
    )
    built = st.session_state.get(f"chart-figs-{run_id}")
    if built is None or built[0] != signature:
        built = (signature, charts.run_charts(data, log_loss=log_loss))
        st.session_state[f"chart-figs-{run_id}"] = built
    figs = built[1]
    if "loss" in figs:
        st.altair_chart(figs["loss"], width="stretch")
        _annotations(data)
    left, right = st.columns(2)
    for i, panel in enumerate(p for p in ("metric", "lr", "ratio", "grad") if p in figs):
        (left if i % 2 == 0 else right).altair_chart(figs[panel], width="stretch")
    st.caption(
        _("{points} points drawn, up to step {step}").format(
            points=f"{data.points:,}", step=f"{data.last_step:,}"
        )
        + (_(" · refreshing every {seconds} s").format(seconds=f"{REFRESH_S:g}") if active else "")
    )


def _doctor(db, events: list[dict]) -> None:
    st.subheader(_("Training doctor"))
    found = service.findings(events)
    if not found:
        st.success(
            _("No warnings: pre-flight checks passed and the live rules found nothing.")
            if events
            else _("The doctor reports here once the run starts.")
        )
    by_id = {e["id"]: e for e in events}
    main = [f for f in found if not f.get("explained_by")]
    explained = [f for f in found if f.get("explained_by")]
    for f in main:
        _finding(db, f, by_id)
    if explained:
        with st.expander(
            _("{n} more finding(s), likely explained by the ones above").format(n=len(explained))
        ):
            for f in explained:
                _finding(db, f, by_id)


def _finding(db, f: dict, by_id: dict) -> None:
    """One doctor finding: what was seen, how often, the advice and its one-click change."""
    icon = "🛑" if f["severity"] == "error" else ("⚠️" if f["severity"] == "warning" else "ℹ️")
    message, suggestion = engine_text.finding(f, by_id.get(f["event_id"]))
    with st.container(border=True):
        if f.get("start_here"):
            st.markdown(
                ":blue-badge["
                + _("Start here")
                + "] "
                + _("the first finding to act on: the others often follow from it")
            )
        st.markdown(
            f"{icon} **{f['tip']}** · {engine_text.tip_title(f['tip'])}  \n"
            f"{ui.plain(message, 1000)}"
        )
        if f.get("count", 1) > 1:
            st.caption(
                _("Seen {count} times, from step {first} to step {last}.").format(
                    count=f["count"], first=f["first_step"], last=f["last_step"]
                )
            )
        if f.get("explained_by"):
            st.caption(_("A finding above is the likely cause of this one: fix that one first."))
        change = f["change"]
        if suggestion:
            st.caption(_("Suggested: {suggestion}").format(suggestion=ui.plain(suggestion, 500)))
        if change:
            text = engine_text.change_text(change)
            if st.button(
                _("Queue a run with this change ({change})").format(change=text),
                key=f"fix-{f['event_id']}",
            ):
                try:
                    new_id = service.queue_with_change(
                        db, run_id, change, owner=session.owner_name(db)
                    )
                except service.Refused as e:
                    st.error(
                        _("That change isn't valid here: {error}").format(
                            error=ui.plain(engine_text.refusal(e), 1000)
                        )
                    )
                else:
                    ui.flash(_("Queued run {id} with {change}.").format(id=new_id, change=text))
                    ui.open_run(new_id)


BASELINE_NAMES = {
    "logistic regression": N_("logistic regression"),
    "ridge regression": N_("ridge regression"),
    "gradient-boosted trees": N_("gradient-boosted trees"),
}


def _baselines(summary: dict) -> None:
    """scikit-learn's reference scores on the run's own split (engine.baselines), beside the
    net's: they tell a beginner what a good score is here, and never hide a weaker net."""
    base = summary.get("baselines") or {}
    if not base or summary.get("test_metric") is None:
        return
    classify = summary.get("metric") == "acc"

    def score(v: float) -> str:
        return f"{v:.1%}" if classify else f"{v:.4g}"

    parts = [
        _("{model} {score}").format(
            model=_(BASELINE_NAMES.get(b["model"], b["model"])), score=score(b["test_metric"])
        )
        for b in base.values()
    ]
    best = (max if classify else min)(b["test_metric"] for b in base.values())
    net = summary["test_metric"]
    behind = net < best if classify else net > best
    st.caption(
        (
            _(
                "Reference scores on the same test split (scikit-learn, default settings): "
                "{parts}; this net {net}."
            )
            if classify
            else _(
                "Reference RMSE on the same test split (scikit-learn, default settings; lower "
                "is better): {parts}; this net {net}."
            )
        ).format(parts=_("; ").join(parts), net=score(net))
        + (
            " " + _("A simpler model does better here: try more data or another preset.")
            if behind
            else ""
        )
    )


def _confusion(summary: dict) -> None:
    """The test split's confusion matrix (rows: true class, columns: predicted)."""
    cm, names = summary.get("confusion_matrix"), summary.get("class_names")
    if not cm or not names or len(names) != len(cm) or len(names) > 50:
        return
    labels = [ui.short(n, 40) for n in names]
    st.caption(
        _("Test split, {rows} rows: rows are the true class, columns the predicted one.").format(
            rows=summary.get("test_rows", sum(map(sum, cm)))
        )
    )
    ui.dataframe(pd.DataFrame(cm, index=labels, columns=labels), width="content")
    if summary.get("test_balanced_accuracy") is not None:
        st.markdown(
            _(
                "Balanced accuracy **{balanced}** (the mean of each class's recall: a class the "
                "model never predicts counts as 0, whatever its size) · macro-F1 **{f1}**"
            ).format(
                balanced=f"{summary['test_balanced_accuracy']:.1%}",
                f1=f"{summary['test_macro_f1']:.3f}",
            )
        )
    if per_class := summary.get("per_class"):
        ui.dataframe(
            pd.DataFrame(
                [
                    {
                        "class": ui.short(c["class"], 40),
                        "recall": f"{c['recall']:.1%}",
                        "precision": f"{c['precision']:.1%}",
                        "f1": f"{c['f1']:.3f}",
                        "support": c["support"],
                    }
                    for c in per_class
                ]
            ),
            hide_index=True,
            width="content",
            column_config=ui.headers(PER_CLASS_COLUMNS),
        )


PER_CLASS_COLUMNS = {
    "class": N_("class"),
    "recall": N_("recall (found of its rows)"),
    "precision": N_("precision (right when predicted)"),
    "f1": N_("F1"),
    "support": N_("test rows"),
}


def _bundle(run_id: int) -> dict | None:
    """The run's model bundle (issue 21): its parity line, and a Predict button when offered."""
    state = service.run_bundle(ui.db(), run_id)
    if state is None:
        return None
    if state["folder"] is not None:
        left, right = st.columns([4, 1])
        left.success(
            _(
                "Bundle checked on {rows} test rows: model.ts gives this run's own predictions "
                "(largest difference {diff:.2g})."
            ).format(rows=state["rows"], diff=state.get("max_diff") or 0.0),
            icon=":material/verified:",
        )
        if right.button(
            _("Predict"), key=f"rd_predict_{run_id}", icon=":material/batch_prediction:"
        ):
            st.session_state["predict_run"] = run_id
            st.switch_page(ui.PAGES["predict"])
    else:
        why = engine_text.text(state.get("why") or "")
        st.warning(_("No model bundle is offered: {why}").format(why=ui.plain(why, 500)))
    return state


def _tabs(detail: dict, events: list[dict]) -> None:
    summary = detail["run"].get("summary") or {}
    bundle = _bundle(detail["run"]["id"])
    if summary.get("confusion_matrix"):
        with st.expander(_("Confusion matrix (test split)")):
            _confusion(summary)
    tab_cfg, tab_log, tab_dl = st.tabs([_("Config"), _("Event log"), _("Downloads")])
    with tab_cfg:
        tips = service.explain(spec)
        if tips:
            ui.dataframe(
                pd.DataFrame(
                    [
                        {
                            "setting": s.field,
                            "value": str(s.value),
                            "tip": s.tip,
                            "why": engine_text.text(s.why),
                        }
                        for s in tips
                    ]
                ),
                hide_index=True,
                width="stretch",
                column_config=ui.headers(CONFIG_COLUMNS),
            )
        st.json(spec, expanded=False)
    with tab_log:
        if events:
            ui.dataframe(
                pd.DataFrame(
                    [
                        {
                            "step": e["step"],
                            "kind": e["kind"],
                            "message": ui.short(engine_text.event_message(e), 500),
                            "tip": (e.get("data") or {}).get("tip", ""),
                        }
                        for e in events
                    ]
                ),
                hide_index=True,
                width="stretch",
                key="rd-event-log",
                column_config=ui.headers(LOG_COLUMNS),
            )
        else:
            st.info(_("No events yet."))
    with tab_dl:
        st.download_button(
            _("Resolved config (JSON)"),
            json.dumps(spec, indent=2),
            file_name=f"run-{run_id}-config.json",
            mime="application/json",
        )
        # Files are read only when a button is clicked (deferred data), not on every rerun.
        for name, path in detail["files"].items():
            what = _("Best model") if name == service.MODEL else _("Checkpoint (to resume)")
            st.download_button(
                f"{what} ({name}, {path.stat().st_size / 1024:.0f} KiB)",
                data=ui.guarded_download(path.read_bytes, token),
                file_name=f"run-{run_id}-{name}",
                key=f"dl-{name}",
            )
        if bundle is not None and bundle["folder"] is not None:
            rid = detail["run"]["id"]
            st.download_button(
                _("Model bundle (.zip: model.ts, schema.json, example.csv, predict.py, README)"),
                data=ui.guarded_download(lambda: service.bundle_zip(ui.db(), rid), token),
                file_name=f"run-{rid}-bundle.zip",
                mime="application/zip",
                key="dl-bundle",
            )
        if not detail["files"]:
            st.caption(_("Model files appear here once the run has finished an epoch."))
        st.download_button(
            _("Metrics (CSV: key, step, value)"),
            data=ui.guarded_download(
                lambda: service.export_metrics_csv(run_id).read_bytes(), token
            ),
            file_name=f"run-{run_id}-metrics.csv",
            mime="text/csv",
        )


token = st.session_state.get(session.TOKEN_KEY)
ui.live(live, active)
