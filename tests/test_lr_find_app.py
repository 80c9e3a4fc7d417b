"""New run's "Find a learning rate" (issue 23 §1) under AppTest, on a real store: the button
queues the range test as a run; a finished test shows its plot (log LR axis, the orders' band,
the three rules) and verdict, and "Use this LR" fills the form's LR, marked with T5."""

from __future__ import annotations

import os

import pytest

from app import lr_find_view
from engine.lr_find import RangeCurve, judge, lr_schedule
from jobs.datasets import ingest as datasets
from jobs.store import registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter
from tests.test_app import assert_clean, charts_of, page, texts


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("home")
    old = os.environ.get("TRAINBOARD_HOME")
    os.environ["TRAINBOARD_HOME"] = str(path)
    try:
        db = connect()
        ds = datasets.register_builtin(db, "builtin:breast-cancer")
        yield {"path": path, "dataset": ds, "tested": _tested(db, ds)}
    finally:
        if old is None:
            os.environ.pop("TRAINBOARD_HOME", None)
        else:
            os.environ["TRAINBOARD_HOME"] = old


def _tested(db, ds: dict) -> int:
    """A range test run in this process by the real engine, stored as a worker stores it."""
    from engine.config import resolve_config
    from engine.lr_find import run_lr_find

    cfg = resolve_config("sutskever", dataset=ds["path"], target=ds["target"])
    spec = {**cfg.to_dict(), "lr_find": True}
    run_id = registry.create_run(db, spec=spec, preset="sutskever", dataset_id=ds["id"])
    registry.claim_run(db, run_id, worker="test", device="cpu")
    with MetricWriter(db_path(), run_id) as sink:
        result = run_lr_find(spec, sink=sink)
    registry.finish_run(db, run_id, result.summary)
    return run_id


def _stored(db, ds: dict, found) -> int:
    run_id = registry.create_run(db, spec={}, preset="sutskever", dataset_id=ds["id"])
    registry.claim_run(db, run_id, worker="test", device="cpu")
    registry.finish_run(db, run_id, {"lr_find": found.to_dict(), "suggested_lr": found.lr})
    return run_id


def _new_run(home, **state):
    return page("new_run", new_run_dataset=home["dataset"]["id"], **state)


def _button(at, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def test_find_a_learning_rate_queues_the_range_test_of_the_form(home):
    db = connect()
    at = _new_run(home)
    at.radio(key="nr_preset").set_value("sutskever").run()
    at.number_input(key="nr_sutskever_epochs").set_value(5)
    _button(at, "Find a learning rate").click()
    at.run()
    assert_clean(at)
    run = registry.list_runs(db, limit=1)[0]
    assert run["status"] == "queued" and run["spec"]["lr_find"] is True
    assert run["preset"] == "sutskever" and run["spec"]["train"]["epochs"] == 5
    assert at.session_state[lr_find_view.RUN_KEY] == run["id"]
    page_text = texts(at)
    assert f"Queued the learning-rate range test: run {run['id']}" in page_text
    assert "The range test is queued" in page_text
    assert not charts_of(at)


def test_a_finished_test_shows_its_plot_and_use_this_lr_fills_the_form(home):
    at = _new_run(home, **{lr_find_view.RUN_KEY: home["tested"]})
    at.radio(key="nr_preset").set_value("sutskever").run()
    assert_clean(at)
    run = registry.get_run(connect(), home["tested"])
    lr = run["summary"]["suggested_lr"]
    assert lr is not None  # sutskever on breast-cancer: the rules agree (docs/engine.md)
    (chart,) = charts_of(at)
    layers = chart["layer"]
    assert layers[0]["encoding"]["x"]["scale"]["type"] == "log"
    assert {"lo", "hi", "mean", "lr"} <= set(chart["rows"][0])
    assert any(str(r.get("rule", "")).startswith("valley") for r in chart["rows"])
    assert f"suggested LR {lr:.3g}" in texts(at)
    _button(at, "Use this LR").click()
    at.run()
    assert_clean(at)
    assert at.number_input(key="nr_sutskever_lr").value == pytest.approx(float(f"{lr:.3g}"))
    assert f"from the range test of run {home['tested']} (tip T5)" in texts(at)


def test_a_test_without_a_reliable_suggestion_says_why_and_offers_no_lr(home):
    lrs = lr_schedule(100)
    never = [1.0 - 0.5 * i / 100 for i in range(100)]  # still falling at LR 10
    found = judge([RangeCurve(k, lrs, never, never, "end") for k in range(3)])
    assert found.lr is None
    run_id = _stored(connect(), home["dataset"], found)
    at = _new_run(home, **{lr_find_view.RUN_KEY: run_id})
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("no reliable suggestion: the loss had not diverged by LR 10")
    assert not [b for b in at.button if b.label.startswith("Use this LR")]


def test_the_plot_and_verdict_read_in_chinese(home):
    at = page(
        "new_run",
        locale="zh-CN",
        new_run_dataset=home["dataset"]["id"],
        **{lr_find_view.RUN_KEY: home["tested"]},
    )
    page_text = texts(at)
    assert "学习率范围测试" in page_text and "建议学习率" in page_text
    assert [b for b in at.button if b.label.startswith("使用这个学习率")]


def test_run_detail_of_a_range_test_shows_its_plot_and_verdict(home):
    at = page("run_detail", run_id=home["tested"])
    assert_clean(at)
    lr = registry.get_run(connect(), home["tested"])["summary"]["suggested_lr"]
    assert f"suggested LR {lr:.3g}" in texts(at)
    assert any(c.get("layer") and "lo" in c["rows"][0] for c in charts_of(at))


def test_a_run_queued_with_the_tests_lr_carries_it_for_the_doctor_and_an_edited_one_does_not(
    home,
):
    db = connect()
    at = _new_run(home, **{lr_find_view.RUN_KEY: home["tested"]})
    at.radio(key="nr_preset").set_value("sutskever").run()
    _button(at, "Use this LR").click()
    at.run()
    lr = at.number_input(key="nr_sutskever_lr").value
    _button(at, "Queue run").click()
    at.run()
    assert_clean(at)
    run = registry.list_runs(db, limit=1)[0]
    assert run["spec"]["optim"]["lr"] == run["spec"]["optim"]["range_test_lr"] == lr
    at.number_input(key="nr_sutskever_lr").set_value(lr * 2)
    _button(at, "Queue run").click()
    at.run()
    edited = registry.list_runs(db, limit=1)[0]
    assert edited["id"] != run["id"] and edited["spec"]["optim"]["range_test_lr"] is None
