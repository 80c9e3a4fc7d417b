"""Datasets: upload a file (validated, stored by content hash), pick the target, read the
report (T1/T2/T3 findings), or add a bundled sample with one click."""

import pandas as pd
import streamlit as st

from app import session, ui
from jobs import service

st.title("Datasets")
ui.show_flashes()
db = ui.db()

st.subheader("Upload")
st.caption(
    "CSV, TSV, Parquet, NPZ, or a zip with one folder per class of images. The file goes "
    "straight to disk, is checked, and becomes a dataset — or you get a message saying what "
    "to fix. By default the target is a column named target/label/y/class, else the last one; "
    "you can change it below."
)
upload = st.file_uploader(
    "Dataset file", type=["csv", "tsv", "txt", "parquet", "pq", "npz", "zip"], key="upload"
)
if upload is not None and st.session_state.get("ingested_upload") != upload.file_id:
    with st.spinner(f"Checking {upload.name}…"):
        try:
            ds = service.upload_dataset(db, upload, upload.name, owner=session.owner_name(db))
        except service.DataError as e:
            st.error(f"{ui.plain(upload.name)} can't be used: {ui.plain(e, 2000)}")
        else:
            st.session_state["ingested_upload"] = upload.file_id
            st.session_state["dataset_id"] = st.session_state["dataset_pick"] = ds["id"]
            st.success(
                f"Added dataset **{ui.plain(ds['name'])}** (target: {ui.plain(ds['target'] or 'folders')})."
            )

st.subheader("Bundled samples")
st.caption("Small datasets that ship with Trainboard: one click makes them available to runs.")
registered = {d["path"] for d in service.list_datasets(db)}
for source, text in service.builtin_samples().items():
    c1, c2 = st.columns([4, 1])
    c1.markdown(f"**{source}** — {text}")
    if source in registered:
        c2.markdown(":green-badge[added]")
    elif c2.button("Use this", key=f"builtin-{source}"):
        try:
            ds = service.add_builtin(db, source, owner=session.owner_name(db))
        except service.DataError as e:
            st.error(ui.plain(e, 2000))
        else:
            st.session_state["dataset_id"] = st.session_state["dataset_pick"] = ds["id"]
            ui.flash(f"Added **{source}**.")
            st.rerun()

st.subheader("Your datasets")
all_ds = service.list_datasets(db)
if not all_ds:
    st.info("No datasets yet — upload a file above or add a bundled sample.")
    st.stop()

labels = {
    d[
        "id"
    ]: f"{ui.short(d['name'])} · target {ui.short(d['target'] or '(folders)', 60)} · #{d['id']}"
    for d in all_ds
}
ids = list(labels)
if "dataset_pick_next" in st.session_state:
    st.session_state["dataset_pick"] = st.session_state.pop("dataset_pick_next")
current = st.session_state.get("dataset_id")
ds_id = st.selectbox(
    "Dataset",
    ids,
    index=ids.index(current) if current in ids else 0,
    format_func=labels.get,
    key="dataset_pick",
)
ds = service.get_dataset(db, ds_id)
report = ds.get("report") or {}

st.markdown(
    f"**{report.get('task', '?')}** on **{report.get('modality', '?')}** data"
    + (f", target **{ui.plain(ds['target'])}**" if ds["target"] else ", classes from folder names")
)
cols = st.columns(3)
cols[0].metric("Rows", f"{report.get('rows', 0):,}")
cols[1].metric("Columns", report.get("columns", "—"))
cols[2].metric("Duplicate rows", report.get("duplicates", 0))

choices = report.get("choices") or []
if choices:
    with st.form("target-form"):
        target = st.selectbox(
            "Target column (what the model predicts)",
            choices,
            index=choices.index(ds["target"]) if ds["target"] in choices else 0,
            key="target_pick",
        )
        if st.form_submit_button("Use this target") and target != ds["target"]:
            try:
                new = service.retarget_dataset(db, ds_id, target)
            except service.DataError as e:
                st.error(f"Target {ui.plain(target)} can't be used: {ui.plain(e, 2000)}")
            else:
                # The picker above is already drawn in this run: select the new row on the next.
                st.session_state["dataset_id"] = st.session_state["dataset_pick_next"] = new["id"]
                ui.flash(f"Target set to **{ui.plain(target)}** (dataset #{new['id']}).")
                st.rerun()

st.markdown("**What the report found**")
warnings = report.get("warnings") or []
if warnings:
    for w in warnings:
        st.warning(f"**{w['tip']}** · {ui.plain(w['message'], 1000)}", icon="⚠️")
        st.caption(ui.tip_label(w["tip"]))
else:
    st.success("No problems found: enough rows, no missing values, no duplicates.")
if report.get("log1p_columns"):
    st.caption(
        "log(1 + x) will be applied to: "
        + ", ".join(ui.plain(c, 80) for c in report["log1p_columns"][:50])
        + " (T2)"
    )
if report.get("class_balance"):
    st.markdown("**Class balance**")
    st.bar_chart(pd.Series(report["class_balance"], name="rows"), height=200)
if st.button("Start a run on this dataset →", type="primary"):
    st.session_state["new_run_dataset"] = ds_id
    st.switch_page(ui.PAGES["new_run"])
