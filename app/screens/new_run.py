"""New run: dataset → model template → preset (cards with tip and why) → overrides, validated
per field → queue. Also: queue an ensemble, or an A/B pair with one tip switched off, or find a learning rate
with the LR range test (app/lr_find_view.py) and use it."""

import contextlib

import pandas as pd
import streamlit as st

from app import columns, engine_text, i18n, lr_find_view, session, ui
from app.i18n import N_, _
from jobs import service

st.title(_("New run"))
ui.show_flashes()
db = ui.db()

# --- 1. dataset ------------------------------------------------------------------------------
st.subheader(_("1 · Dataset"))
all_ds = service.list_datasets(db)
if not all_ds:
    st.info(_("No datasets yet — add one first (upload a file, or one click on a bundled sample)."))
    st.page_link(ui.PAGES["datasets"], label=_("Go to Datasets →"), icon=":material/folder_open:")
    st.stop()
labels = {
    d["id"]: _("{name} · target {target} · {rows} rows · #{id}").format(
        name=ui.short(d["name"]),
        target=ui.short(d["target"] or _("(folders)"), 60),
        rows=(d.get("report") or {}).get("rows", "?"),
        id=d["id"],
    )
    for d in all_ds
}
ids = list(labels)
want = st.session_state.get("new_run_dataset")
ds_id = st.selectbox(
    _("Dataset"),
    ids,
    index=ids.index(want) if want in ids else 0,
    format_func=labels.get,
    key="nr_dataset",
)
dataset = service.get_dataset(db, ds_id)
modality = (dataset.get("report") or {}).get("modality", "tabular")

# --- 2. model template -------------------------------------------------------------------------
st.subheader(_("2 · Model"))
# Fixed labels: a label that changed with the dataset would make the radio lose its value.
TEMPLATES = {
    "auto": N_("Automatic — picks the right family for the data"),
    "mlp": N_("MLP — layers of neurons, for tables"),
    "cnn": N_("Small CNN — convolutions, for images"),
    "lstm": N_("LSTM — memory cells, for sequences"),
    "gru": N_("GRU — a lighter recurrent net, for sequences"),
}
if st.session_state.get("nr_kind") not in TEMPLATES:
    st.session_state["nr_kind"] = "auto"
kind = st.radio(
    _("Model template"),
    list(TEMPLATES),
    format_func=lambda t: _(TEMPLATES[t]),
    horizontal=True,
    key="nr_kind",
)
report = dataset.get("report") or {}
st.caption(
    _("This dataset is {modality} data.").format(modality=ui.plain(engine_text.word(modality), 40))
    + " "
    + _("Target column: {target}; task: {task}.").format(
        target=ui.plain(dataset.get("target") or _("(folders)"), 80),
        task=engine_text.word(report.get("task", "?")),
    )
)
chosen_columns = columns.editor(dataset, "new_run")  # data.columns: the user's column kinds

# --- 3. preset ---------------------------------------------------------------------------------
st.subheader(_("3 · Preset"))
st.caption(
    _(
        "A preset is a bundle of settings taken from the training advice. Each card shows "
        "what it sets, which tip it comes from, and why."
    )
)
presets = service.presets(dataset)  # the auto card lists what it derives from this dataset
titles = {p.name: engine_text.text(p.title) for p in presets}
names = [p.name for p in presets]
preset_name = st.radio(
    _("Preset"),
    names,
    format_func=titles.get,
    horizontal=True,
    key="nr_preset",
    on_change=lambda: st.session_state.pop("nr_members", None),  # the new preset's ensemble
)
k = f"nr_{preset_name}"  # widget keys per preset, so switching presets shows its defaults
FIELDS = {  # form field -> (config field, label)
    "epochs": ("train.epochs", N_("Epochs")),
    "lr": ("optim.lr", N_("Learning rate")),
    "batch": ("train.batch_size", N_("Batch size")),
    "hidden": ("model.hidden", N_("Hidden layer widths")),
    "dropout": ("model.dropout", N_("Dropout")),
}
# The preset card's table: the frame's columns, and their headers in the session's language.
CARD_COLUMNS = {
    "setting": N_("setting"),
    "value": N_("value"),
    "in effect": N_("in effect"),
    "tip": N_("tip"),
    "why": N_("why"),
}


def _in_effect() -> dict[str, object]:
    """The values the form (as last submitted) puts in force over the chosen preset's."""
    out: dict[str, object] = {}
    for form_key, (cfg_field, _label) in FIELDS.items():
        value = st.session_state.get(f"{k}_{form_key}")
        if value is None:
            continue
        if form_key == "hidden":
            try:
                value = [int(w) for w in str(value).replace(" ", "").split(",") if w]
            except ValueError:
                continue
        out[cfg_field] = value
    # a line that doesn't parse is named when the form is submitted
    with contextlib.suppress(service.Refused):
        out.update(service.parse_lines(st.session_state.get("nr_extra") or ""))
    return out


