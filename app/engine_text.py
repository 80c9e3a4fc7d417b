"""Texts the engine wrote, in the session's language: presets, tips, doctor findings, dataset
report warnings, event messages and chart marks.

The engine speaks English only (it is a plain library) and the store keeps what it said. The
dashboard translates at the last moment, three ways:

* **fixed texts** (preset titles, summaries and every "why", tip titles, fixed messages) are
  their own msgids: Babel extracts them from ``engine/presets/*.toml`` and ``engine/tips.py``
  (``app/babel_extract.py``);
* **doctor findings** by rule: each rule has its English templates here, filled from the
  finding's ``data`` (a test checks that each template, filled in English, gives exactly the
  engine's message, so the two can't drift apart);
* **other messages** (dataset report, events, config errors, the auto preset's reasons) by
  pattern: each English template in :data:`MESSAGES` is matched against the whole message, and
  the pieces it captures are put into the translation.

Anything not found stays in English (a test lists what the catalogue lacks).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from app.i18n import N_, _, ngettext, zh
from jobs import service

# --- presets and tips -------------------------------------------------------------------------


def tip_title(tip: str | None) -> str:
    """A tip's one-line meaning ("Clip the gradient norm…"), or "" for an unknown id."""
    return _(service.TIPS[tip]) if tip in service.TIPS else ""


def tip_label(tip: str | None) -> str:
    """ "T9 — Clip the gradient norm…" (just the id when unknown)."""
    if not tip or tip not in service.TIPS:
        return tip or ""
    return f"{tip} — {tip_title(tip)}"


def preset_text(text: str) -> str:
    """A preset's title, summary, "good for" or a setting's "why", in the session's language.
    A "why" the auto preset derived from the data is matched against its templates."""
    return message(text)


# --- messages matched by pattern ---------------------------------------------------------------

