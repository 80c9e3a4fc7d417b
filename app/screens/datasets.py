"""Datasets: upload a file (validated, stored by content hash), pick the target, read the
report (T1/T2/T3 findings), or add a bundled sample with one click."""

import pandas as pd
import streamlit as st

from app import columns, engine_text, session, ui
from app.i18n import _
from jobs import service

st.title(_("Datasets"))
ui.show_flashes()
db = ui.db()

st.subheader(_("Upload"))
st.caption(
    _(
        "CSV, TSV, Parquet, NPZ, or a zip with one folder per class of images. The file goes "
        "straight to disk, is checked, and becomes a dataset — or you get a message saying what "
        "to fix. By default the target is a column named like a label (target, label, class, "
        "outcome, 标签 …), else the last one unless it is an ID, a date or free text; you can "
        "change it below."
    )
)
TYPES = [ext.lstrip(".") for ext in service.EXTENSIONS]  # what the loader reads, from its home
ui.uploader_in_language(TYPES)  # Streamlit's own words on the uploader, in this page's language
upload = st.file_uploader(_("Dataset file"), type=TYPES, key="upload")
if upload is not None and st.session_state.get("ingested_upload") != upload.file_id:
    with st.spinner(_("Checking {name}…").format(name=ui.plain(upload.name))):
        try:
            ds = service.upload_dataset(db, upload, upload.name, owner=session.owner_name(db))
        except service.Refused as e:
            error = engine_text.text(e)
            # Most messages start with the file's name already: never print it twice.
            if not error.startswith(upload.name):
                error = _("{name} can't be used: {error}").format(name=upload.name, error=error)
            st.error(ui.plain(error, 2000))
        else:
            st.session_state["ingested_upload"] = upload.file_id
            st.session_state["dataset_id"] = ds["id"]
            st.success(
                _("Added dataset **{name}** (target: {target}).").format(
                    name=ui.plain(ds["name"]), target=ui.plain(ds["target"] or _("folders"))
                )
            )

st.subheader(_("Bundled samples"))
st.caption(_("Small datasets that ship with Trainboard: one click makes them available to runs."))
registered = {d["path"] for d in service.list_datasets(db)}
for source, text in service.builtin_samples().items():
    c1, c2 = st.columns([4, 1])
    c1.markdown(f"**{source}** — {engine_text.text(text)}")
    if source in registered:
        c2.markdown(f":green-badge[{_('added')}]")
    elif c2.button(_("Use this"), key=f"builtin-{source}"):
        try:
            ds = service.add_builtin(db, source, owner=session.owner_name(db))
        except service.Refused as e:
            st.error(ui.plain(engine_text.text(e), 2000))
        else:
            st.session_state["dataset_id"] = ds["id"]
            ui.flash(_("Added **{source}**.").format(source=source))
            st.rerun()

st.subheader(_("Your datasets"))
# One entry per file; the targets it has been given are its versions (issue 20, §8). Each
# version stays its own dataset row, because a run names the row whose file and target it reads
# and the worker checks exactly that (docs/dashboard.md, "Datasets").
files = service.dataset_files(db)
if not files:
    st.info(_("No datasets yet — upload a file above or add a bundled sample."))
    st.stop()
file_of = {v["id"]: f for f in files for v in f["versions"]}
ds_id = st.session_state.get("dataset_id")
if ds_id not in file_of:
    ds_id = files[0]["versions"][0]["id"]
st.session_state["dataset_id"] = ds_id


def _file_label(f: dict) -> str:
    """The file's name and the id of its first version: nothing that changes when a target is
    added, because a picker's label is its value (Streamlit 1.67): a label that changed while
    the page was open would come back matching no file. The targets are the choice below."""
    return f"{ui.short(f['name'])} · #{f['id']}"


def _picked(key: str) -> None:
    """A file picked: its newest version; a version picked: that one. (A value that is no
    longer listed, e.g. deleted meanwhile, changes nothing.)"""
    value = st.session_state[key]
    if key == "dataset_version":
        picked = value if value in file_of else None
    else:
        picked = next((f["versions"][0]["id"] for f in files if f["id"] == value), None)
    if picked is not None:
        st.session_state["dataset_id"] = picked


# Keyed pickers follow "dataset_id" (set by an upload, a sample, a new target or another page).
if st.session_state.get("dataset_pick") != file_of[ds_id]["id"]:
    st.session_state["dataset_pick"] = file_of[ds_id]["id"]
st.selectbox(
    _("Dataset"),
    [f["id"] for f in files],
    format_func={f["id"]: _file_label(f) for f in files}.get,
    key="dataset_pick",
    on_change=_picked,
    args=("dataset_pick",),
)
versions = file_of[ds_id]["versions"]
if len(versions) > 1:
    if st.session_state.get("dataset_version") != ds_id:
        st.session_state["dataset_version"] = ds_id
    labels = {
        v["id"]: _("{target} · #{id}").format(
            target=ui.short(v["target"] or _("(folders)"), 60), id=v["id"]
        )
        for v in versions
    }
    st.radio(
        _("Target (each one you tried on this file; runs keep the one they used)"),
        list(labels),
        format_func=labels.get,
        key="dataset_version",
        horizontal=True,
        on_change=_picked,
        args=("dataset_version",),
    )
