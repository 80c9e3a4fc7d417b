"""The Sweeps page under AppTest on a real store and a real Optuna study (a 12-trial sweep
played to its end by tests/sweep_helpers.py), and in a real browser: the trial table, the
parallel-coordinates chart (log axis, top-k% filter), importance, hours saved, the controls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobs import service
from jobs.store import registry
from jobs.store import sweeps as store
from jobs.store.db import connect
from jobs.sweeps import controller
from tests.sweep_helpers import SPACE, finish_in_flight, play
from tests.test_app import assert_clean, charts_of, page, texts


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("home")
    old = os.environ.get("TRAINBOARD_HOME")
    os.environ["TRAINBOARD_HOME"] = str(path)
    broker = os.environ.pop("TRAINBOARD_BROKER_URL", None)
    try:
        db = connect()
        done = controller.create_sweep(
            "sutskever",
            "builtin:breast-cancer",
            space=SPACE,
            trials=12,
            parallel=3,
            max_epochs=3,
            overrides={"train.preflight": False},
            name="lr and dropout",
            db=db,
        )
        play(db, done)
        live = controller.create_sweep(
            "sutskever",
            "builtin:breast-cancer",
            space=SPACE,
            trials=4,
            parallel=2,
            max_epochs=3,
            overrides={"train.preflight": False},
            name="still running",
            db=db,
        )
        yield {"path": path, "done": done, "live": live}
    finally:
        if old is None:
            os.environ.pop("TRAINBOARD_HOME", None)
        else:
            os.environ["TRAINBOARD_HOME"] = old
        if broker is not None:
            os.environ["TRAINBOARD_BROKER_URL"] = broker


def _parallel(at) -> dict:
    """The parallel-coordinates chart, its rows the trials' points (not the axes' end labels)."""
    (chart,) = [c for c in charts_of(at) if "Parallel" in str(c.get("title", ""))]
    return {**chart, "rows": [r for r in chart["rows"] if "trial" in r]}


def test_the_sweeps_page_shows_trials_parallel_coordinates_importance_and_hours_saved(home):
    at = page("sweeps", sweep_pick=home["done"])
    page_text = texts(at)
    assert "Status: finished" in page_text and "Trials: 12 / 12" in page_text
    assert "GPU-hours saved by pruning" in page_text
    chart = _parallel(at)
    rows = chart["rows"]
    assert {r["axis"] for r in rows} == {"optim.lr (log)", "model.dropout", "acc"}
    assert {r["trial"] for r in rows} == set(range(12))
    assert all(0 <= r["norm"] <= 1 for r in rows)
    # the log axis: lr = 1e-2 sits in the middle of 1e-4 … 1 (normalised in log space)
    trials = {t["number"]: t for t in store.trials(connect(), home["done"])}
    for r in rows:
        if r["axis"] == "optim.lr (log)":
            import math

            lr = trials[r["trial"]]["params"]["optim.lr"]
            assert r["norm"] == pytest.approx((math.log10(lr) + 4) / 4)
    table = at.dataframe[0].value
    assert len(table) == 12 and {"optim.lr", "model.dropout", "acc"} <= set(table.columns)
    assert "Hyperparameter importance" in page_text
    imp = [c for c in charts_of(at) if c.get("mark", {}) in ("bar", {"type": "bar"})]
    assert imp and {r["setting"] for r in imp[0]["rows"]} == {"optim.lr", "model.dropout"}


def test_the_top_k_filter_keeps_the_best_trials(home):
    at = page("sweeps", sweep_pick=home["done"])
    at.slider(key="sweep_top").set_value(25).run()
    assert_clean(at)
    rows = _parallel(at)["rows"]
    kept = {r["trial"] for r in rows}
    assert len(kept) == 3
    scores = {t["number"]: t["value"] for t in store.trials(connect(), home["done"])}
    assert min(scores[t] for t in kept) >= sorted(scores.values())[-3]


def test_a_running_sweep_can_be_paused_resumed_and_cancelled_from_the_page(home):
    db = connect()
    at = page("sweeps", sweep_pick=home["live"])
    next(b for b in at.button if b.label == "Pause").click()
    at.run()
    assert_clean(at)
    assert store.get_sweep(db, home["live"])["status"] == "paused"
    next(b for b in at.button if b.label == "Resume").click()
    at.run()
    assert store.get_sweep(db, home["live"])["status"] == "running"
    next(b for b in at.button if b.label == "Cancel sweep").click()
    at.run()
    assert_clean(at)
    assert store.get_sweep(db, home["live"])["status"] == "cancelled"


def test_the_sweeps_page_reads_in_chinese(home):
    from tests.test_i18n import _leaks, _shown

    at = page("sweeps", locale="zh-CN", sweep_pick=home["done"])
    assert _leaks(_shown(at)) == [], "English on the Sweeps page in 中文"
    assert any("剪枝" in m.label for m in at.metric)
    assert at.subheader[0].value == "平行坐标图"


def test_the_new_sweep_form_refuses_a_bad_space_with_its_reason(home):
    at = page("sweeps", sweep_pick=home["done"])
    at.text_area[0].set_value("data.dataset=0:1")
    next(b for b in at.button if b.label == "Start sweep").click()
    at.run()
    assert_clean(at)
    assert at.error and "dataset" in at.error[0].value


@pytest.mark.browser
def test_a_real_browser_opens_the_sweeps_page_and_sees_the_parallel_coordinates(
    tmp_path, monkeypatch
):
    from tests.queue_helpers import dashboard_server
    from tests.test_upload_guard import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import expect, sync_playwright

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    monkeypatch.delenv("TRAINBOARD_TEAM", raising=False)
    db = connect()
    sweep_id = controller.create_sweep(
        "sutskever",
        "builtin:breast-cancer",
        space=SPACE,
        trials=6,
        parallel=3,
        max_epochs=3,
        overrides={"train.preflight": False},
        name="browser sweep",
        db=db,
    )
    play(db, sweep_id)
    with dashboard_server(tmp_path / "dashboard.log", {}) as (port, _proc), sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 2000}, locale="en-US")
            page.goto(f"http://127.0.0.1:{port}/sweeps")
            expect(page.get_by_role("heading", name="Sweeps").first).to_be_visible(timeout=60_000)
            chart = page.locator("[data-testid='stVegaLiteChart']").first
            expect(chart).to_contain_text("Parallel coordinates", timeout=60_000)
            # the axes as drawn (SVG text): the log axis is marked, the score has its own
            expect(chart.locator("text", has_text="optim.lr (log)").first).to_be_visible()
            expect(chart.locator("text", has_text="model.dropout").first).to_be_visible()
            expect(page.get_by_test_id("stMain")).to_contain_text("GPU-hours saved by pruning")
            shot = Path(__file__).resolve().parents[1] / "artifacts" / "e2e-en-sweeps.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()


def test_a_trial_waiting_at_a_rung_reads_paused_not_finished_on_every_page(home):
    """Its run finished at the rung (the store says so), but it may go on: Runs, Run detail,
    Compare and Home say "paused at a rung (sweep N)", in each language, and Run detail says
    what happens next."""
    db = connect()
    sid = controller.create_sweep(
        "sutskever",
        "builtin:breast-cancer",
        space=SPACE,
        trials=4,
        parallel=4,
        max_epochs=3,
        overrides={"train.preflight": False},
        name="waits at a rung",
        db=db,
    )
    finish_in_flight(db, sid)
    controller.step(db, sid)
    waiting = [t for t in store.trials(db, sid) if t["state"] == "paused"]
    assert waiting, "the test needs a trial paused at a rung"
    trial = waiting[0]
    rid = trial["run_id"]
    assert registry.get_run(db, rid)["status"] == "finished"
    rows, _total = service.run_rows(db, limit=200)
    assert next(r for r in rows if r["id"] == rid)["sweep_paused"] == {
        "sweep": sid,
        "epochs": trial["epochs"],
    }
    assert all(
        r["sweep_paused"] is None for r in rows if r["id"] not in {t["run_id"] for t in waiting}
    ), "only the waiting trials' runs read paused"
    word = f"paused at a rung (sweep {sid})"
    runs = page("runs")
    table = runs.dataframe[0].value
    assert list(table.loc[table["id"] == rid, "status"]) == [word]
    detail = page("run_detail", run_id=rid)
    assert word in texts(detail)
    assert f"Sweep {sid} paused this trial at a rung, after {trial['epochs']} epochs" in texts(
        detail
    )
    badges = "\n".join(m.value for m in detail.markdown)
    assert f":orange-badge[{word}]" in badges and "-badge[finished]" not in badges
    other = next(r["id"] for r in rows if r["id"] != rid)
    compare = page("compare", compare_ids=[rid, other])
    outcome = next(d.value for d in compare.dataframe if "status" in d.value.columns)
    assert list(outcome.loc[outcome["run"] == f"run {rid}", "status"]) == [word]
    home_badges = "\n".join(m.value for m in page("home").markdown)  # its recent runs
    assert f":orange-badge[{word}]" in home_badges
    zh = page("runs", locale="zh-TW").dataframe[0].value
    assert list(zh.loc[zh["id"] == rid, "status"]) == [f"在某一檔暫停（搜尋 {sid}）"]
