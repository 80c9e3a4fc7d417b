"""Issue 20, §4: findings you can act on blindly. Real runs on scikit-learn's breast-cancer
table through the real engine and the real read model (``jobs.runs.views.findings``): the root
cause comes first and is marked "Start here", the findings it explains go under it, and a rule
that stays true is one finding with its count, not N copies."""

from __future__ import annotations

import pytest

from engine import MemorySink, resolve_config, run_training
from jobs.runs import views


def _findings(preset: str, overrides: dict) -> list[dict]:
    cfg = resolve_config(preset, dataset="builtin:breast-cancer", overrides=overrides)
    sink = MemorySink()
    run_training(cfg, sink=sink)
    return views.findings([{**e, "id": i} for i, e in enumerate(sink.events)])


def test_unscaled_inputs_are_the_root_cause_and_explain_the_rest():
    found = _findings(
        "sutskever",
        {"data.standardize": False, "data.log1p": "off", "train.epochs": 12},
    )
    start = [f for f in found if f["start_here"]]
    assert [f["rule"] for f in start] == ["inputs_standardized"] and start[0]["tip"] == "T2"
    assert found[0] is start[0]
    explained = {f["rule"] for f in found if f["explained_by"] == "inputs_standardized"}
    assert "init_loss" in explained  # a starting loss far off is the scale's doing, not T8's
    # every explained finding comes after every finding that is not
    flags = [f["explained_by"] is not None for f in found]
    assert flags == sorted(flags)


def test_a_rule_that_stays_true_is_one_finding_with_its_count():
    events = []
    for i, step in enumerate((10, 60, 110)):
        events.append(
            {
                "id": i,
                "step": step,
                "kind": "doctor",
                "message": f"update/weight ratio has stayed below 0.0001 (now {i}e-05) (T6)",
                "data": {"tip": "T6", "rule": "ratio_low", "severity": "warning"},
            }
        )
    (f,) = views.findings(events)
    assert (f["count"], f["first_step"], f["last_step"]) == (3, 10, 110)
    assert "now 2e-05" in f["message"] and f["start_here"]


@pytest.mark.parametrize("tip_order", [("T13", "T6", "T8", "T2")])
def test_findings_rank_data_before_init_before_lr_before_overfitting(tip_order):
    rules = {"T13": "overfitting", "T6": "ratio_high", "T8": "activation_scale", "T2": "x"}
    events = [
        {
            "id": i,
            "step": i,
            "kind": "doctor",
            "message": tip,
            "data": {"tip": tip, "rule": rules[tip], "severity": "warning"},
        }
        for i, tip in enumerate(tip_order)
    ]
    assert [f["tip"] for f in views.findings(events)] == ["T2", "T8", "T6", "T13"]


def test_run_detail_marks_the_root_cause_start_here(tmp_path, monkeypatch):
    from jobs.datasets import ingest as datasets
    from jobs.store.db import connect
    from tests.test_app import FAST, _train, page, texts

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    ds = datasets.register_builtin(db, "builtin:breast-cancer")
    bad = {**FAST, "data.standardize": False, "data.log1p": "off", "train.preflight": True}
    run = _train(db, ds, "sutskever", bad, "unscaled")
    at = page("run_detail", run_id=run)
    shown = texts(at)
    assert shown.count("Start here") == 1
    assert shown.index("Start here") < shown.index("inputs after preprocessing")
    assert any("likely explained by the ones above" in e.label for e in at.expander)