# English templates of messages the engine (and jobs) write with numbers or names in them.
# A {name} matches any text; names in PHRASES are fixed phrases translated in turn.
MESSAGES: tuple[str, ...] = (
    # dataset report (engine/data/report.py) and loaders (engine/data/loaders.py, tabular.py)
    N_("only {rows} rows: small for a neural network; expect to overfit (T1)."),
    N_("column {column} has {count} missing values ({share}); {fill} (T1)."),
    N_(
        "{count} duplicate rows ({share}): they count twice in training and can leak into "
        "validation (T1)."
    ),
    N_("{count} groups of identical inputs have different targets: some labels may be wrong (T1)."),
    N_("column {column} has the same value in every row: it carries no information (T1)."),
    N_(
        "about {rows} training rows make fewer than {batches} batches at the default batch size "
        "{batch}: a smaller batch (e.g. 32) gives more updates per epoch (T3)."
    ),
    N_(
        "about {rows} training rows make fewer than {batches} batches at batch size {batch}: a "
        "smaller batch (e.g. 32) gives more updates per epoch (T3)."
    ),
    N_(
        "column {column} spans {orders} orders of magnitude: log(1 + x) will be applied before "
        "standardizing, so its large values don't dominate (T2)."
    ),
    N_(
        "only {rows} rows for {classes} classes (under {per_class} per class): the network may "
        "not learn well; more examples would help most (T1)."
    ),
    N_(
        "class '{name}' has {share} of rows ({count}), much less than the largest class: the "
        "model may mostly ignore it (T1)."
    ),
    N_("{count} row(s) have no target and were left out."),
    N_("{count} row(s) have no value in the target column {column} and were left out."),
    # data too small or badly split (engine/data/prepare.py, tabular.py), unreadable .npz
    N_(
        "{where}: only {rows} rows. Trainboard needs at least {min_rows}, so that the validation "
        "and test splits hold more than a row or two (T1). Add rows."
    ),
    N_(
        "{where}: {count} class(es) have a single row ({classes}). Every class needs at least "
        "{min_rows} rows, or it can't be both learned and checked (T1). Add examples of those "
        "classes or remove their rows."
    ),
    N_(
        "{where}: the split column has no '{name}' rows; it needs train, val and test rows (or "
        "remove the column and let Trainboard split the rows)."
    ),
    N_(
        "{where}: the split column must say train, val or test in every row; it also holds "
        "{values} ({count} rows). Fix those cells, or rename the column if it is a feature."
    ),
    N_(
        "with {rows} rows, val_fraction={val_fraction} and test_fraction={test_fraction} leave "
        "no training rows; lower the fractions or add rows."
    ),
    N_(
        "{where}: can't be read as an .npz of plain number arrays: it is not a NumPy .npz file "
        "(was another file renamed?), or it holds Python objects, which Trainboard never loads. "
        "Save it with numpy.savez from plain arrays."
    ),
    # events (engine/decide.py, engine/train.py, engine/checkpoint.py)
    N_("validation loss plateaued: LR cut {old} → {new} (T7)"),
    N_(
        "a cut would have helped here: val/loss had not improved for {epochs} epochs "
        "(LR {old} → {new}, T7)"
    ),
    N_("LR {lr} fell below the floor {floor}: training is done (T7)"),
    N_("no improvement in validation loss for {epochs} epochs: stopping (T7)"),
    N_("gradient clipped on {clipped} of {steps} steps in epoch {epoch} (T9)"),
    N_("resumed from the checkpoint after epoch {epoch} (step {step})"),
    N_("restored the best weights, from epoch {epoch} (T7)"),
    N_("training {model} ×{members} members on {rows} rows, validating on {val_rows}"),
    N_("training {model} on {rows} rows, validating on {val_rows}"),
    N_(
        "finished after {epochs} epochs ({reason}); best val {metric} {value} at epoch {epoch}; "
        "test {test_metric} {test_value}"
    ),
    N_("finished after {epochs} epochs ({reason}); best val {metric} {value} at epoch {epoch}"),
    N_("finished after {epochs} epochs ({reason}); test {test_metric} {test_value}"),
    N_(
        "test split ({rows} rows, never used for any choice): {metric} {value} with the best "
        "weights, from epoch {epoch}"
    ),
    N_("test split ({rows} rows, never used for any choice): {metric} {value}"),
    N_("finished after {epochs} epochs ({reason})"),
    # config errors (engine/config.py: pydantic's messages, as the form lists them)
    N_("{problem} (got {value})"),
    N_("Input should be greater than {n}"),
    N_("Input should be greater than or equal to {n}"),
    N_("Input should be less than {n}"),
    N_("Input should be less than or equal to {n}"),
    N_("unknown setting; allowed here: {allowed}"),
    N_("unknown section; sections are: {sections}"),
    N_("no preset named {name}; choose one of: {names}"),
    # the auto preset's reasons (engine/auto.py)
    N_(
        "batch {batch}: {rows} training rows give {steps} updates per epoch at the advice's "
        "~128, plenty; bigger batches would generalise worse (T3)."
    ),
    N_(
        "batch {batch}: {rows} training rows would make only {count} batch(es) of 128; "
        "{same_batch} (a multiple of 8) gives {steps} updates per epoch (T3)."
    ),
    N_(
        "up to {epochs} epochs, about {updates} updates in all; the LR schedule and early "
        "stopping usually end the run sooner (T15)."
    ),
    N_(
        "dropout 0.2: with {rows} training rows a net of this size can memorise them; switching "
        "off a fifth of the units at random keeps it from relying on any one (T13)."
    ),
    N_(
        "weight decay {decay}: a firmer pull towards small weights on {rows} rows, where "
        "overfitting is the main risk (T15)."
    ),
    N_(
        "weight decay {decay}: {rows} training rows regularise the net by themselves; a gentle "
        "pull towards small weights is enough (T15)."
    ),
    N_(
        "one hidden layer of {units} units (for an MLP): {rows} rows can't pin down the "
        "{weights} weights of two layers of 256, so a smaller net overfits less (T13)."
    ),
    N_(
        "the LR is cut after {epochs} epochs without a better validation loss (small data is "
        "noisier, so it waits one epoch more)."
    ),
    N_("the LR is cut after {epochs} epochs without a better validation loss."),
    N_(
        "each cut divides the LR by 5: with up to {epochs} epochs, halving would not reach the "
        "floor in time (T7)."
    ),
    N_(
        "stop after {epochs} epochs without improvement, counted from the last LR cut, so the "
        "schedule gets to make its cuts first (T7)."
    ),
    N_(
        "the update/weight ratio is measured every {steps} steps, so even a run that stops "
        "early gets enough readings for the T6 check."
    ),
    N_(
        "LR {lr}: 0.1 suits batch 128; at batch {batch} the gradients are noisier, so the LR "
        "shrinks with the batch (0.1 × {same_batch}/128) and training stays stable (T5)."
    ),
    N_(
        "an ensemble of {members} nets from different seeds, their predictions averaged: on "
        "{rows} training rows one net's score depends a lot on its luck, and a member costs "
        "only seconds here (T14)."
    ),
    # the team server's guards (jobs.submit, jobs.names, jobs.datasets, jobs.quotas; issue 18)
    N_("a whole section can't be set at once; set one field per line, e.g. {field}=VALUE"),
    N_(
        "the {what} is {length} characters long; at most {limit} are allowed, so nothing was "
        "stored. Shorten it."
    ),
    N_(
        "{source} is not a registered dataset; add it first (Datasets page, or `trainboard "
        "datasets add FILE`, which checks it as an upload is checked)"
    ),
    N_("dataset {id} no longer exists; pick another dataset"),
    N_(
        "this run's settings name another file or target than its dataset {name}, so nothing "
        "was read; queue it again from the New run page"
    ),
    N_("{source}: not a bundled sample, so nothing was read."),
    N_(
        "{name}: the dataset's file is not in the data directory, so it was not read; add the "
        "file again from the Datasets page"
    ),
    N_("{name}: the dataset's file can't be read ({why})."),
    N_(
        "{name}: the file changed after it was checked (its content hash differs), so it was "
        "not loaded; upload it again"
    ),
    N_(
        "stopped at the {hours} h limit per run (TRAINBOARD_MAX_RUN_HOURS on the server); its "
        "checkpoint is kept: Resume it to go on"
    ),
    N_("stopped at the run time limit at step {step}; checkpoint saved"),
    # the auto preset on imbalanced classes (engine/auto.py, _imbalance; issue 20)
    N_(
        "the smallest class has {share} of the largest one's rows: each class's loss is "
        "weighted so a rare class counts as much as a common one, and the best epoch is the one "
        "with the best balanced accuracy (train.class_weight=off turns both off) (T1)."
    ),
    # why a target was guessed (engine/data/tabular.py, guess_target; issue 20)
    N_("its name, {name}, says it is the label"),
    N_("the first column: the last one, {name}, looks like {kind}"),
    N_("the last column that is not an ID, a date or free text ({name} is {kind})"),
)
# Messages without numbers: their own msgids (listed here so Babel finds them).
_FIXED = (
    N_(
        "the loss became NaN/inf: training diverged. Lower the learning rate (e.g. optim.lr÷10) "
        "or clip gradients (train.clip_norm=5, T9) (T5)"
    ),
    N_(
        "the loss became NaN/inf: training diverged. Lower the learning rate (e.g. optim.lr÷10) "
        "(T5)"
    ),
    N_("each cut halves the LR, so it reaches the floor after about 10 cuts (T7)."),
    N_("unknown setting; the settings a run may change are listed in docs/presets.md"),
    N_("set by the preset you pick above, not by a setting"),
    N_("the data comes from the dataset chosen above; pick or upload another dataset there"),
    N_(
        "this run's dataset is no longer registered, so it was not read; queue the run again "
        "on a dataset from the Datasets page"
    ),
    N_("the last column (no column is named like a label)"),
    N_("named like an ID or a date"),
    N_("a date"),
    N_("free text or an ID (almost every row differs)"),
    N_("a running number (an ID)"),
    N_("LR 0.1, the advice's good first LR for SGD with momentum at batch 128 (T5)."),
    # the auto preset's reasons for sequences (engine/auto.py, _sequence)
    N_(
        "Adam for a recurrent net: it adapts the step size per weight, which suits LSTMs better "
        "than one LR for all (T5)."
    ),
    N_(
        "LR 0.003, Adam's usual scale (about 1e-3) started a little bolder; the plateau rule "
        "cuts it (T5)."
    ),
    N_("Adam's LR starts small, so the floor where the run ends is lower too (T7)."),
    N_(
        "the LSTM's forget gate starts mostly open (bias 2), so long-range signals survive the "
        "first updates (T11)."
    ),
    N_(
        "gradients longer than 5 are scaled back to 5: recurrent nets sometimes produce enormous "
        "ones, and one bad step must not undo training (T9)."
    ),
)
# Placeholders whose text is itself a fixed phrase (or another message) to translate.
PHRASES = {"fill", "problem", "what", "kind"}
_PHRASE_TEXTS = (
    N_("an empty text cell matches no category"),
    N_(
        "each is filled with the median of that column over the training rows (0 if the column "
        "has no value there)"
    ),
    N_("unknown setting"),
    N_("run name"),
    N_("file name"),
)
# Why a run stopped: a summary's stop_reason, "_" read as " " (the Compare table, run_end).
STOP_REASONS = {
    "epochs": N_("all epochs done"),
    "early stop": N_("early stop"),
    "lr floor": N_("lr floor"),
    "cancel requested": N_("cancel requested"),
    "nonfinite loss": N_("nonfinite loss"),
    "nonfinite val loss": N_("nonfinite val loss"),
}


