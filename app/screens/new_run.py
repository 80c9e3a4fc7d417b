"""New run: dataset → model template → preset (cards with tip and why) → overrides, validated
per field → queue. Also: queue an ensemble, or an A/B pair with one tip switched off."""

import pandas as pd
import streamlit as st

from app import session, ui
from engine.config import get_preset, list_presets, parse_override, resolve_config
from engine.errors import ConfigError
from jobs import registry, views
from jobs.submit import submit

st.title("New run")
ui.show_flashes()
db = ui.db()

# --- 1. dataset ------------------------------------------------------------------------------
st.subheader("1 · Dataset")
all_ds = registry.list_datasets(db)
if not all_ds:
    st.info("No datasets yet — add one first (upload a file, or one click on a bundled sample).")
    st.page_link(ui.PAGES["datasets"], label="Go to Datasets →", icon=":material/folder_open:")
    st.stop()
labels = {d["id"]: f"{d['name']} · target {d['target'] or '(folders)'} · "
          f"{(d.get('report') or {}).get('rows', '?')} rows · #{d['id']}" for d in all_ds}  # fmt: skip
ids = list(labels)
want = st.session_state.get("new_run_dataset")
ds_id = st.selectbox("Dataset", ids, index=ids.index(want) if want in ids else 0,
                     format_func=labels.get, key="nr_dataset")  # fmt: skip
dataset = registry.get_dataset(db, ds_id)
modality = (dataset.get("report") or {}).get("modality", "tabular")

# --- 2. model template -------------------------------------------------------------------------
st.subheader("2 · Model")
TEMPLATES = {
    "auto": f"Automatic — picks the right family for {modality} data",
    "mlp": "MLP — layers of neurons, for tables",
    "cnn": "Small CNN — convolutions, for images",
    "lstm": "LSTM — memory cells, for sequences",
    "gru": "GRU — a lighter recurrent net, for sequences",
}
kind = st.radio("Model template", list(TEMPLATES), format_func=TEMPLATES.get,
                horizontal=True, key="nr_kind")  # fmt: skip

# --- 3. preset ---------------------------------------------------------------------------------
st.subheader("3 · Preset")
st.caption("A preset is a bundle of settings taken from the training advice. Each card shows "
           "what it sets, which tip it comes from, and why.")  # fmt: skip
presets = list_presets()
names = [p.name for p in presets]
preset_name = st.radio(
    "Preset", names, format_func=lambda n: get_preset(n).title, horizontal=True, key="nr_preset"
)
for p in presets:
    with st.expander(f"{p.title}" + ("  ✓ selected" if p.name == preset_name else ""),
                     expanded=p.name == preset_name):  # fmt: skip
        st.markdown(f"{p.summary}\n\n**Good for:** {p.suited_for}")
        # st.table wraps long text: the "why" is the point of the card, it must be readable.
        st.table(pd.DataFrame([{"setting": s.field, "value": str(s.value), "tip": s.tip,
                                "why": s.why} for s in p.settings]).set_index("setting"))  # fmt: skip

