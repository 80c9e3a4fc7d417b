"""The loop's decisions (engine.decide), each a pure function of history + settings, and the
structured change every doctor finding carries."""

from __future__ import annotations

import math

import pytest
import torch

from engine import decide, doctor
from engine.decide import Action
from engine.vocab import TERMINAL, EventKind, RunStatus

# ---------------------------------------------------------------- LR cut reporting (T7)


@pytest.mark.parametrize(
    ("old", "new", "reported"), [(0.1, 0.05, True), (0.1, 0.1, False), (0.05, 0.1, False)]
)
def test_an_lr_cut_is_reported_only_when_the_lr_went_down(old, new, reported):
    d = decide.lr_cut(old, new, epoch=4)
    assert (d is not None) == reported
    if d:
        assert d.action is Action.REPORT and d.kind == EventKind.LR_CUT and d.tip == "T7"
        assert d.data == {"tip": "T7", "old_lr": old, "new_lr": new, "epoch": 4}
        assert d.message == "validation loss plateaued: LR cut 0.1 → 0.05 (T7)"


def test_a_plateau_hint_names_the_patience_and_both_lrs():
    d = decide.plateau_hint(0.1, 0.05, epoch=7, patience=3)
    assert d.action is Action.REPORT and d.kind == EventKind.PLATEAU_HINT
    assert d.data == {"tip": "T7", "old_lr": 0.1, "new_lr": 0.05, "epoch": 7}
    assert (
        d.message
        == "a cut would have helped here: val/loss had not improved for 3 epochs (LR 0.1 → 0.05, T7)"
    )
    assert decide.plateau_hint(0.1, 0.1, epoch=7, patience=3) is None


# ---------------------------------------------------------------- stops (T7)


@pytest.mark.parametrize(
    ("lr", "floor", "stops"),
    [(0.0125, 0.02, True), (0.02, 0.02, False), (0.05, 0.02, False), (1e-9, 0.0, False)],
)
def test_the_run_stops_once_the_lr_is_below_the_floor(lr, floor, stops):
    d = decide.lr_floor(lr, floor=floor, epoch=4)
    assert (d is not None) == stops
    if d:
        assert d.action is Action.STOP and d.status == RunStatus.FINISHED and d.reason == "lr_floor"
        assert d.kind == EventKind.LR_FLOOR and d.data == {
            "tip": "T7",
            "lr": lr,
            "floor": floor,
            "epoch": 4,
        }


@pytest.mark.parametrize(
    ("bad_epochs", "patience", "stops"),
    [(3, 3, True), (4, 3, True), (2, 3, False), (50, None, False)],
)
def test_early_stop_fires_after_patience_epochs_without_improvement(bad_epochs, patience, stops):
    d = decide.early_stop(bad_epochs, patience=patience, epoch=9, best_epoch=9 - bad_epochs)
    assert (d is not None) == stops
    if d:
        assert (
            d.action is Action.STOP and d.status == RunStatus.FINISHED and d.reason == "early_stop"
        )
        assert d.data == {"tip": "T7", "epoch": 9, "best_epoch": 9 - bad_epochs}
        assert f"for {bad_epochs} epochs" in d.message


# ---------------------------------------------------------------- divergence (T5)


@pytest.mark.parametrize(
    ("latest", "reason"),
    [
        ({"train/loss": math.nan, "grad/norm": 1.0}, "nonfinite_loss"),
        ({"train/loss": 1.0, "grad/norm": math.inf}, "nonfinite_loss"),
        ({"train/epoch_loss": -math.inf}, "nonfinite_loss"),
        ({"val/loss": math.nan}, "nonfinite_val_loss"),
        ({"train/loss": math.nan, "val/loss": 0.5}, "nonfinite_loss"),  # named after the bad value
        ({"train/loss": 1.0, "grad/norm": 3.0}, None),
        ({"val/loss": 0.5}, None),
    ],
)
def test_a_non_finite_loss_or_norm_ends_the_run_as_diverged(latest, reason):
    d = decide.diverged(latest, lr=0.05, base_lr=0.1, clip_norm=None)
    if reason is None:
        assert d is None
        return
    assert (
        d.action is Action.DIVERGE
        and d.status == RunStatus.DIVERGED
        and d.kind == EventKind.DIVERGED
    )
    assert (
        d.reason == reason
        and d.data["reason"] == reason
        and d.data["tip"] == "T5"
        and d.data["lr"] == 0.05
    )
    assert d.data["suggestion"] == "optim.lr=0.01" and d.data["change"] == {"optim.lr": 0.01}
    assert "learning rate" in d.message and "train.clip_norm=5" in d.message


def test_the_diverged_message_suggests_clipping_only_when_the_run_does_not_clip():
    d = decide.diverged({"train/loss": math.nan}, lr=0.1, base_lr=0.3, clip_norm=5.0)
    assert "clip" not in d.message and d.data["change"] == {"optim.lr": 0.03}


# ---------------------------------------------------------------- clip bursts (T9)