def stop_reason(text: str) -> str:
    """A stop reason ("early stop") in the session's language."""
    return _(STOP_REASONS[text]) if zh() and text in STOP_REASONS else text


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
    return re.compile(regex, re.DOTALL)


def message(text: str) -> str:
    """An English message from the engine in the session's language: a fixed text by its own
    msgid, else the first template of MESSAGES that matches it whole; else unchanged."""
    if not zh() or not text:
        return text
    fixed = _(text)
    if fixed != text:
        return fixed
    for template in MESSAGES:
        m = _pattern(template).fullmatch(text)
        if m is None:
            continue
        values = {
            k: stop_reason(v) if k == "reason" else message(v) if k in PHRASES else v
            for k, v in m.groupdict().items()
        }
        return _(template).format(**values)
    return text


# --- doctor findings by rule -------------------------------------------------------------------


def change_text(change: dict[str, Any]) -> str:
    """A finding's change as the engine writes it: "optim.lr=0.033, train.clip_norm=5.0"."""
    return ", ".join(f"{k}={v}" for k, v in change.items())


def _where(text: str) -> str:
    for phrase in (
        N_("PyTorch built-in"),
        N_("custom layer"),
        N_("the gradient with respect to the input"),
    ):
        text = text.replace(phrase, _(phrase))
    return text


