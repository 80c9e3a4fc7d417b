"""Issue 20, §3 and §8 on the pages: the test split's scores beyond the run's metric on Runs
and Compare (balanced accuracy, macro-F1, each class's recall; MAE and R² for a regression),
and a running run's time left on Run detail. Runs are recorded in a real SQLite home with the
summaries the engine writes (``engine.train``: ``class_scores``, ``regression_scores``)."""

from __future__ import annotations

import time

import pytest

from jobs.runs import views
from jobs.store import registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter
from tests.test_app import page

CLASSIFIER = {
    "metric": "acc",
    "best_val_metric": 0.9,
    "test_metric": 0.8,
    "test_balanced_accuracy": 0.6123,
    "test_macro_f1": 0.55561,
    "per_class": [
        {"class": "cat", "precision": 0.9, "recall": 0.95, "f1": 0.92, "support": 40},
        {"class": "dog", "precision": 0.5, "recall": 0.2738, "f1": 0.35, "support": 10},
        {"class": "emu", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    ],
}
REGRESSION = {
    "metric": "rmse",
    "best_val_metric": 3.0,
    "test_metric": 3.25,
    "test_mae": 2.4567,
    "test_r2": 0.81234,
}


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """A finished classifier and a finished regression."""
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    ids = {}
    for name, summary in (("clf", CLASSIFIER), ("reg", REGRESSION)):
        rid = registry.create_run(db, spec={"train": {"epochs": 5}}, preset="auto", name=name)
        registry.claim_run(db, rid, worker="w", device="cpu")
        registry.finish_run(db, rid, summary)
        ids[name] = rid
    return ids


def _cells(table, column: str) -> dict[str, str]:
    return dict(zip(table["name"], table[column], strict=True))


def test_runs_shows_balanced_accuracy_macro_f1_mae_and_r2_where_a_run_has_them(scored):
    table = page("runs").dataframe[0].value
    assert _cells(table, "test_balanced") == {"clf": "61.2%", "reg": "—"}
    assert _cells(table, "test_f1") == {"clf": "0.5556", "reg": "—"}
    assert _cells(table, "test_mae") == {"clf": "—", "reg": "2.457"}
    assert _cells(table, "test_r2") == {"clf": "—", "reg": "0.8123"}
    assert _cells(table, "test") == {"clf": "80%", "reg": "3.25"}  # RMSE, the run's metric


def test_runs_leaves_out_a_score_no_run_on_the_page_has(scored):
    registry.delete_run(connect(), scored["reg"])
    columns = set(page("runs").dataframe[0].value.columns)
    assert {"test_balanced", "test_f1"} <= columns
    assert not {"test_mae", "test_r2"} & columns


def test_compare_shows_the_worst_class_and_each_classs_recall(scored):
    at = page("compare", compare_ids=[scored["clf"], scored["reg"]])
    outcome = at.dataframe[0].value
    by_run = dict(zip(outcome["name"], outcome.to_dict("records"), strict=True))
    # the class found least among those with test rows (emu has none)
    assert by_run["clf"]["worst class (test recall)"] == "dog 27.4%"
    assert by_run["reg"]["worst class (test recall)"] == "—"
    assert (by_run["reg"]["test MAE"], by_run["reg"]["test R²"]) == ("2.457", "0.8123")
    assert by_run["clf"]["test balanced acc"] == "61.2%"
    per_class = at.dataframe[1].value  # in the "Recall of each class" expander
    assert list(per_class.columns) == ["class", f"run {scored['clf']}"]  # classifiers only
    assert dict(zip(per_class["class"], per_class[f"run {scored['clf']}"], strict=True)) == {
        "cat": "95%",
        "dog": "27.4%",
        "emu": "—",
    }


def test_per_class_recall_is_empty_without_classifiers():
    assert views.per_class_recall([{"id": 1, "summary": REGRESSION}]) == []


# --- time left (issue 20, §8) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps_done", "expect"),
    [(0, None), (19, None), (20, 350.0), (50, 140.0)],
)
def test_eta_waits_for_two_epochs_then_follows_the_pace(steps_done, expect):
    """10 steps an epoch, 100 s so far, 70 steps to go: 20 steps in 100 s → 350 s left."""
    got = views.eta_seconds(
        elapsed_s=100.0, steps_done=steps_done, steps_left=70, steps_per_epoch=10
    )
    assert got == (None if expect is None else pytest.approx(expect))


def _running(db, *, epochs_done: int, began_s_ago: float, spec: dict, resumed_at: int = 0):
    """A running run of 10 steps an epoch that has trained ``epochs_done`` epochs, started
    (or resumed at step ``resumed_at``) ``began_s_ago`` seconds ago."""
    rid = registry.create_run(db, spec=spec, preset="auto", name="training")
    registry.claim_run(db, rid, worker="w", device="cpu")
    with MetricWriter(db_path(), rid) as w:
        w.event(0, "run_start", "start", {"steps_per_epoch": 10})
        if resumed_at:
            w.event(
                resumed_at, "resumed", "resumed", {"epoch": resumed_at // 10, "step": resumed_at}
            )
        for epoch in range(1, epochs_done + 1):
            w.log(epoch * 10 - 5, {"train/loss": 1.0 / epoch})
            w.log(epoch * 10, {"val/acc": 0.5 + epoch / 100, "val/loss": 1.0 / epoch})
    # the start happened in the past: a clock the test sets, not one it waits for
    db.execute(
        "UPDATE events SET created_at = ? WHERE run_id = ? AND kind IN ('run_start', 'resumed')",
        [time.time() - began_s_ago, rid],
    )
    db.conn.commit()
    return rid


def _tiles(rid: int) -> dict[str, str]:
    return {m.label: m.value for m in page("run_detail", run_id=rid).metric}


def test_run_detail_shows_time_left_while_a_run_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    # 3 of 10 epochs in 3,086 s: 70 steps to go at 30 steps a 3,086 s = 7,200 s (2 h; the
    # few seconds the test takes stay within that minute)
    fixed = {"train": {"epochs": 10, "early_stop_patience": None}, "schedule": {"enabled": False}}
    tiles = _tiles(_running(db, epochs_done=3, began_s_ago=3086, spec=fixed))
    assert tiles["Time left"] == "2 h 00 min" and tiles["Epochs"] == "3 / 10"
    assert "Test (held out)" not in tiles  # scored at the end; the ETA stands in for it
    # one epoch is too little to go by
    assert _tiles(_running(db, epochs_done=1, began_s_ago=60, spec=fixed))["Time left"] == (
        "estimating…"
    )


def test_time_left_is_an_upper_bound_when_the_run_may_stop_early(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    floor = {"train": {"epochs": 10, "early_stop_patience": None}, "schedule": {"lr_floor": 1e-4}}
    rid = _running(db, epochs_done=3, began_s_ago=3086, spec=floor)
    at = page("run_detail", run_id=rid)
    (tile,) = [m for m in at.metric if m.label == "Time left"]
    assert tile.value == "≤ 2 h 00 min" and "LR floor" in tile.proto.help


def test_time_left_after_a_resume_counts_from_the_resume(tmp_path, monkeypatch):
    """Resumed at epoch 5 (step 50) 4,800 s ago and now at epoch 7: 2 epochs in 4,800 s,
    3 to go → 7,200 s (2 h), not the pace of all 7 epochs since the first start."""
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    fixed = {"train": {"epochs": 10, "early_stop_patience": None}, "schedule": {"enabled": False}}
    rid = _running(db, epochs_done=7, began_s_ago=4800, spec=fixed, resumed_at=50)
    assert _tiles(rid)["Time left"] == "2 h 00 min"
