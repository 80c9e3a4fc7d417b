"""Issue 10 §3: the doctor's false-alarm sweep, every bundled dataset × every preset.

Each healthy run (a shipped preset on a bundled dataset, through the real loader, split and loop,
shortened to a few epochs) is checked for two kinds of false alarm:

* a suggestion the run already has (a ``change`` whose every value is already in effect): the
  "queue with this change" button would queue a duplicate;
* "loss rising" (T5) on a run whose epoch training loss fell.

Run with ``-s`` to see what each run's doctor said (the closing note's table comes from it).
"""

from __future__ import annotations

import math

import pytest

from engine import MemorySink, resolve_config, run_training
from engine.auto import DataFacts
from engine.config import list_presets
from engine.data import load_dataset
from jobs.runs.format import flatten

# digits is capped at 600 rows to keep the sweep short; the others run whole.
DATASETS = {
    "builtin:breast-cancer": {},
    "builtin:diabetes": {},
    "builtin:digits": {"data.max_rows": 600},
    "builtin:adding-20": {"data.max_rows": 600},
}
PRESETS = [p.name for p in list_presets()]
EPOCHS = 6


def _findings(sink: MemorySink) -> list[dict]:
    out = [e["data"] | {"message": e["message"]} for e in sink.kinds("doctor")]
    out += [
        e["data"] | {"message": e["message"]}
        for e in sink.kinds("preflight")
        if e["data"].get("passed") is False
    ]
    return out


# The sequence preset is for sequences, the others for tables and images.
RUNS = [
    (preset, dataset)
    for preset in PRESETS
    for dataset in DATASETS
    if dataset.startswith("builtin:adding") == (preset == "sequence")
]


@pytest.mark.parametrize(("preset", "dataset"), RUNS)
def test_healthy_runs_get_no_false_alarm(preset, dataset):
    raw = load_dataset(dataset)
    overrides = {**DATASETS[dataset], "train.epochs": EPOCHS}
    if preset == "ensemble":
        overrides["ensemble.members"] = 3  # the same code path as 10 members, a third the time
    cfg = resolve_config(
        preset, dataset=dataset, overrides=overrides, facts=DataFacts.from_raw(raw)
    )
    sink = MemorySink()
    result = run_training(cfg, sink=sink, raw=raw)
    assert result.status == "finished", result.message
    config = flatten(cfg.to_dict())
    findings = _findings(sink)
    print(
        f"\n{preset:>10} on {dataset}: "
        + ("; ".join(f"{f.get('tip')} {f.get('rule')}" for f in findings) or "silent")
    )
    for f in findings:
        change = f.get("change") or {}
        assert not change or any(config.get(k) != v for k, v in change.items()), (
            f"suggests what the run already has: {f}"
        )
    losses = [v for _, v in sink.series("train/epoch_loss")]
    assert all(math.isfinite(v) for v in losses)
    if losses[-1] < losses[0]:
        assert "loss_rising" not in {f.get("rule") for f in findings}, findings


# --- T6 after the schedule's cuts (issue 20, §4) ----------------------------------------------


def test_a_low_ratio_after_a_planned_lr_cut_is_no_finding_and_a_raise_is_from_the_start():
    """The update/weight ratio falls because the schedule cut the LR: that is its plan, not slow
    learning. And a suggested LR is a new starting LR, relative to the run's own start: on a
    run that started at 0.1 and sits at 0.0015 after its cuts, "raise ×3" means 0.3 (it used to
    say 0.0045, 21× lower than the run started with)."""
    from engine import doctor

    low = [1e-6] * 5
    assert doctor.rule_ratio(low, 1e-4, 1e-2, 5, lr=0.0015, base_lr=0.1) is None
    f = doctor.rule_ratio(low, 1e-4, 1e-2, 5, lr=0.1, base_lr=0.1)  # no cut yet: slow learning
    assert f is not None and f.rule == "ratio_low" and f.change == {"optim.lr": 0.3}
    high = doctor.rule_ratio([0.5] * 5, 1e-4, 1e-2, 5, lr=0.0015, base_lr=0.1)
    assert high is not None and high.change == {"optim.lr": 0.0333}  # below the start: ÷3


def test_a_real_run_cut_to_its_floor_gets_no_ratio_warning():
    """A healthy run whose schedule cuts the LR again and again (patience 0, floor low) on a
    real table: many readings below the band after the cuts, and no T6 finding."""
    raw = load_dataset("builtin:breast-cancer")
    cfg = resolve_config(
        "sutskever",
        dataset="builtin:breast-cancer",
        overrides={
            "train.epochs": 25,
            "schedule.plateau_patience": 0,
            "schedule.lr_floor": 1e-7,
            "train.early_stop_patience": 1000,
            "train.ratio_every": 2,
            "train.preflight": False,
        },
    )
    sink = MemorySink()
    result = run_training(cfg, sink=sink, raw=raw)
    assert result.status == "finished", result.message
    lrs = [v for _, v in sink.series("lr")]
    assert min(lrs) < cfg.optim.lr / 50  # the schedule really cut it, many times
    ratios = [v for _, v in sink.series("ratio/median")]
    assert sum(r < cfg.doctor.ratio_low for r in ratios) >= cfg.doctor.ratio_window
    assert "ratio_low" not in {f.get("rule") for f in _findings(sink)}, _findings(sink)


def test_memorising_needs_something_learned_first():
    """A classifier at the majority-class accuracy has learned nothing to forget: a rising
    validation loss there is no T13 finding (issue 20, §4: standardization off, loss 660)."""
    from engine import doctor

    train, val = [9.0, 7.0, 5.0, 3.0], [1.0, 1.2, 1.4, 1.6]
    quiet = doctor.rule_overfitting(
        train, val, dropout=0.0, noise_std=0.0, best_val_accuracy=0.62, majority_share=0.62
    )
    assert quiet is None
    fires = doctor.rule_overfitting(
        train, val, dropout=0.0, noise_std=0.0, best_val_accuracy=0.9, majority_share=0.62
    )
    assert fires is not None and fires.rule == "overfitting"