def doctor_texts(
    rule: str, data: dict[str, Any], change: dict[str, Any], passed: bool | None
) -> tuple[str, str]:
    """(message, suggestion) of a doctor finding from its rule and ``data``, in the session's
    language. Raises KeyError (or TypeError/ValueError) when ``data`` lacks what the rule's
    template needs (a run recorded before the numbers were kept)."""
    d = data
    values = {**d, "change": change_text(change)}

    def fill(template: str) -> str:
        return template.format(**values)

    match rule:
        case "init_loss":
            msg = fill(
                _(
                    "loss at initialisation is {init_loss:.3f}; expected log({n_classes}) = {expected:.3f}"
                )
                if d["n_classes"]
                else _(
                    "loss at initialisation is {init_loss:.3f}; expected about 1.0 (standardized targets)"
                )
            )
            sug = (
                ""
                if passed
                else fill(_("the initial weights are too large or too small: try {change}"))
            )
        case "inputs_standardized":
            msg = fill(
                _(
                    "inputs after preprocessing: largest |mean| {max_abs_mean:.3f}, largest |std − 1| {max_std_dev:.3f}"
                )
            )
            sug = (
                ""
                if passed
                else _(
                    "turn data.standardize on; big offsets make weight updates huge and correlated"
                )
            )
        case "gradcheck" if passed:
            msg = _(
                "gradient check passed for every parameter tensor (analytic = numerical gradients, float64)"
            )
            sug = ""
        case "gradcheck":
            msg = _("gradient check FAILED for {where}: {error}").format(
                where=_where(d["where"]), error=d["error"]
            )
            sug = (
                _(
                    "custom code in {modules} (your code) computes a gradient wrongly: check its "
                    "backward / autograd.Function"
                ).format(modules=", ".join(d["custom_modules"]))
                if d["custom_modules"]
                else _(
                    "every layer is a PyTorch built-in, whose gradients PyTorch tests; this is "
                    "more likely a point where the function has a kink (a ReLU at exactly 0, a "
                    "max-pool tie) than a wrong gradient"
                )
            )
        case "batch_size":
            msg, sug = _batch_size(d, fill, passed, bool(change))
        case "activation_scale" if "ratio" not in d:
            msg, sug = _("activation scale: too few layers to compare"), ""
        case "activation_scale":
            msg = fill(
                _("activation spread changes ×{ratio:.3g} from the first to the last hidden layer")
            )
            if passed:
                sug = ""
            elif change:
                sug = fill(_("the signal vanishes or explodes through depth: try {change}"))
            else:
                sug = _("the signal vanishes or explodes through depth: try another init (T8)")
        case "overfit_one_batch":
            detail = (
                _("accuracy {accuracy}").format(accuracy=f"{d['accuracy']:.0%}")
                if d["accuracy"] is not None
                else fill(_("loss {first_loss:.3g} → {final_loss:.3g}"))
            )
            msg = (
                _("memorising one batch of 16: {detail}")
                if passed
                else _(
                    "memorising one batch of 16: {detail} — it should reach 100% / near-zero loss"
                )
            ).format(detail=detail)
            sug = (
                ""
                if passed
                else _(
                    "check the labels, the loss and the gradients; a model that can't memorise "
                    "16 examples won't learn the dataset"
                )
            )
        case "ratio_low":
            msg = fill(
                _(
                    "update/weight ratio has stayed below {low:g} (now {ratio:.2g}): learning is very slow"
                )
            )
            sug = (
                fill(_("raise the learning rate ×3 ({change})"))
                if change
                else _(
                    "the learning rate is already at its largest allowed value (10): check the "
                    "inputs' scale (T2) and the init (T8)"
                )
            )
        case "ratio_high":
            msg = fill(
                _(
                    "update/weight ratio has stayed above {high:g} (now {ratio:.2g}): learning is unstable"
                )
            )
            sug = fill(_("lower the learning rate ÷3 ({change}) or clip gradients (T9)"))
        case "exploding_gradient":
            msg = fill(
                _("gradient norm jumped to {norm:.3g}, {times:.0f}× its recent median {median:.3g}")
            )
            sug = (
                _("clip the gradient norm (train.clip_norm=5)")
                if d["clip_norm"] is None
                else fill(
                    _(
                        "gradients are already clipped at {clip_norm:g}: lower the learning rate "
                        "÷3 ({change})"
                    )
                )
            )
        case "plateau":
            msg = fill(
                _(
                    "validation loss has not improved for {epochs} epochs: a scheduled run would cut the LR here"
                )
            )
            sug = fill(
                _("turn schedule.enabled on so the LR is multiplied by {factor:g} on plateaus")
            )
        case "overfitting":
            msg = fill(
                _(
                    "validation loss rose {window} epochs in a row while training loss fell: the model is memorising"
                )
            )
            sug = (
                fill(_("try {change}; more data helps most; early stopping keeps the best weights"))
                if change
                else _("more data helps most; early stopping keeps the best weights")
            )
        case "loss_rising":
            msg = fill(
                _("epoch training loss {loss:.3g} is over 3× the first epoch's {initial:.3g}")
            )
            sug = fill(_("lower the learning rate ÷10 ({change})"))
        case "class_never_predicted":
            msg = _(
                "the model never predicts class {name} (0 of its {rows} validation rows): "
                "accuracy hides it; look at balanced accuracy"
            ).format(name=repr(d["class"]), rows=d["rows"])
            sug = (
                _("weigh the classes (train.class_weight=auto)")
                if change
                else _("add examples of that class (T1); the loss already weighs the classes")
            )
        case _:
            raise KeyError(rule)
    return msg, sug


