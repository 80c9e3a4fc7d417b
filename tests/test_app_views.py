"""The dashboard's read models and derived submissions (``jobs.views``), on real configs."""

from __future__ import annotations

import pytest

from engine.config import resolve_config
from jobs import views


def _run(run_id: int, **overrides) -> dict:
    return {"id": run_id, "spec": resolve_config("sutskever", overrides=overrides).to_dict()}


def test_config_diff_lists_only_the_settings_that_differ():
    rows = views.config_diff([_run(1), _run(2, **{"optim.lr": 0.05, "model.hidden": [64]})])
    assert {r["setting"]: (r["run 1"], r["run 2"]) for r in rows} == {
        "optim.lr": ("0.1", "0.05"),
        "model.hidden": ("[256, 256]", "[64]"),
    }
    assert views.config_diff([_run(1), _run(2)]) == []
    assert views.config_diff([_run(1)]) == []


@pytest.mark.parametrize(
    ("rule", "spec_overrides", "change"),
    [
        ("ratio_high", {"optim.lr": 0.3}, {"optim.lr": 0.1}),
        ("ratio_low", {"optim.lr": 0.01}, {"optim.lr": 0.03}),
        ("loss_rising", {}, {"optim.lr": 0.01}),
        ("plateau", {"schedule.enabled": False}, {"schedule.enabled": True}),
        ("overfitting", {}, {"model.dropout": 0.3}),
        ("overfitting", {"model.dropout": 0.5}, {"augment.noise_std": 0.05}),
        ("exploding_gradient", {}, {"train.clip_norm": 5.0}),
        ("exploding_gradient", {"train.clip_norm": 5.0}, {"optim.lr": 0.0333}),
        ("init_loss", {}, {"model.init": "normal-0.02"}),
    ],
)
def test_a_doctor_finding_becomes_one_concrete_change(rule, spec_overrides, change):
    spec = resolve_config("sutskever", overrides=spec_overrides).to_dict()
    got = views.suggested_change({"rule": rule, "suggestion": "whatever"}, spec)
    assert got == change
    resolve_config("sutskever", overrides={**spec_overrides, **got})  # and it is valid


def test_a_suggestion_written_as_an_assignment_is_parsed_and_plain_advice_is_not():
    spec = resolve_config("sutskever").to_dict()
    f = {"rule": "nonfinite_loss", "suggestion": "optim.lr=0.01"}
    assert views.suggested_change(f, spec) == {"optim.lr": 0.01}
    f = {"rule": "gradcheck", "suggestion": "check any custom autograd code"}
    assert views.suggested_change(f, spec) is None


@pytest.mark.parametrize(
    ("preset", "tip", "expect"),
    [
        ("sutskever", "T7", {"schedule.enabled": False, "train.early_stop_patience": None}),
        ("sutskever", "T2", {"data.standardize": False, "data.log1p": "off"}),
        ("sequence", "T9", {"train.clip_norm": None}),
        ("sequence", "T11", {"model.forget_bias": 0.0}),
        ("small-data", "T13", {"model.dropout": 0.0}),
        ("ensemble", "T14", {"ensemble.members": 1}),
    ],
)
def test_switching_a_tip_off_changes_the_settings_behind_it(preset, tip, expect):
    off = views.tip_off_overrides(preset, tip)
    assert expect.items() <= off.items()
    assert tip in views.ab_tips(preset)
    cfg = views.flatten(resolve_config(preset, overrides=off).to_dict())
    assert all(cfg[k] == v for k, v in expect.items())


def test_ab_tips_offers_only_tips_that_change_something():
    assert "T9" not in views.ab_tips("sutskever")  # no clipping to switch off
    assert "T14" not in views.ab_tips("sutskever")
    assert "T11" in views.ab_tips("sequence")


def test_spec_overrides_resubmit_the_same_config():
    spec = resolve_config("sequence", overrides={"optim.lr": 0.002}).to_dict()
    again = resolve_config("sequence", overrides=views.spec_overrides(spec)).to_dict()
    assert again == spec


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "—"), (5.4, "5s"), (125, "2m 05s"), (7322, "2h 02m")]
)
def test_durations_read_like_a_clock(seconds, text):
    assert views.format_duration(seconds) == text


def test_best_metric_formatting():
    assert views.format_metric("acc", 0.9512) == "acc 95.1%"
    assert views.format_metric("rmse", 0.123456) == "rmse 0.1235"
    assert views.format_metric(None, None) == "—"


def test_metric_keys_lists_what_the_run_logged(tmp_path):
    from jobs import reader, registry
    from jobs.db import connect
    from jobs.writer import MetricWriter

    db = connect(tmp_path / "t.db")
    a = registry.create_run(db, spec={}, preset="quick")
    b = registry.create_run(db, spec={}, preset="quick")
    with MetricWriter(tmp_path / "t.db", a) as w:
        for s in range(100):
            w.log(s, {"train/loss": 1.0, "ratio/fc1.weight": 1e-3})
    with MetricWriter(tmp_path / "t.db", b) as w:
        w.log(0, {"lr": 0.1})
    assert views.metric_keys(db, a) == reader.keys(db, a) == ["ratio/fc1.weight", "train/loss"]
    assert views.metric_keys(db, b) == ["lr"]
    assert views.metric_keys(db, 999) == []
