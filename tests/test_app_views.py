"""The dashboard's read models (``jobs.runs.views``), formatting (``jobs.runs.format``) and derived
submissions (``jobs.runs.submit``), on real configs."""

from __future__ import annotations

import re

import pytest

from engine.config import list_presets, resolve_config
from jobs.runs import format as fmt
from jobs.runs import submit, views


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


def test_findings_carry_the_doctors_own_change_and_leave_passed_checks_out():
    """The change a finding suggests is the doctor's own (engine.doctor ``Finding.change``,
    stored in the event's data): the read model passes it on, it derives nothing."""
    evts = [
        {
            "id": 1,
            "step": 5,
            "kind": "doctor",
            "message": "ratio high",
            "data": {
                "tip": "T6",
                "rule": "ratio_high",
                "severity": "warning",
                "change": {"optim.lr": 0.1},
            },
        },
        {
            "id": 2,
            "step": 0,
            "kind": "preflight",
            "message": "ok",
            "data": {"tip": "T8", "passed": True},
        },
        {
            "id": 3,
            "step": 0,
            "kind": "preflight",
            "message": "rows repeat",
            "data": {"tip": "T1", "passed": None},
        },
        {
            "id": 4,
            "step": 9,
            "kind": "diverged",
            "message": "nan",
            "data": {"tip": "T5", "suggestion": "optim.lr=0.01", "change": {"optim.lr": 0.01}},
        },
    ]
    out = views.findings(evts)
    # ranked by root cause: the data (T1), the divergence (T5), then what it explains (T6)
    assert [f["event_id"] for f in out] == [3, 4, 1]
    assert [f["change"] for f in out] == [{}, {"optim.lr": 0.01}, {"optim.lr": 0.1}]
    assert out[2]["explained_by"] == "diverged" and out[0]["start_here"]
    assert out[1]["severity"] == "error" and out[1]["suggestion"] == "optim.lr=0.01"


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
    off = submit.tip_off_overrides(preset, tip)
    assert expect.items() <= off.items()
    assert tip in submit.ab_tips(preset)
    cfg = fmt.flatten(resolve_config(preset, overrides=off).to_dict())
    assert all(cfg[k] == v for k, v in expect.items())


def test_ab_tips_offers_only_tips_that_change_something():
    assert "T9" not in submit.ab_tips("sutskever")  # no clipping to switch off
    assert "T14" not in submit.ab_tips("sutskever")
    assert "T11" in submit.ab_tips("sequence")


def test_ab_on_a_small_table_offers_the_auto_presets_dropout_and_ensemble_not_t10():
    """Issue 20, §8: on a small real table the auto preset derives dropout (T13) and a
    5-net ensemble (T14), so A/B offers them; T10 (a gradient check before training) changes
    nothing about training and is never offered."""
    from engine.auto import DataFacts
    from engine.data import load_dataset

    facts = DataFacts.from_raw(load_dataset("builtin:breast-cancer"))
    tips = submit.ab_tips("auto", facts)
    assert {"T13", "T14"} <= set(tips) and "T10" not in tips
    assert all("T10" not in submit.ab_tips(p.name) for p in list_presets())
    off = submit.tip_off_overrides("auto", "T14")
    assert off["ensemble.members"] == 1


def test_every_tip_a_preset_sets_can_be_switched_off_for_ab():
    """Every tip the preset sets whose "off" (its fields back to the engine's defaults) changes
    something is offered, not only the tips with a TIP_OFF switch."""
    from jobs import service

    tips = service.ab_tips("sequence")
    assert {"T3", "T5"} <= set(tips)  # batch size, Adam at 0.003: no TIP_OFF entry
    off = fmt.flatten(
        resolve_config("sequence", overrides=submit.tip_off_overrides("sequence", "T5")).to_dict()
    )
    assert off["optim.name"] == "sgd" and off["optim.lr"] == 0.1  # the engine's defaults
    assert "T5" not in service.ab_tips("sutskever")  # its T5 values are the defaults: no "off"


def test_spec_overrides_resubmit_the_same_config():
    spec = resolve_config("sequence", overrides={"optim.lr": 0.002}).to_dict()
    again = resolve_config("sequence", overrides=submit.spec_overrides(spec)).to_dict()
    assert again == spec


def test_an_auto_run_with_a_change_keeps_its_dataset_facts_and_loads_no_data(tmp_path, monkeypatch):
    from engine.data import loaders
    from jobs.store import registry
    from jobs.store.db import connect

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    facts = {"rows": 569, "task": "classification", "modality": "tabular", "classes": 2,
             "features": 30}  # fmt: skip
    spec = resolve_config("auto", dataset="builtin:breast-cancer").to_dict() | {"auto": facts}
    run_id = registry.create_run(db, spec=spec, preset="auto")

    def no_loading(*a, **k):
        raise AssertionError("the dataset was loaded again")

    monkeypatch.setattr(loaders, "load_dataset", no_loading)
    new = registry.get_run(db, submit.submit_with_change(db, run_id, {"optim.lr": 0.02}))
    assert new["spec"]["auto"] == facts  # the same facts, so the "why" column reads the same
    assert new["spec"]["optim"]["lr"] == 0.02


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (5.4, "5 s"), (45, "45 s"), (80, "1 min 20 s"), (125, "2 min 05 s")]
    + [(7322, "2 h 02 min"), (7500, "2 h 05 min")],
)
def test_durations_read_like_people_say_them(seconds, text):
    assert fmt.format_duration(seconds) == text