def _batch_size(
    d: dict[str, Any], fill: Any, passed: bool | None, has_change: bool
) -> tuple[str, str]:
    if passed:
        return fill(
            _("batch size {batch_size} on {train_rows} training rows: {batches} batches per epoch")
        ), ""
    b = d["batch_size"]
    problems = []
    if b * d["min_batches"] > d["train_rows"]:
        problems.append(
            fill(
                ngettext(
                    "a batch of {batch_size} is over 1/{min_batches} of the {train_rows} training "
                    "rows ({batches} batch per epoch): too few updates, and batches this large "
                    "relative to the data tend to overfit",
                    "a batch of {batch_size} is over 1/{min_batches} of the {train_rows} training "
                    "rows ({batches} batches per epoch): too few updates, and batches this large "
                    "relative to the data tend to overfit",
                    d["batches"],
                )
            )
        )
    if b > d["max_batch"]:
        problems.append(
            fill(_("a batch of {batch_size} is very large: it can be inefficient and overfit"))
        )
    if b % 8:
        problems.append(
            fill(_("{batch_size} is not a multiple of 8, which accelerators handle best"))
        )
    msg = _("batch size {batch_size}: {problems}").format(
        batch_size=b, problems=_("; ").join(problems)
    )
    return msg, fill(_("try {change}")) if has_change else ""


