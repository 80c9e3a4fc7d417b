"""Runs: every run with status, progress, dataset, preset, best metric, duration, owner and
device; filters; cancel; pick several to compare."""

import pandas as pd
import streamlit as st

from app import session, ui
from jobs import service

st.title("Runs")
ui.show_flashes()
db = ui.db()

opts = service.run_filters(db)
f1, f2, f3, f4 = st.columns(4)
status = f1.multiselect("Status", opts["status"], key="runs_status", placeholder="(any)")
preset = f2.selectbox("Preset", ["(any)", *opts["preset"]], key="runs_preset")
ds_names = dict(opts["dataset"])
dataset = f3.selectbox(
    "Dataset",
    ["(any)", *ds_names],
    key="runs_dataset",
    format_func=lambda d: d if d == "(any)" else ds_names[d],
)
owner = f4.selectbox("Owner", ["(any)", *opts["owner"]], key="runs_owner")
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
        st.info("No runs match these filters — clear a filter to see more.")
    else:
        st.info("No runs yet — go to **New run** to start one.")
        st.page_link(ui.PAGES["new_run"], label="New run →", icon=":material/rocket_launch:")
    st.stop()
any_active = any(r["status"] in service.ACTIVE for r in rows)


def live_table() -> None:
    """The table and its actions: refreshed every 2 s while a run on this page is active."""
    db = ui.db()  # one connection per fragment run (a rerun may be on another thread)
    rows, total = service.run_rows(db, limit=PAGE, offset=page * PAGE, **filters)
    if any_active and not any(r["status"] in service.ACTIVE for r in rows):
        st.rerun()  # nothing is active any more: draw the page once more and stop refreshing
    _table(db, rows, total)


def _table(db, rows, total) -> None:
    if not rows:
        st.info("No runs on this page any more.")
        return
    table = pd.DataFrame(rows)[
        [
            "id",
            "name",
            "status",
            "progress",
            "dataset",
            "preset",
            "best",
            "duration",
            "owner",
            "device",
        ]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "progress": ui.progress_column(),
            "best": st.column_config.TextColumn("best validation"),
        },
    )
    st.caption(f"{total} run(s); showing {page * PAGE + 1}–{page * PAGE + len(rows)}.")
    p1, p2, _ = st.columns([1, 1, 6])
    if p1.button("← Newer", disabled=page == 0):
        st.session_state["runs_page"] = page - 1
        st.rerun()
    if p2.button("Older →", disabled=(page + 1) * PAGE >= total):
        st.session_state["runs_page"] = page + 1
        st.rerun()

    labels = {r["id"]: f"#{r['id']} {r['name']} ({r['status']})" for r in rows}
    picked = st.multiselect("Select runs", list(labels), format_func=labels.get, key="runs_picked")
    a1, a2, a3 = st.columns(3)
    if a1.button("Open", disabled=len(picked) != 1, help="Open one selected run"):
        ui.open_run(picked[0])
    if a2.button("Compare", disabled=len(picked) < 2, help="Overlay two or more runs"):
        ui.compare_runs(picked)
    if a3.button(
        "Cancel",
        disabled=not picked,
        help="Queued runs stop at once; running runs save a checkpoint and stop within seconds",
    ):
        for run_id in picked:
            try:
                after = service.cancel_run(db, run_id, session.current_user(db))
            except (service.StoreError, service.auth.NotAllowed) as e:
                ui.flash(f"Run {run_id}: {ui.plain(e, 2000)}", "warning")
            else:
                ui.flash(
                    f"Run {run_id}: "
                    + ("cancelled." if after == "cancelled" else "stopping (saving a checkpoint)…")
                )
        st.rerun()


ui.live(live_table, any_active)