def _same(a: object, b: object) -> bool:
    try:
        return a == b or float(a) == float(b)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


effect = _in_effect()
for p in presets:
    with st.expander(
        titles[p.name] + (_("  ✓ selected") if p.name == preset_name else ""),
        expanded=p.name == preset_name,
    ):
        st.markdown(
            f"{engine_text.text(p.summary)}\n\n"
            + _("**Good for:** {suited_for}").format(suited_for=engine_text.text(p.suited_for))
        )
        # st.table wraps long text: the "why" is the point of the card, it must be readable.
        rows = [
            {
                "setting": s.field,
                "value": str(s.value),
                "tip": s.tip,
                "why": engine_text.text(s.why),
            }
            for s in p.settings
        ]
        if p.name == preset_name:  # the value in force, where the form changes the preset's
            changed = {
                s.field: effect[s.field]
                for s in p.settings
                if s.field in effect and not _same(effect[s.field], s.value)
            }
            if changed:
                for row in rows:
                    v = changed.get(row["setting"])
                    row["in effect"] = (
                        "" if v is None else ui.short(f"{v:g}" if isinstance(v, float) else v)
                    )
                rows = [
                    {c: r[c] for c in ("setting", "value", "in effect", "tip", "why")} for r in rows
                ]
        card = pd.DataFrame(rows).set_index("setting")
        if i18n.zh():  # headers in the session's language (English: the frame's own)
            card = card.rename(columns=i18n.columns(CARD_COLUMNS)).rename_axis(_("setting"))
        st.table(card)

# --- 4. overrides ------------------------------------------------------------------------------
st.subheader(_("4 · Adjust and queue"))
base = service.form_defaults(preset_name, dataset)
train, optim, model = base["train"], base["optim"], base["model"]
# The ensemble size starts at the preset's own (the "ensemble" preset has 10 members).
preset_members = int((base.get("ensemble") or {}).get("members") or 1)
if "nr_members" not in st.session_state:
    st.session_state["nr_members"] = preset_members if preset_members > 1 else 5
with st.form("new-run"):
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input(_("Epochs"), value=train["epochs"], step=1, key=f"{k}_epochs")
    lr = c2.number_input(
        _("Learning rate"), value=optim["lr"], step=0.01, format="%g", key=f"{k}_lr"
    )
    batch = c3.number_input(_("Batch size"), value=train["batch_size"], step=8, key=f"{k}_batch")
    c4, c5, c6 = st.columns(3)
    hidden = c4.text_input(
        _("Hidden layer widths (MLP)"), ", ".join(map(str, model["hidden"])), key=f"{k}_hidden"
    )
    dropout = c5.number_input(
        _("Dropout"), value=model["dropout"], step=0.1, format="%g", key=f"{k}_dropout"
    )
    name = c6.text_input(_("Run name (optional)"), key="nr_name", max_chars=service.MAX_TEXT)
    extra = st.text_area(
        _("More settings, one per line as field=value (e.g. schedule.plateau_patience=2)"),
        key="nr_extra",
        height=80,
    )
    e1, e2, e3 = st.columns([2, 2, 1])
    # A preset that already trains an ensemble (auto on a small table, "ensemble") says so, and
    # its size is set here for "Queue run"; a second "Queue an ensemble" button would queue the
    # same thing (issue 20, §8).
    members = e1.number_input(
        _("Ensemble size (T14): this preset already trains {n} nets; change it here").format(
            n=preset_members
        )
        if preset_members > 1
        else _("Ensemble size (for 'Queue an ensemble', T14)"),
        min_value=1,
        step=1,
        key="nr_members",
    )
    tips = service.ab_tips(preset_name, dataset)
    ab_tip = (
        e2.selectbox(
            _("Tip to switch off (for 'A/B one tip')"),
            tips,
            format_func=ui.tip_label,
            key=f"{k}_abtip",
        )
        if tips
        else None
    )
    # Each seed runs in both arms, with the same split and batch order (issue 23 §2).
    ab_seeds = e3.number_input(
        _("A/B seeds"),
        min_value=1,
        max_value=service.MAX_AB_SEEDS,
        value=service.AB_SEEDS,
        step=1,
        key="nr_ab_seeds",
        help=_(
            "Each seed runs in both arms (same split, batch order and initial weights), so "
            "Compare can tell a real difference from luck; 5 is enough for a clear one."
        ),
    )
    b1, b2, b3 = st.columns(3)
    go = b1.form_submit_button(_("Queue run"), type="primary")
    go_ens = preset_members == 1 and b2.form_submit_button(_("Queue an ensemble"))
    go_ab = b3.form_submit_button(_("A/B one tip"), disabled=not tips)
    # Issue 23: the LR range test of the run this form describes, queued like a run.
    go_lr = st.form_submit_button(
        _("Find a learning rate"),
        help=_(
            "Queues the LR range test (T5) with this preset's model, optimizer and batch size: "
            "the LR rises from 1e-7 to 10 over about 100 steps, 3 times, and three rules read "
            "the loss curve. Its plot appears below, with 'Use this LR'."
        ),
    )
