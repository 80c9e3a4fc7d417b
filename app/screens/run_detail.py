"""Run detail, live: charts with LR-cut and doctor annotations, the doctor panel, config,
event log and downloads. The charts refresh in a fragment that reads only new points."""

import contextlib
import json
import logging

import pandas as pd
import streamlit as st

from app import charts, session, ui
from jobs import service

REFRESH_S = 2.0

st.title("Run detail")
ui.show_flashes()
db = ui.db()

if "run" in st.query_params and "run_id" not in st.session_state:
    with contextlib.suppress(ValueError):
        st.session_state["run_id"] = int(st.query_params["run"])
recent, total = service.run_rows(db, limit=100)
if total == 0:
    st.info("No runs yet — go to **New run** to start one.")
    st.page_link(ui.PAGES["new_run"], label="New run →", icon=":material/rocket_launch:")
    st.stop()
choices = {r["id"]: f"#{r['id']} {ui.short(r['name'])} · {r['status']}" for r in recent}
run_id = st.session_state.get("run_id")
if run_id not in choices:
    if run_id is not None:
        try:
            r = service.get_run(db, run_id)
            choices = {
                run_id: f"#{run_id} {ui.short(r.get('name') or '')} · {r['status']}",
                **choices,
            }
        except service.RunNotFound:
            st.warning(f"There is no run {run_id}; showing the latest run instead.")
            run_id = None
    if run_id is None:
        run_id = recent[0]["id"]
ids = list(choices)
run_id = st.selectbox("Run", ids, index=ids.index(run_id), format_func=choices.get)
st.session_state["run_id"] = run_id
st.query_params["run"] = str(run_id)

detail = service.run_detail(db, run_id)
run, row = detail["run"], detail["row"]
spec = run["spec"]
active = run["status"] in service.ACTIVE

h1, h2, h3, h4, h5 = st.columns([3, 2, 2, 2, 2])
h1.markdown(
    f"### {ui.plain(row['name'])}\n{ui.badge(row['status'])} · {ui.plain(row['dataset'])} · "
    f"preset **{ui.plain(row['preset'])}** · {ui.plain(row['device'])}"
)
h2.metric("Best validation", row["best"])
h3.metric("Duration", row["duration"])
summary = run.get("summary") or {}
h4.metric("LR cuts", summary.get("lr_cuts", "—"))
h5.metric("Epochs", summary.get("epochs", "—"))
if run.get("error"):
    st.error(f"{run['status'].capitalize()}: {ui.plain(run['error'], 2000)}")
if active and st.button("Cancel this run"):
    try:
        after = service.cancel_run(db, run_id, session.current_user(db))
    except (service.StoreError, service.auth.NotAllowed) as e:
        st.warning(ui.plain(e, 2000))
    else:
        ui.flash("Cancelled." if after == "cancelled" else "Stopping (saving a checkpoint)…")
        st.rerun()

smoothing = st.slider(
    "Smoothing (exponential moving average of the faint raw line)",
    0.0,
    0.99,
    0.6,
    0.01,
    key="smoothing",
)


def _annotations(data: charts.ChartData) -> None:
    notes = [
        f"**{e.label}** at step {e.step}"
        for e in data.events.itertuples()
        if e.kind not in ("cancelled", "released")
    ]
    hints = [f"{e.label} at step {e.step}" for e in data.hints.itertuples()]
    if notes:
        st.caption("Marked on the charts: " + " · ".join(notes))
    if hints:
        st.caption("Dashed marks — fixed LR, " + " · ".join(hints) + " (T7)")


def live_charts() -> None:
    # A fragment rerun may run on another thread than the page: it needs its own connection.
    try:
        _live_charts(ui.db())
    except Exception as e:  # like the entry file: a message, not a traceback
        logging.getLogger("trainboard.app").exception("live charts of run %s failed", run_id)
        st.error(f"The charts could not be drawn: {e}")


