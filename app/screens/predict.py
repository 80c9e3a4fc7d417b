"""Predict: a finished run's model on new rows (issue 21). Pick a run, drop a CSV or .xlsx, see
the first rows with their predictions and probabilities, download the whole file.

The page runs the bundle's own predict.py code through ``jobs.service.predict_file``, as
``trainboard predict`` does, so both say the same things and give the same numbers. The upload
passes the same guard as a dataset's (app/upload_guard.py: size, and the session's share of
the server's upload memory) and the same header bounds (``jobs.datasets.check``); in team
mode a member predicts only with their own runs (an admin with any)."""

import secrets
import shutil
from pathlib import Path

import pandas as pd
import streamlit as st

from app import engine_text, session, ui
from app.i18n import _
from jobs import service

st.title(_("Predict"))
db = ui.db()
user = session.current_user(db)
rows, _total = service.run_rows(db, limit=500)
mine = [
    r
    for r in rows
    if r["status"] == "finished"
    and (user is None or user.get("is_admin") or r.get("owner") == user.get("name"))
]
offered = {}
for r in mine:
    state = service.run_bundle(db, r["id"])
    if state is not None and state["folder"] is not None:
        offered[r["id"]] = f"#{r['id']} {ui.short(r['name'])} · {r['preset']}"
if not offered:
    st.info(_("No finished run has a model bundle yet: train one on **New run**."))
    st.page_link(ui.PAGES["new_run"], label=_("New run →"), icon=":material/rocket_launch:")
    st.stop()

if st.session_state.get("predict_run") not in offered:
    st.session_state["predict_run"] = next(iter(offered))
run_id = st.selectbox(_("Run"), list(offered), format_func=offered.get, key="predict_run")
upload = st.file_uploader(
    _("Rows to predict (CSV, TSV or .xlsx, with the columns the run trained on)"),
    type=["csv", "tsv", "txt", "xlsx"],
    key="predict_upload",
)
if upload is None:
    st.caption(
        _(
            "The file is checked against the run's schema first: a missing column is refused, "
            "extra columns are ignored, and unseen categories, values outside the training "
            "range and empty cells are counted and flagged per row."
        )
    )
    st.stop()

key = f"{run_id}:{upload.file_id}"
if st.session_state.get("predict_key") != key:
    # Scored once per run and file: a rerun (a click) reuses it, and one scored file per
    # session is kept on disk, for its download.
    folder = Path(service.server_settings().home) / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(8)
    source = folder / f"upload-{tag}{Path(upload.name).suffix.lower()}"
    out = folder / f"scored-{tag}.csv"
    old = st.session_state.pop("predict_result", None)
    if old is not None and old.out is not None:
        old.out.unlink(missing_ok=True)
    st.session_state.pop("predict_key", None)
    try:
        with source.open("wb") as f:
            shutil.copyfileobj(upload, f)
        try:
            result = service.predict_file(
                db, run_id, source, filename=upload.name, out=out, user=user
            )
        except service.Refused as e:
            st.error(ui.plain(engine_text.text(e), 800))
            st.stop()
    finally:
        source.unlink(missing_ok=True)
    st.session_state["predict_result"] = result
    st.session_state["predict_key"] = key
result = st.session_state["predict_result"]

for message, warning in zip(result.problems, result.warnings, strict=True):
    text = ui.plain(engine_text.text(message), 800)
    (st.warning if warning else st.error)(text)
if result.refused:
    st.stop()
if result.score is not None:
    st.success(engine_text.text(result.score))
st.caption(
    _("{rows} rows predicted; the first {shown}:").format(
        rows=result.rows, shown=len(result.preview)
    )
)
ui.dataframe(
    pd.DataFrame(result.preview, columns=result.header),
    hide_index=True,
    width="stretch",
    key="predict-preview",
)
token = st.session_state.get(session.TOKEN_KEY)
st.download_button(
    _("Download all {rows} rows with the predictions (CSV)").format(rows=result.rows),
    data=ui.guarded_download(result.out.read_bytes, token),
    file_name=f"{Path(upload.name).stem}-predicted.csv",
    mime="text/csv",
    key="predict-download",
)