def test_best_metric_formatting():
    assert fmt.format_metric("acc", 0.9512) == "95.1%"
    assert fmt.format_metric("acc", 0.974) == "97.4%"
    assert fmt.format_metric("acc", 1.0) == "100%"
    assert fmt.format_metric("rmse", 0.123456) == "0.1235"
    assert fmt.format_metric("loss", 0.973712) == "0.9737"
    assert fmt.format_metric(None, None) == "—"
    assert fmt.metric_name("acc") == "accuracy"


def test_metric_keys_lists_what_the_run_logged(tmp_path):
    from jobs.store import reader, registry
    from jobs.store.db import connect
    from jobs.store.writer import MetricWriter

    db = connect(tmp_path / "t.db")
    a = registry.create_run(db, spec={}, preset="quick")
    b = registry.create_run(db, spec={}, preset="quick")
    with MetricWriter(tmp_path / "t.db", a) as w:
        for s in range(100):
            w.log(s, {"train/loss": 1.0, "ratio/fc1.weight": 1e-3})
    with MetricWriter(tmp_path / "t.db", b) as w:
        w.log(0, {"lr": 0.1})
    assert reader.keys(db, a) == ["ratio/fc1.weight", "train/loss"]
    assert reader.keys(db, b) == ["lr"]
    assert reader.keys(db, 999) == []


def test_a_running_runs_tiles_follow_its_charts(tmp_path, monkeypatch):
    """Issue 20, §8: while a run trains, Best validation, Epochs and LR cuts come from what the
    charts show (its points and events), not "—" until the summary exists."""
    from jobs.store import registry
    from jobs.store.db import connect, db_path
    from jobs.store.writer import MetricWriter
    from tests.test_app import page

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    rid = registry.create_run(db, spec={"train": {"epochs": 30}}, preset="auto", name="live")
    registry.claim_run(db, rid, worker="w", device="cpu")
    with MetricWriter(db_path(), rid) as w:
        for step, acc in ((10, 0.80), (20, 0.99), (30, 0.95)):
            w.log(step, {"val/acc": acc, "val/loss": 1 - acc})
        w.event(25, "lr_cut", "cut", {"old_lr": 0.1, "new_lr": 0.05})
    row = views.run_detail(db, rid)["row"]
    assert (row["best"], row["live_epochs"], row["live_cuts"]) == ("99%", 3, 1)
    metrics = {m.label: m.value for m in page("run_detail", run_id=rid).metric}
    assert metrics["Epochs"] == "3 / 30" and metrics["LR cuts"] == "1"
    assert metrics["Best validation accuracy"] == "99%"


def test_compare_shows_balanced_accuracy_macro_f1_and_the_best_baseline():
    run = {
        "id": 7,
        "status": "finished",
        "summary": {
            "metric": "acc",
            "test_metric": 0.61,
            "test_balanced_accuracy": 0.4123,
            "test_macro_f1": 0.38791,
            "baselines": {"linear": {"test_metric": 0.7}, "gbm": {"test_metric": 0.744}},
        },
    }
    (row,) = views.compare_summary([run])
    assert row["test balanced acc"] == "41.2%" and row["test macro-F1"] == "0.3879"
    assert row["best baseline (same split)"] == "74.4%"
    (old,) = views.compare_summary([{"id": 8, "status": "finished", "summary": {"metric": "rmse"}}])
    assert old["test balanced acc"] == old["best baseline (same split)"] == "—"


def test_many_close_lr_cut_labels_are_thinned_to_three_rows():
    """Issue 20, §8: nine LR cuts late in a run keep their rules, but at most three labels
    share any label-width of the chart, one per row, so they never smear into one line."""
    import pandas as pd

    from app.charts import LABEL_ROWS, LABEL_WIDTH, labelled

    late = pd.DataFrame({"step": [900 + 10 * i for i in range(9)], "label": ["LR"] * 9})
    early = pd.DataFrame({"step": [100, 400, 700], "label": ["a", "b", "c"]})
    shown = labelled(pd.concat([early, late], ignore_index=True), 1000)
    assert list(shown["step"][:3]) == [100, 400, 700]  # far apart: all labelled
    steps = list(shown["step"])
    for s in steps:
        assert sum(1 for t in steps if 0 <= s - t < LABEL_WIDTH * 1000) <= LABEL_ROWS
    rows = list(shown["ypos"])
    assert all(a != b for a, b in zip(rows, rows[1:], strict=False))  # neighbours on other rows
    assert len(shown) < 12


def test_run_detail_can_draw_the_loss_on_a_log_axis(tmp_path, monkeypatch):
    """Issue 20, §8: a loss that starts at 500,000 flattens the rest of the curve on a linear
    axis; Run detail's toggle draws the loss panel on a log axis (real run, real store)."""
    import json

    from app import charts
    from jobs.datasets import ingest as datasets
    from jobs.store.db import connect
    from tests.test_app import FAST, _train, page

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    rid = _train(db, datasets.register_builtin(db, "builtin:breast-cancer"), "quick", FAST, "x")
    data = charts.run_chart_data(db, rid, spec={}, cache=charts.RunCache(rid), smoothing=0.6)

    def scales(fig) -> set[str]:
        return set(re.findall(r'"type": "(log|linear)"', json.dumps(fig.to_dict())))

    assert "log" not in scales(charts.run_charts(data)["loss"])
    assert "log" in scales(charts.run_charts(data, log_loss=True)["loss"])
    at = page("run_detail", run_id=rid)
    at.checkbox(key="log_loss").check().run()
    assert not at.exception