@pytest.mark.parametrize(
    ("clipped", "steps", "bound", "reported"),
    [(5, 10, 1.0, True), (4, 10, 1.0, False), (4, 4, 1.0, False), (10, 10, None, False)],
)
def test_a_clip_burst_is_reported_when_half_the_steps_of_an_epoch_clip(
    clipped, steps, bound, reported
):
    d = decide.clip_burst(clipped, steps, bound=bound, epoch=2)
    assert (d is not None) == reported
    if d:
        assert d.action is Action.REPORT and d.kind == EventKind.CLIP_BURST
        assert d.data == {
            "tip": "T9",
            "epoch": 2,
            "clipped": clipped,
            "steps": steps,
            "bound": bound,
        }


# ---------------------------------------------------------------- the vocabulary


def test_the_vocabulary_compares_equal_to_the_stored_strings():
    assert EventKind.PLATEAU_HINT == "plateau_hint" and RunStatus.LOST == "lost"
    assert set(TERMINAL) == {"finished", "failed", "diverged", "cancelled"}
    assert {"released", "checkpoint_failed", "oom", "resumed"} <= set(EventKind)


def test_the_vocabulary_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, engine.vocab, engine.faults; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- doctor findings carry a change


@pytest.mark.parametrize(
    ("finding", "change"),
    [
        (lambda: doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=0.1), {"optim.lr": 0.3}),
        (lambda: doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=0.011111), {"optim.lr": 0.0333}),
        (lambda: doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=5.0), {"optim.lr": 10.0}),
        (lambda: doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=10.0), {}),  # already at the cap
        (lambda: doctor.rule_ratio([0.5] * 5, 1e-4, 1e-2, 5, lr=0.1), {"optim.lr": 0.0333}),
        (lambda: doctor.rule_divergence([1.0, 9.0], 1.0, lr=0.1), {"optim.lr": 0.01}),
        (
            lambda: doctor.rule_exploding([1.0] * 11 + [100.0], 10.0, clip_norm=None, lr=0.1),
            {"train.clip_norm": 5.0},
        ),
        (
            lambda: doctor.rule_exploding([1.0] * 11 + [100.0], 10.0, clip_norm=5.0, lr=0.1),
            {"optim.lr": 0.0333},
        ),
        (
            lambda: doctor.rule_overfitting([4, 3, 2, 1], [1, 2, 3, 4], dropout=0.0, noise_std=0.0),
            {"model.dropout": 0.3},
        ),
        (
            lambda: doctor.rule_overfitting([4, 3, 2, 1], [1, 2, 3, 4], dropout=0.3, noise_std=0.0),
            {"augment.noise_std": 0.05},
        ),
        (
            lambda: doctor.rule_overfitting(
                [4, 3, 2, 1], [1, 2, 3, 4], dropout=0.5, noise_std=0.05
            ),
            {},
        ),
        (
            lambda: doctor.rule_plateau([1.0] * 5, factor=0.5, patience=3, threshold=1e-4),
            {"schedule.enabled": True},
        ),
        (
            lambda: doctor.check_init_loss(9.0, "classification", 10, init="default"),
            {"model.init": "normal-0.02"},
        ),
        (
            lambda: doctor.check_init_loss(9.0, "classification", 10, init="normal-0.02"),
            {"model.init": "scaled", "model.init_scale": 0.1},
        ),
        (
            lambda: doctor.check_init_loss(2.3, "classification", 10, init="default"),
            {},
        ),  # passed: nothing to change
    ],
)
def test_each_finding_suggests_one_concrete_change_the_run_does_not_have(finding, change):
    f = finding()
    assert f is not None and f.change == change
    assert f.to_dict()["change"] == change


def test_the_standardization_check_suggests_standardizing_unless_the_run_already_does():
    x = torch.randn(200, 4) * 50 + 100
    assert doctor.check_standardized(x, "tabular", standardize=False).change == {
        "data.standardize": True
    }
    assert doctor.check_standardized(x, "tabular", standardize=True).change == {}
    z = torch.randn(200, 4)
    z = (z - z.mean(0)) / z.std(0)
    assert doctor.check_standardized(z, "tabular", standardize=False).change == {}


def test_the_activation_check_suggests_scaled_init_unless_the_run_has_it():
    deep = torch.nn.Sequential(*[torch.nn.Linear(64, 64, bias=False) for _ in range(12)])
    with torch.no_grad():
        for layer in deep:
            layer.weight.mul_(0.05)  # the signal shrinks ~×0.03 per layer: vanishes through depth
    x = torch.randn(256, 64)
    assert doctor.check_activation_scale(deep, x, init="default").change == {
        "model.init": "scaled",
        "model.init_scale": 1.0,
    }
    assert doctor.check_activation_scale(deep, x, init="scaled", init_scale=0.5).change == {
        "model.init": "scaled",
        "model.init_scale": 1.0,
    }
    assert doctor.check_activation_scale(deep, x, init="scaled", init_scale=1.0).change == {}