def finding(f: dict[str, Any], event: dict[str, Any] | None) -> tuple[str, str]:
    """(message, suggestion) of a finding of ``jobs.views.findings`` for the doctor panel, in
    the session's language. ``event``: the event it came from (its ``data`` holds the
    finding's numbers)."""
    if not zh():
        return f["message"], f["suggestion"]
    ed = (event or {}).get("data") or {}
    prefix, core, suffix = split_event_message(f["message"])
    try:
        msg, sug = doctor_texts(f["rule"], ed.get("data") or {}, f["change"], ed.get("passed"))
    except (KeyError, TypeError, ValueError, IndexError):
        msg, sug = message(core), message(f["suggestion"])
    return f"{prefix}{msg}{suffix}", sug


_EVENT_AFFIXES = re.compile(r"(?P<prefix>[✓✗] )?(?P<core>.*?)(?P<suffix> \(T\d+\))?", re.DOTALL)


def split_event_message(text: str) -> tuple[str, str, str]:
    """A doctor or pre-flight event's message → (the "✓ "/"✗ " mark, the finding's own
    message, the " (T8)" tip), as engine.train writes them."""
    m = _EVENT_AFFIXES.fullmatch(text)
    assert m is not None  # the pattern matches any text
    return m["prefix"] or "", m["core"], m["suffix"] or ""


def event_message(e: dict[str, Any]) -> str:
    """An event's message (the event log) in the session's language."""
    if not zh():
        return e["message"]
    d = e.get("data") or {}
    if e["kind"] in ("doctor", "preflight") and d.get("rule") not in (None, "dataset_report"):
        prefix, core, suffix = split_event_message(e["message"])
        try:
            msg, _sug = doctor_texts(
                d["rule"], d.get("data") or {}, d.get("change") or {}, d.get("passed")
            )
        except (KeyError, TypeError, ValueError, IndexError):
            msg = message(core)
        return f"{prefix}{msg}{suffix}"
    return message(e["message"])


# --- the engine's vocabulary ---------------------------------------------------------------------

WORDS = {
    "classification": N_("classification"),
    "regression": N_("regression"),
    "tabular": N_("tabular"),
    "image": N_("image"),
    "sequence": N_("sequence"),
    "accuracy": N_("accuracy"),
}


def word(value: object) -> str:
    """A value of the engine's vocabulary (a task, a modality, a metric name) as a word of the
    session's language; any other value as it is."""
    text = str(value)
    return _(WORDS[text]) if text in WORDS else text