ds = service.get_dataset(db, ds_id)
report = ds.get("report") or {}

st.markdown(
    _("**{task}** on **{modality}** data").format(
        task=engine_text.word(report.get("task", "?")),
        modality=engine_text.word(report.get("modality", "?")),
    )
    + (
        _(", target **{target}**").format(target=ui.plain(ds["target"]))
        if ds["target"]
        else _(", classes from folder names")
    )
)
if report.get("target_why") and ds["target"] == report.get("target"):
    st.caption(
        _("Why this target: {why}. Not the column you want to predict? Pick it below.").format(
            why=ui.plain(engine_text.report_text(report, "target_why"), 300)
        )
    )
cols = st.columns(3)
cols[0].metric(_("Rows"), f"{report.get('rows', 0):,}")
cols[1].metric(_("Columns"), report.get("columns", "—"))
cols[2].metric(_("Duplicate rows"), report.get("duplicates", 0))


def _retarget(target: str) -> None:
    """A new dataset row of the same file with ``target``; the page then shows it."""
    try:
        # The new dataset belongs to whoever asked, never to the file's owner.
        new = service.retarget_dataset(db, ds_id, target, owner=session.owner_name(db))
    except service.Refused as e:
        st.error(
            _("Target {target} can't be used: {error}").format(
                target=ui.plain(target), error=ui.plain(engine_text.text(e), 2000)
            )
        )
    else:
        # The pickers above are already drawn in this run: they follow it on the next.
        st.session_state["dataset_id"] = new["id"]
        ui.flash(
            _("Target set to **{target}** (dataset #{id}).").format(
                target=ui.plain(target), id=new["id"]
            )
        )
        st.rerun()


candidates = report.get("target_candidates") or []
if (
    len(candidates) > 1
    and not report.get("target_clear", True)
    and ds["target"] == report.get("target")
):
    # The guess is not clearly ahead: ask, with the top 3 and why (issue 20, §2).
    why = {c["name"]: engine_text.text(c["why"], c.get("why_msg")) for c in candidates}
    with st.form("target-question", border=True):
        st.markdown(_("**Which column do you want to predict?**"))
        st.caption(
            _("Trainboard guessed {target}, but other columns fit nearly as well.").format(
                target=ui.plain(ds["target"], 80)
            )
        )
        pick = st.radio(
            _("Column to predict"),
            list(why),
            format_func=lambda n: f"{ui.short(n, 60)} — {why[n]}",
            key="target_question",
        )
        if st.form_submit_button(_("Predict this column"), type="primary") and pick != ds["target"]:
            _retarget(pick)

choices = report.get("choices") or []
if choices:
    with st.form("target-form"):
        target = st.selectbox(
            _("Target column (what the model predicts)"),
            choices,
            index=choices.index(ds["target"]) if ds["target"] in choices else 0,
            key="target_pick",
        )
        if st.form_submit_button(_("Use this target")) and target != ds["target"]:
            _retarget(target)

st.markdown(_("**What each column is**"))
columns.table(ds)
columns.editor(ds, "datasets")

st.markdown(_("**What the report found**"))
warnings = report.get("warnings") or []
if warnings:
    for w in warnings:
        st.warning(f"**{w['tip']}** · {ui.plain(engine_text.report_warning(w), 1000)}", icon="⚠️")
        st.caption(ui.tip_label(w["tip"]))
else:
    st.success(_("No problems found: enough rows, no missing values, no duplicates."))
if report.get("log1p_columns"):
    st.caption(
        _("log(1 + x) will be applied to: {columns} (T2)").format(
            columns=", ".join(ui.plain(c, 80) for c in report["log1p_columns"][:50])
        )
    )
if report.get("class_balance"):
    st.markdown(_("**Class balance**"))
    st.bar_chart(pd.Series(report["class_balance"], name=_("rows")), height=200)
b1, b2 = st.columns([3, 1])
if b1.button(_("Start a run on this dataset →"), type="primary"):
    st.session_state["new_run_dataset"] = ds_id
    st.switch_page(ui.PAGES["new_run"])
if session.may_modify(db, ds.get("owner")):
    with b2.popover(_("Delete this dataset")):
        st.caption(
            _(
                "Runs that are over keep their charts. A dataset a queued or running run uses can't be deleted."
            )
        )
        if st.button(_("Delete for good"), key=f"ds_delete_{ds_id}", type="primary"):
            try:
                service.delete_dataset(db, ds_id, session.current_user(db))
            except service.Refused as e:
                st.warning(ui.plain(engine_text.text(e), 1000))
            else:
                st.session_state.pop("dataset_id", None)
                ui.flash(_("Dataset #{id} was deleted.").format(id=ds_id))
                st.rerun()
