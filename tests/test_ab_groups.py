"""A/B groups over paired seeds (issue 23 §2), without a worker: queueing a group (validation,
quota, seeds, arms, names), migration 6's arm column, the read model that judges a group, the
``trainboard ab`` command, and the Compare page's report under ``AppTest``.

Runs are recorded through the real submit path into a real SQLite file (the embedded broker
just writes a file); their outcomes are then written through the registry's own transitions
(claim → finish with a summary) and the real ``MetricWriter``: what a worker would have stored,
without spending minutes training. tests/test_ab_worker.py trains them for real."""

from __future__ import annotations

import sqlite3

import pytest

from engine.errors import ConfigError
from jobs import service
from jobs.cli import main as cli_main
from jobs.datasets import ingest as datasets
from jobs.runs import submit
from jobs.store import db as jdb
from jobs.store import registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter
from tests.test_app import assert_clean, charts_of, page, texts

# Arm A's and arm B's held-out accuracy per seed: B clearly worse (T2 off), and the same for
# identical arms. Best validation a point above each.
WORSE = ([0.93, 0.95, 0.92, 0.96, 0.94], [0.63, 0.65, 0.61, 0.66, 0.62])
SAME = ([0.93, 0.95, 0.92, 0.96, 0.94], [0.93, 0.95, 0.92, 0.96, 0.94])


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    db = connect()
    ds = datasets.register_builtin(db, "builtin:breast-cancer")
    return {"db": db, "dataset": ds, "tmp": tmp_path}


def _finish(db, run_id: int, test: float, *, metric: str = "acc", curve: float = 0.0) -> None:
    """Store the outcome a worker would: claimed, a val/loss curve, finished with a summary."""
    registry.claim_run(db, run_id, worker="w@test", device="cpu")
    with MetricWriter(db_path(), run_id) as w:
        for step in range(0, 50, 10):
            w.log(step, {"val/loss": 1.0 / (1 + step) + curve})
    summary = {"metric": metric, "test_metric": test, "best_val_metric": test + 0.01}
    registry.finish_run(db, run_id, summary)


def _group(home, scores, **kw) -> submit.AbGroup:
    g = service.queue_ab_group(
        home["db"], "quick", home["dataset"], {}, owner="local", seeds=len(scores[0]), **kw
    )
    for (_seed, a, b), sa, sb in zip(g.pairs, *scores, strict=True):
        _finish(home["db"], a, sa)
        _finish(home["db"], b, sb, curve=0.5)
    return g


# --- queueing a group -------------------------------------------------------------------------


def test_a_group_runs_each_seed_in_both_arms_in_one_group_seed_by_seed(home):
    db = home["db"]
    g = service.queue_ab_group(
        db, "quick", home["dataset"], {"train.seed": 7}, owner="local", tip="T2"
    )
    assert [seed for seed, _a, _b in g.pairs] == [7, 8, 9, 10, 11]  # 5 by default
    runs = [registry.get_run(db, i) for i in g.run_ids]
    assert [r["id"] for r in runs] == sorted(r["id"] for r in runs)  # A, B, A, B, ...
    assert {r["group_id"] for r in runs} == {g.group_id}
    for seed, a, b in g.pairs:
        ra, rb = registry.get_run(db, a), registry.get_run(db, b)
        assert (ra["ab_arm"], rb["ab_arm"]) == ("A", "B")
        # the same seed (split, order, init) in both arms; only T2 differs
        assert ra["spec"]["train"]["seed"] == rb["spec"]["train"]["seed"] == seed
        assert ra["spec"]["data"]["standardize"] is True
        assert rb["spec"]["data"]["standardize"] is False
        assert ra["name"] == f"A/B T2 on · seed {seed}"
        assert rb["name"] == f"A/B T2 off · seed {seed}"
        assert ra["status"] == rb["status"] == "queued"


def test_a_change_of_any_setting_is_arm_b(home):
    g = service.queue_ab_group(
        home["db"], "quick", home["dataset"], {}, owner="local", change={"optim.lr": 0.01}, seeds=2
    )
    a, b = (registry.get_run(home["db"], i) for i in g.pairs[0][1:])
    assert b["spec"]["optim"]["lr"] == 0.01 and a["spec"]["optim"]["lr"] != 0.01
    assert b["name"] == "A/B optim.lr=0.01: B · seed 0"


@pytest.mark.parametrize("seeds", [0, 11, -1, True, 2.5])
def test_a_number_of_seeds_outside_1_to_10_is_refused_and_nothing_queued(home, seeds):
    with pytest.raises(ConfigError) as e:
        service.queue_ab_group(
            home["db"], "quick", home["dataset"], {}, owner="x", tip="T2", seeds=seeds
        )
    assert "from 1 to 10" in str(e.value.fields["seeds"])
    assert registry.count_runs(home["db"]) == 0