lr_find_view.used_note(f"{k}_lr", float(lr))
lr_find_view.section(db, f"{k}_lr")

if not (go or go_ens or go_ab or go_lr):
    st.stop()

overrides: dict = {}
errors: dict[str, str] = {}
if kind != "auto":
    overrides["model.kind"] = kind
for field, value, default in (
    ("train.epochs", epochs, train["epochs"]),
    ("optim.lr", lr, optim["lr"]),
    ("train.batch_size", batch, train["batch_size"]),
    ("model.dropout", dropout, model["dropout"]),
):
    if value != default:
        overrides[field] = int(value) if isinstance(default, int) else float(value)
if (tested := lr_find_view.from_test(f"{k}_lr", float(lr))) is not None:
    overrides["optim.range_test_lr"] = tested  # the doctor's note at the end (engine.doctor)
try:
    widths = [int(w) for w in hidden.replace(" ", "").split(",") if w]
    if widths != model["hidden"]:
        overrides["model.hidden"] = widths
except ValueError:
    errors["model.hidden"] = _(
        "write whole numbers separated by commas, e.g. 128, 64 (got {value})"
    ).format(value=repr(hidden))
if chosen_columns:
    overrides["data.columns"] = chosen_columns
try:
    overrides.update(service.parse_lines(extra))
except service.Refused as e:
    errors.update(e.fields)
if go_ens or (preset_members > 1 and int(members) != preset_members):
    overrides["ensemble.members"] = int(members)
validation = service.Validation()
if not errors:
    try:
        validation = service.validate_run(preset_name, dataset, overrides)
    except service.Refused as e:
        errors.update(e.fields)
if errors:
    label = {f: _(lab) for f, lab in FIELDS.values()}
    st.error(
        _("Nothing was queued. Please fix:")
        + "\n\n"
        + "\n".join(
            f"- **{ui.plain(label.get(f, f), 80)}** ({ui.plain(f, 80)}): "
            f"{ui.plain(engine_text.text(msg), 500)}"
            for f, msg in errors.items()
        )
    )
    st.stop()

owner = session.owner_name(db)
if go_lr:
    try:
        sub = service.queue_lr_find(db, validation, dataset_id=ds_id, owner=owner)
    except service.Refused as e:  # the queued-run quota: nothing was queued
        st.error(
            _("Nothing was queued: {reason}").format(
                reason=ui.plain("; ".join(e.fields.values()) or str(e), 1000)
            )
        )
        st.stop()
    st.session_state[lr_find_view.RUN_KEY] = sub.run_id
    ui.flash(_("Queued the learning-rate range test: run {id}.").format(id=sub.run_id))
    st.rerun()
if go_ab:
    try:
        group = service.queue_ab_group(
            db, preset_name, dataset, overrides, owner=owner, tip=ab_tip, seeds=int(ab_seeds)
        )
    except service.Refused as e:
        st.error(
            _("Nothing was queued: {errors}").format(
                errors=_("; ").join(
                    f"{ui.plain(f, 80)}: {ui.plain(engine_text.text(m), 500)}"
                    for f, m in e.fields.items()
                )
            )
        )
        st.stop()
    st.session_state["compare_ids"] = group.run_ids
    st.session_state["compare_group"] = group.group_id
    if len(group.pairs) == 1:
        ((_seed, a, b),) = group.pairs
        st.success(
            _(
                "Queued an A/B pair: run {a} (with {tip}) and run {b} (without). "
                "Compare them side by side when they finish."
            ).format(a=a, b=b, tip=ab_tip)
        )
    else:
        st.success(
            _(
                "Queued an A/B group over {seeds} seeds: {runs} runs, each seed with {tip} and "
                "without. Compare shows the verdict as they finish."
            ).format(seeds=len(group.pairs), runs=len(group.run_ids), tip=ab_tip)
        )
    st.page_link(
        ui.PAGES["compare"], label=_("Compare the pair →"), icon=":material/compare_arrows:"
    )
else:
    try:
        sub = service.queue_run(db, validation, dataset_id=ds_id, owner=owner, name=name or None)
    except service.Refused as e:  # the queued-run quota (jobs.runs.quotas): nothing was queued
        st.error(
            _("Nothing was queued: {reason}").format(
                reason=ui.plain("; ".join(e.fields.values()) or str(e), 1000)
            )
        )
        st.stop()
    if go_ens:
        done = _("Queued an ensemble of {members}: run {id}.").format(
            members=int(members), id=sub.run_id
        )
    else:
        done = _("Queued run: run {id}.").format(id=sub.run_id)
    st.success(done)
    if sub.note:
        st.warning(engine_text.text(sub.note))
    st.session_state["run_id"] = sub.run_id
    st.page_link(
        ui.PAGES["run"],
        label=_("Watch run {id} →").format(id=sub.run_id),
        icon=":material/monitoring:",
    )