def _live_charts(db) -> None:
    key = f"chart-cache-{run_id}"
    if key not in st.session_state:
        st.session_state[key] = charts.RunCache(run_id)
    cache = st.session_state[key]
    now = service.get_run(db, run_id)
    status = now["status"]
    if status == "running":
        st.progress(
            float(now.get("progress") or 0.0),
            text=f"running · {float(now.get('progress') or 0.0):.0%} of the epochs",
        )
    data = charts.run_chart_data(db, run_id, spec=spec, cache=cache, smoothing=smoothing)
    if active and status not in service.ACTIVE:
        st.rerun()  # the run just ended: refresh the header, doctor and downloads once
    if data.points == 0:
        if status == "queued":
            st.info("Queued — waiting for a worker. The charts appear as soon as it starts.")
        else:
            st.info("No metrics logged yet.")
        return
    # Between two refreshes with nothing new, reuse the charts instead of rebuilding them.
    signature = (data.points, data.last_step, len(data.events), len(data.hints), smoothing)
    built = st.session_state.get(f"chart-figs-{run_id}")
    if built is None or built[0] != signature:
        built = (signature, charts.run_charts(data))
        st.session_state[f"chart-figs-{run_id}"] = built
    figs = built[1]
    if "loss" in figs:
        st.altair_chart(figs["loss"], width="stretch")
        _annotations(data)
    left, right = st.columns(2)
    for i, panel in enumerate(p for p in ("metric", "lr", "ratio", "grad") if p in figs):
        (left if i % 2 == 0 else right).altair_chart(figs[panel], width="stretch")
    st.caption(
        f"{data.points:,} points drawn, up to step {data.last_step:,}"
        + (f" · refreshing every {REFRESH_S:g} s" if active else "")
    )


st.fragment(run_every=REFRESH_S if active else None)(live_charts)()

# --- the doctor ------------------------------------------------------------------------------
st.subheader("Training doctor")
events = service.events(db, run_id)
found = service.findings(events)
if not found:
    st.success(
        "No warnings: pre-flight checks passed and the live rules found nothing."
        if events
        else "The doctor reports here once the run starts."
    )
for f in found:
    icon = "🛑" if f["severity"] == "error" else ("⚠️" if f["severity"] == "warning" else "ℹ️")
    with st.container(border=True):
        st.markdown(
            f"{icon} **{f['tip']}** · {ui.TIP_TITLES.get(f['tip'], '')}  \n{ui.plain(f['message'], 1000)}"
        )
        change = f["change"]
        if f["suggestion"]:
            st.caption(f"Suggested: {ui.plain(f['suggestion'], 500)}")
        if change:
            text = ", ".join(f"{k}={v}" for k, v in change.items())
            if st.button(f"Queue a run with this change ({text})", key=f"fix-{f['event_id']}"):
                new_id = service.queue_with_change(db, run_id, change, owner=session.owner_name(db))
                if isinstance(new_id, str):
                    st.error(f"That change isn't valid here: {new_id}")
                else:
                    ui.flash(f"Queued run {new_id} with {text}.")
                    ui.open_run(new_id)

# --- config, events, downloads ---------------------------------------------------------------
tab_cfg, tab_log, tab_dl = st.tabs(["Config", "Event log", "Downloads"])
with tab_cfg:
    tips = service.explain(spec)
    if tips:
        st.dataframe(
            pd.DataFrame(
                [
                    {"setting": s.field, "value": str(s.value), "tip": s.tip, "why": s.why}
                    for s in tips
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    st.json(spec, expanded=False)
with tab_log:
    if events:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "step": e["step"],
                        "kind": e["kind"],
                        "message": e["message"],
                        "tip": (e.get("data") or {}).get("tip", ""),
                    }
                    for e in events
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.info("No events yet.")
with tab_dl:
    st.download_button(
        "Resolved config (JSON)",
        json.dumps(spec, indent=2),
        file_name=f"run-{run_id}-config.json",
        mime="application/json",
    )
    # Files are read only when a button is clicked (deferred data), not on every rerun.
    for name, path in detail["files"].items():
        what = "Best model" if name == "model.pt" else "Checkpoint (to resume)"
        st.download_button(
            f"{what} ({name}, {path.stat().st_size / 1024:.0f} KiB)",
            data=path.read_bytes,
            file_name=f"run-{run_id}-{name}",
            key=f"dl-{name}",
        )
    if not detail["files"]:
        st.caption("Model files appear here once the run has finished an epoch.")
    st.download_button(
        "Metrics (CSV: key, step, value)",
        data=lambda: service.export_metrics_csv(run_id).read_bytes(),
        file_name=f"run-{run_id}-metrics.csv",
        mime="text/csv",
    )
