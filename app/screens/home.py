"""Home: the server at a glance (workers, queue, recent runs) and a quick start."""

import pandas as pd
import streamlit as st

from app import i18n, ui
from app.i18n import N_, _
from jobs import service

st.title("Trainboard")
st.caption(_("Train neural networks with well-tested advice built in (tips T1–T15)."))
ui.show_flashes()

first = service.home_summary(ui.db())
any_active = first["active"] > 0

WORKER_COLUMNS = {
    "name": N_("name"),
    "device": N_("device"),
    "gpu": N_("GPU"),
    "memory": N_("memory"),
    "state": N_("state"),
    "run": N_("current run"),
    "holder": N_("held by"),
    "seen": N_("seen"),
    "host": N_("host"),
    "backlog": N_("spool backlog (points)"),
    "lag": N_("sync lag (s)"),
}
WORKER_STATES = {"busy": N_("busy"), "idle": N_("idle"), "stopped": N_("stopped")}


def live_home() -> None:
    """Counts, workers and recent runs: refreshed every 2 s while a run is queued or running."""
    summary = service.home_summary(ui.db())  # one connection per fragment run
    if any_active and not summary["active"]:
        st.rerun()  # nothing is active any more: draw once more and stop refreshing
    _home(summary)


def _workers(workers: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(workers)
    table["seen"] = [i18n.ago(s) for s in table["seen"]]
    if i18n.zh():  # the values are words too; the frame keeps its English columns
        table["state"] = [_(WORKER_STATES.get(s, s)) for s in table["state"]]
    return table


def _home(summary: dict) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(_("Workers online"), summary["online"])
    c2.metric(_("Queued"), summary["queued"])
    c3.metric(_("Running"), summary["running"])
    c4.metric(_("Runs in all"), summary["total_runs"])

    if summary["total_runs"] == 0:
        st.subheader(_("Quick start"))
        st.markdown(
            _(
                "1. **Add a dataset** — upload a CSV, TSV, Parquet, NPZ or a zip of image folders, "
                "or pick a bundled sample.\n"
                "2. **Start a run** — choose the dataset and a preset; every setting says which tip "
                "it comes from and why.\n"
                "3. **Watch it learn** — live charts mark every learning-rate cut, and the training "
                "doctor says what to change."
            )
        )

    st.subheader(_("Workers"))
    if summary["online"] and summary.get("running_cap") is not None:
        st.caption(
            _(
                "Each member may hold at most {cap} of the {slots} worker slots at once "
                "(TRAINBOARD_MAX_RUNNING_PER_USER); their other runs wait in the queue."
            ).format(cap=summary["running_cap"], slots=summary["online"])
        )
    if summary["online"]:
        ui.dataframe(
            _workers(summary["workers"]),
            hide_index=True,
            width="stretch",
            column_config=ui.headers(WORKER_COLUMNS),
        )
    else:
        st.info(
            _(
                "No worker is online, so queued runs wait. Start one with `trainboard up` "
                "(dashboard + worker) or `trainboard worker --device cpu`."
            )
        )

    st.subheader(_("Recent runs"))
    if summary["recent"]:
        for row in summary["recent"]:
            cols = st.columns([3, 2, 3, 2, 1])
            cols[0].markdown(
                f"**{ui.plain(row['name'])}** · {ui.plain(row['dataset'])} · "
                f"{ui.plain(row['preset'])}"
            )
            cols[1].markdown(ui.row_badge(row))
            # The same progress bar as the Runs table's column.
            cols[2].dataframe(
                pd.DataFrame({"progress": [row["progress"]]}),
                hide_index=True,
                width="stretch",
                column_config={"progress": ui.progress_column()},
                key=f"home-progress-{row['id']}",
            )
            cols[3].markdown(row["best"])
            if cols[4].button(_("Open"), key=f"home-open-{row['id']}"):
                ui.open_run(row["id"])
    else:
        st.info(_("No runs yet — go to **New run** to start one."))


ui.live(live_home, any_active)

# Links stay outside the live part (a fragment rerun draws only the fragment).
if first["total_runs"] == 0:
    q1, q2, q3 = st.columns(3)
    q1.page_link(ui.PAGES["datasets"], label=_("1. Add a dataset"), icon=":material/folder_open:")
    q2.page_link(ui.PAGES["new_run"], label=_("2. Start a run"), icon=":material/rocket_launch:")
    q3.page_link(ui.PAGES["runs"], label=_("3. Watch it learn"), icon=":material/monitoring:")
else:
    st.page_link(ui.PAGES["runs"], label=_("All runs →"))