# --- 4. overrides ------------------------------------------------------------------------------
st.subheader("4 · Adjust and queue")
base = resolve_config(preset_name, dataset=dataset["path"], target=dataset["target"])
FIELDS = {  # form field -> (config field, label)
    "epochs": ("train.epochs", "Epochs"),
    "lr": ("optim.lr", "Learning rate"),
    "batch": ("train.batch_size", "Batch size"),
    "hidden": ("model.hidden", "Hidden layer widths"),
    "dropout": ("model.dropout", "Dropout"),
}
k = f"nr_{preset_name}"  # widget keys per preset, so switching presets shows its defaults
with st.form("new-run"):
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", value=base.train.epochs, step=1, key=f"{k}_epochs")
    lr = c2.number_input("Learning rate", value=base.optim.lr, step=0.01, format="%g",
                         key=f"{k}_lr")  # fmt: skip
    batch = c3.number_input("Batch size", value=base.train.batch_size, step=8, key=f"{k}_batch")
    c4, c5, c6 = st.columns(3)
    hidden = c4.text_input("Hidden layer widths (MLP)", ", ".join(map(str, base.model.hidden)),
                           key=f"{k}_hidden")  # fmt: skip
    dropout = c5.number_input("Dropout", value=base.model.dropout, step=0.1, format="%g",
                              key=f"{k}_dropout")  # fmt: skip
    name = c6.text_input("Run name (optional)", key="nr_name")
    extra = st.text_area(
        "More settings, one per line as field=value (e.g. schedule.plateau_patience=2)",
        key="nr_extra", height=80,
    )
    e1, e2 = st.columns(2)
    members = e1.number_input("Ensemble size (for 'Queue an ensemble', T14)", value=5, step=1,
                              key="nr_members")  # fmt: skip
    tips = views.ab_tips(preset_name)
    ab_tip = e2.selectbox("Tip to switch off (for 'A/B one tip')", tips,
                          format_func=ui.tip_label, key=f"{k}_abtip") if tips else None  # fmt: skip
    b1, b2, b3 = st.columns(3)
    go = b1.form_submit_button("Queue run", type="primary")
    go_ens = b2.form_submit_button("Queue an ensemble")
    go_ab = b3.form_submit_button("A/B one tip", disabled=not tips)

if not (go or go_ens or go_ab):
    st.stop()

overrides: dict = {}
errors: dict[str, str] = {}
if kind != "auto":
    overrides["model.kind"] = kind
for field, value, default in (
    ("train.epochs", epochs, base.train.epochs), ("optim.lr", lr, base.optim.lr),
    ("train.batch_size", batch, base.train.batch_size),
    ("model.dropout", dropout, base.model.dropout),
):  # fmt: skip
    if value != default:
        overrides[field] = int(value) if isinstance(default, int) else float(value)
try:
    widths = [int(w) for w in hidden.replace(" ", "").split(",") if w]
    if widths != base.model.hidden:
        overrides["model.hidden"] = widths
except ValueError:
    errors["model.hidden"] = f"write whole numbers separated by commas, e.g. 128, 64 (got {hidden!r})"
for line in extra.splitlines():
    if not line.strip() or line.strip().startswith("#"):
        continue
    try:
        key, value = parse_override(line)
        overrides[key] = value
    except ConfigError as e:
        errors[line.strip()] = str(e)
if go_ens:
    overrides["ensemble.members"] = int(members)
if not errors:
    try:
        resolve_config(preset_name, dataset=dataset["path"], target=dataset["target"],
                       overrides=overrides)  # fmt: skip
    except ConfigError as e:
        errors.update(ui.config_errors(e))
if errors:
    label = {f: lab for f, lab in FIELDS.values()}
    st.error("Nothing was queued. Please fix:\n\n" + "\n".join(
        f"- **{label.get(f, f)}** (`{f}`): {msg}" for f, msg in errors.items()))  # fmt: skip
    st.stop()

common = {"target": dataset["target"], "dataset_id": ds_id, "owner": session.owner_name(db)}
try:
    if go_ab:
        a, b, group = views.submit_ab_pair(preset_name, dataset["path"], ab_tip,
                                           overrides=overrides, db=db, **common)  # fmt: skip
        st.session_state["compare_ids"] = [a, b]
        st.success(f"Queued an A/B pair: run {a} (with {ab_tip}) and run {b} (without). "
                   "Compare them side by side when they finish.")  # fmt: skip
        st.page_link(ui.PAGES["compare"], label="Compare the pair →", icon=":material/compare_arrows:")
    else:
        sub = submit(preset_name, dataset["path"], overrides=overrides, name=name or None,
                     db=db, **common)  # fmt: skip
        what = f"an ensemble of {int(members)}" if go_ens else "run"
        st.success(f"Queued {what}: run {sub.run_id}.")
        if sub.note:
            st.warning(sub.note)
        st.session_state["run_id"] = sub.run_id
        st.page_link(ui.PAGES["run"], label=f"Watch run {sub.run_id} →", icon=":material/monitoring:")
except ConfigError as e:
    st.error("Nothing was queued: " + "; ".join(f"{f}: {m}" for f, m in ui.config_errors(e).items()))