def test_the_seed_cannot_be_the_change_and_an_unknown_tip_is_named(home):
    db, ds = home["db"], home["dataset"]
    with pytest.raises(ConfigError) as e:
        service.queue_ab_group(db, "quick", ds, {}, owner="x", change={"train.seed": 3})
    assert "train.seed" in e.value.fields
    with pytest.raises(ConfigError) as e:
        service.queue_ab_group(db, "quick", ds, {}, owner="x", tip="T99")
    assert "T2" in str(e.value.fields["tip"])  # the allowed tips are listed
    assert registry.count_runs(db) == 0


def test_a_group_is_queued_whole_or_not_at_all(home, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_QUEUED_PER_USER", "9")
    with pytest.raises(ConfigError) as e:  # 5 seeds x 2 arms = 10 > 9
        service.queue_ab_group(home["db"], "quick", home["dataset"], {}, owner="x", tip="T2")
    assert "queue" in e.value.fields
    # an invalid setting in either arm: nothing queued either
    with pytest.raises(ConfigError):
        service.queue_ab_group(
            home["db"], "quick", home["dataset"], {}, owner="x", change={"optim.lr": -1}
        )
    assert registry.count_runs(home["db"]) == 0


def test_a_one_seed_pair_keeps_its_old_names(home):
    a, b, group = service.queue_ab_pair(home["db"], "quick", home["dataset"], "T2", {}, owner="x")
    assert registry.get_run(home["db"], a)["name"] == "A/B T2 on"
    assert registry.get_run(home["db"], b)["ab_arm"] == "B"


def test_migration_6_gives_pairs_queued_before_it_their_arms(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.close()
    import sqlite_utils

    db = sqlite_utils.Database(path)
    for _version, _name, fn in jdb.MIGRATIONS[:5]:
        fn(db)
    for name, group in (("A/B T7 on", "ab-1"), ("A/B T7 off", "ab-1"), ("mine on", None)):
        db["runs"].insert(
            {"name": name, "group_id": group, "spec": "{}", "status": "queued", "created_at": 0}
        )
    fn6 = dict((v, fn) for v, _n, fn in jdb.MIGRATIONS)[6]
    fn6(db)
    arms = [r["ab_arm"] for r in db.query("SELECT ab_arm FROM runs ORDER BY id")]
    assert arms == ["A", "B", None]


# --- the read model ---------------------------------------------------------------------------


def test_a_worse_arm_b_gives_a_is_better_on_test_and_validation(home):
    g = _group(home, WORSE, tip="T2")
    r = service.ab_report(home["db"], g.group_id)
    test = r["scores"]["test"]
    assert test["verdict"].decision == "a_better"
    assert test["diff"].high < 0  # the CI of B − A excludes 0
    assert test["a"].n == test["b"].n == 5
    assert r["scores"]["best_val"]["verdict"].decision == "a_better"
    assert [c["setting"] for c in r["change"]] == ["data.log1p", "data.standardize"]
    assert r["tip"] == "T2" and r["active"] == 0


def test_identical_arms_give_no_difference_shown(home):
    g = _group(home, SAME, change={"optim.lr": 0.05})
    r = service.ab_report(home["db"], g.group_id)
    assert r["scores"]["test"]["verdict"].decision == "no_difference"
    assert "no difference shown" in str(r["scores"]["test"]["verdict"].message)


def test_a_failed_run_drops_its_seed_pair_and_a_late_run_in_the_group_is_no_arm(home):
    db = home["db"]
    g = service.queue_ab_group(db, "quick", home["dataset"], {}, owner="x", tip="T2", seeds=3)
    (s0, a0, b0), (s1, a1, b1), (s2, a2, b2) = g.pairs
    for run, score in ((a0, 0.9), (b0, 0.6), (a1, 0.92), (a2, 0.91), (b2, 0.62)):
        _finish(db, run, score)
    registry.claim_run(db, b1, worker="w", device="cpu")
    # a run that failed late may have a summary; its scores are still not the arm's
    registry.fail_run(db, b1, "boom", {"metric": "acc", "test_metric": 0.99})
    service.queue_with_change(db, a0, {"optim.lr": 0.2}, owner="x")  # joins the group
    r = service.ab_report(db, g.group_id)
    assert r["scores"]["test"]["diff"].n == 2  # seeds 0 and 2
    assert r["scores"]["test"]["a"].n == 3
    assert r["runs"] == 6


def test_bands_have_each_arms_n_and_mean_curve(home):
    g = _group(home, WORSE, tip="T2")
    bands = service.ab_bands(home["db"], g.group_id, "val/loss")
    assert bands["A"]["n"] == bands["B"]["n"] == 5
    first = bands["B"]["rows"][0]
    assert first["step"] == 0 and first["n"] == 5
    assert first["mean"] == pytest.approx(1.5)  # 1/(1+0) + 0.5 on every seed
    assert "val/loss" in service.ab_metric_keys(home["db"], g.group_id)
    assert service.ab_groups(home["db"])[0]["group_id"] == g.group_id


# --- the command line -------------------------------------------------------------------------


def test_the_ab_command_queues_a_group_and_refuses_bad_seeds(home, capsys):
    code = cli_main(
        [
            "ab",
            "--dataset",
            "builtin:breast-cancer",
            "--preset",
            "quick",
            "--tip",
            "T2",
            "--seeds",
            "3",
            "--both",
            "train.epochs=2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    group = service.ab_groups(home["db"])[0]
    assert group["runs"] == 6 and group["group_id"] in out
    runs = registry.list_runs(home["db"], group_id=group["group_id"])
    assert {r["spec"]["train"]["epochs"] for r in runs} == {2}
    assert (
        cli_main(["ab", "--dataset", "builtin:breast-cancer", "--tip", "T2", "--seeds", "11"]) == 2
    )
    assert "from 1 to 10" in capsys.readouterr().err
    code = cli_main(
        [
            "ab",
            "--dataset",
            "builtin:breast-cancer",
            "--preset",
            "quick",
            "--set",
            "optim.lr=0.01",
            "--seeds",
            "2",
        ]
    )
    assert code == 0
    assert registry.count_runs(home["db"]) == 10


# --- the Compare page -------------------------------------------------------------------------


def test_compare_shows_an_ab_groups_verdict_tables_and_banded_curves(home):
    g = _group(home, WORSE, tip="T2")
    at = page("compare", compare_group=g.group_id)
    assert_clean(at)
    shown = texts(at)
    assert "Verdict on the held-out test accuracy: A is better by 30.6 points" in shown
    assert "B differs from A in: data.log1p: auto → off; data.standardize: True → False" in shown
    frames = [d.value for d in at.dataframe]
    arms = frames[0]
    assert list(arms["N"]) == [5, 5, 5, 5]
    assert "A is better" in " ".join(frames[1]["verdict"])
    # the differences are numbers (points), not text a CSV export would escape ("'-30.6")
    diff = frames[1]
    assert diff["B − A"][0] == pytest.approx(-30.6) and diff["CI high"][0] < 0
    (chart,) = charts_of(at)
    arms = {row["arm"] for row in chart["rows"]}
    assert arms == {"A: T2 on (N=5)", "B: T2 off (N=5)"}  # N in the legend
    assert {"low", "high", "mean"} <= set(chart["rows"][0])  # the per-step band


def test_compare_says_no_difference_for_identical_arms_in_chinese(home):
    g = _group(home, SAME, change={"optim.lr": 0.05})
    at = page("compare", locale="zh-CN", compare_group=g.group_id)
    assert_clean(at)
    assert "未显示出差异" in texts(at)


def test_new_run_queues_five_seeds_by_default_and_compare_opens_the_group(home):
    at = page("new_run", new_run_dataset=home["dataset"]["id"])
    assert at.number_input(key="nr_ab_seeds").value == 5
    at.selectbox(key="nr_auto_abtip").set_value("T2")
    next(b for b in at.button if b.label == "A/B one tip").click()
    at.run()
    assert_clean(at)
    assert "Queued an A/B group over 5 seeds: 10 runs" in texts(at)
    group = at.session_state["compare_group"]
    runs = registry.list_runs(home["db"], group_id=group)
    assert len(runs) == 10 and {r["ab_arm"] for r in runs} == {"A", "B"}
    at.switch_page("screens/compare.py")
    at.run()
    assert_clean(at)
    assert "not enough to judge: 0 seed pair(s) finished" in texts(at)
    assert "10 of 10 runs are still queued or running" in texts(at)


def test_compare_judges_a_regression_by_lower_rmse(home):
    db = home["db"]
    g = service.queue_ab_group(
        db, "quick", home["dataset"], {}, owner="x", change={"optim.lr": 0.01}, seeds=4
    )
    for (_seed, a, b), ra, rb in zip(
        g.pairs, [50.0, 52, 49, 51], [45.0, 47.5, 44, 46], strict=True
    ):
        _finish(db, a, ra, metric="rmse")
        _finish(db, b, rb, metric="rmse")
    at = page("compare", compare_group=g.group_id)
    assert_clean(at)
    shown = texts(at)
    assert "Verdict on the held-out test RMSE: B is better: RMSE lower by 4.88" in shown
    diff = [d.value for d in at.dataframe][1]
    assert diff["B − A"][0] == pytest.approx(-4.875)  # in RMSE's own units, not points
