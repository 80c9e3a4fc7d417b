"""Sweeps without workers: the ASHA rule, the search space's door, the controller's steps on a
real store and a real Optuna study (runs finished in the store as a worker would), the hours
saved, the CLI's refusals."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from jobs.store import registry
from jobs.store import sweeps as store
from jobs.store.db import connect
from jobs.sweeps import asha, controller, study, views
from jobs.sweeps.space import Dim, parse_dim, parse_space
from tests.sweep_helpers import SPACE, finish_in_flight, play

T = asha.TrialAtRungs


@pytest.mark.parametrize(
    "r, eta, top, expected",
    [(1, 3, 9, (1, 3, 9)), (1, 3, 3, (1, 3)), (1, 2, 10, (1, 2, 4, 8, 10)), (5, 3, 5, (5,))],
)
def test_rungs_grow_by_eta_up_to_the_whole_budget(r, eta, top, expected):
    assert asha.rungs(r, eta, top) == expected


def test_no_promotion_until_a_rung_holds_eta_trials():
    ladder = (1, 3, 9)
    two = [T(0, True, {1: 0.9}), T(1, True, {1: 0.5})]
    assert asha.promotion(two, ladder, 3, maximize=True) is None
    three = [*two, T(2, True, {1: 0.7})]
    assert asha.promotion(three, ladder, 3, maximize=True) == (0, 3)
    # lower is better (RMSE): the smallest goes on
    assert asha.promotion(three, ladder, 3, maximize=False) == (1, 3)


def test_a_promoted_or_running_trial_is_not_promoted_again_and_higher_rungs_come_first():
    ladder = (1, 3, 9)
    trials = [
        T(0, False, {1: 0.9, 3: 0.95}),  # promoted to 3, running to 9
        T(1, True, {1: 0.8}),
        T(2, True, {1: 0.1}),
        T(3, True, {1: 0.2}),
        T(4, True, {1: 0.3}),
        T(5, True, {1: 0.4}),
    ]
    # 6 at rung 1: the top 2 are 0 (running on) and 1 (paused): 1 goes on
    assert asha.promotion(trials, ladder, 3, maximize=True) == (1, 3)
    trials[1] = T(1, True, {1: 0.8, 3: 0.99})  # 1 paused at 3 now; 3 holds two: nobody yet
    trials.append(T(6, True, {1: 0.05, 3: 0.5}))  # three at rung 3: the best (1) goes to 9
    assert asha.promotion(trials, ladder, 3, maximize=True) == (1, 9)
    # a trial that is over (its run stopped early at rung 1) is the best there but stays over
    over = [T(0, False, {1: 0.99}), T(1, True, {1: 0.5}), T(2, True, {1: 0.4})]
    assert asha.promotion(over, ladder, 3, maximize=True) is None


def test_a_nan_score_is_never_promoted():
    nan = float("nan")
    trials = [
        T(0, True, {1: nan}),
        T(1, True, {1: 0.1}),
        T(2, True, {1: 0.2}),
        T(3, True, {1: 0.3}),
    ]
    assert asha.promotion(trials, (1, 3), 3, maximize=True) == (3, 3)


@pytest.mark.parametrize(
    "text, kind, log",
    [
        ("optim.lr=log:1e-4:1", "float", True),
        ("model.dropout=0:0.5", "float", False),
        ("train.batch_size=int:16:256", "int", False),
        ("train.batch_size=int:log:16:256", "int", True),
        ("optim.name=choice:sgd,adam", "choice", False),
    ],
)
def test_a_dimension_parses_to_its_kind(text, kind, log):
    d = parse_dim(text)
    assert (d.kind, d.log) == (kind, log)
    assert parse_dim(d.text()) == d


@pytest.mark.parametrize(
    "lines, code",
    [
        (["optim.lr=log:0:1"], "sweep.space_log"),
        (["optim.lr=1:0.1"], "sweep.space_range"),
        (["optim.lr=a:b"], "sweep.space_syntax"),
        (["optim.lr"], "sweep.space_syntax"),
        (["train.batch_size=int:1.5:8"], "sweep.space_syntax"),
        (["optim.lr=nan:1"], "sweep.space_syntax"),
        (["train.epochs=int:1:9"], "sweep.space_budget"),
        (["data.dataset=choice:a,b"], "guard.data_locked"),
        (["Data.Dataset=0:1"], "guard.data_locked"),
        (["nope.field=0:1"], "guard.unknown_setting"),
        (["optim.lr=0:1", "optim.lr=0:2"], "sweep.space_twice"),
        ([], "sweep.space_empty"),
        ([f"optim.lr={'1' * 300}:2"], "sweep.space_long"),
        (["optim.name=choice:" + ",".join(map(str, range(40)))], "sweep.space_choices"),
        (["model.dropout=0:0.5"] * 9, "sweep.space_size"),
    ],
)
def test_the_space_takes_only_config_fields_a_member_may_set(lines, code):
    with pytest.raises(ConfigError) as e:
        parse_space(lines)
    assert e.value.code == code and "space" in e.value.fields


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    return connect()


def _sweep(db, **kw):
    args = {
        "space": SPACE,
        "trials": 9,
        "parallel": 3,
        "min_epochs": 1,
        "eta": 3,
        "max_epochs": 9,
        "overrides": {"train.preflight": False},
        "db": db,
    }
    return controller.create_sweep("sutskever", "builtin:breast-cancer", **{**args, **kw})


def test_a_sweep_validates_every_corner_as_a_run_and_refuses_before_queueing(db, monkeypatch):
    with pytest.raises(ConfigError) as e:  # a value the config refuses, at one end of the space
        _sweep(db, space=["model.dropout=0:1.5"])
    assert "model.dropout" in e.value.fields
    with pytest.raises(ConfigError) as e:  # more epochs than the server allows a run
        monkeypatch.setenv("TRAINBOARD_MAX_EPOCHS", "5")
        _sweep(db)
    assert "train.epochs" in e.value.fields
    monkeypatch.delenv("TRAINBOARD_MAX_EPOCHS")
    monkeypatch.setenv("TRAINBOARD_MAX_QUEUED_PER_USER", "2")
    with pytest.raises(ConfigError) as e:  # more in flight than the owner may queue
        _sweep(db, parallel=3)
    assert e.value.code == "sweep.parallel_quota"
    monkeypatch.delenv("TRAINBOARD_MAX_QUEUED_PER_USER")
    for bad, field in (
        ({"trials": 0}, "trials"),
        ({"eta": 1}, "rungs"),
        ({"parallel": 0}, "parallel"),
    ):
        with pytest.raises(ConfigError) as e:
            _sweep(db, **bad)
        assert field in e.value.fields
    with pytest.raises(ConfigError) as e:  # a typed name goes through the one normaliser
        _sweep(db, name="x" * 5000)
    assert "name" in e.value.fields
    assert store.list_sweeps(db) == [] and registry.list_runs(db) == []


def test_a_sweep_pauses_the_trials_behind_and_promotes_the_best_by_resuming_them(db):
    sweep_id = _sweep(db)
    first = store.trials(db, sweep_id)
    assert [t["state"] for t in first] == ["running"] * 3  # up to the parallel limit
    runs = [registry.get_run(db, t["run_id"]) for t in first]
    assert all(r["spec"]["train"]["epochs"] == 1 and r["status"] == "queued" for r in runs)
    assert all(r["group_id"] == f"sweep-{sweep_id}" for r in runs)
    finish_in_flight(db, sweep_id)
    controller.step(db, sweep_id)
    trials = store.trials(db, sweep_id)
    # three scored at 1 epoch: the best goes on to 3 under the same run id, the two others wait
    promoted = [t for t in trials if t["rung"] == 3]
    assert len(promoted) == 1 and promoted[0]["run_status"] == "queued"
    paused = [t for t in trials if t["state"] == "paused"]
    assert len(paused) == 2
    for t in paused:
        kinds = [e["kind"] for e in db["events"].rows_where("run_id = ?", [t["run_id"]])]
        assert kinds == ["sweep_paused"]
    run = registry.get_run(db, promoted[0]["run_id"])
    assert run["spec"]["train"]["epochs"] == 3 and run["summary"] is None
    play(db, sweep_id)
    trials = store.trials(db, sweep_id)
    assert len(trials) == 9
    states = sorted(t["state"] for t in trials)
    assert states.count("complete") >= 1 and "running" not in states and "paused" not in states
    told = {t.number: t.state.name for t in study.open_study(sweep_id, "maximize").trials}
    assert {told[t["number"]] for t in trials if t["state"] == "pruned"} == {"PRUNED"}
    assert {told[t["number"]] for t in trials if t["state"] == "complete"} == {"COMPLETE"}
    report = views.sweep_report(db, sweep_id)
    # every pruned trial left 9 − its epochs untrained, at 0.5 s an epoch
    untrained = sum(9 - t["epochs"] for t in trials if t["state"] == "pruned")
    assert report["saved"]["epochs_saved"] == untrained > 0
    assert report["saved"]["seconds_saved"] == pytest.approx(0.5 * untrained)
    axes = {a["axis"]: a for a in report["axes"]}
    assert axes["optim.lr"]["log"] and not axes["model.dropout"]["log"]
    assert all(0 <= p["norm"] <= 1 for p in report["points"])


def test_a_failed_trial_is_told_fail_and_the_sweep_goes_on(db):
    sweep_id = _sweep(db, trials=4, parallel=2)
    t0 = store.trials(db, sweep_id)[0]
    registry.claim_run(db, t0["run_id"], worker="test", device="cpu")
    registry.fail_run(db, t0["run_id"], "the run's process was killed by SIGKILL")
    # a run that diverged after scoring an epoch: failed too, never paused or promoted
    t1 = store.trials(db, sweep_id)[1]
    registry.claim_run(db, t1["run_id"], worker="test", device="cpu")
    summary = {"best_val_metric": 0.99, "epochs": 1, "stop_reason": "nonfinite_loss"}
    registry.diverge_run(db, t1["run_id"], "loss became NaN", summary=summary)
    controller.step(db, sweep_id)
    trials = store.trials(db, sweep_id)
    assert [t["state"] for t in trials[:2]] == ["failed", "failed"]
    assert len(trials) == 4  # new trials took their slots
    play(db, sweep_id)
    assert store.get_sweep(db, sweep_id)["status"] == "finished"
    told = {t.number: t.state.name for t in study.open_study(sweep_id, "maximize").trials}
    assert told[0] == told[1] == "FAIL" and len(told) == 4


def test_a_paused_sweep_queues_nothing_and_a_cancelled_one_stops_its_trials(db):
    sweep_id = _sweep(db, trials=6, parallel=2)
    controller.pause(db, sweep_id)
    finish_in_flight(db, sweep_id)
    controller.step(db, sweep_id)
    trials = store.trials(db, sweep_id)
    assert len(trials) == 2 and {t["state"] for t in trials} == {"paused"}
    with pytest.raises(ConfigError) as e:
        controller.pause(db, sweep_id)
    assert e.value.code == "sweep.cannot_pause"
    controller.resume(db, sweep_id)
    trials = store.trials(db, sweep_id)
    assert sum(t["state"] == "running" for t in trials) == 2
    controller.cancel(db, sweep_id)
    trials = store.trials(db, sweep_id)
    assert {t["run_status"] for t in trials if t["state"] == "cancelled"} == {"cancelled"}
    assert "running" not in {t["state"] for t in trials}
    assert store.get_sweep(db, sweep_id)["status"] == "cancelled"


def test_a_controller_that_died_between_ask_and_record_leaves_no_trial_running(db):
    sweep_id = _sweep(db, trials=3, parallel=1)
    the_study = study.open_study(sweep_id, "maximize")
    dims = [Dim.from_dict(d) for d in store.get_sweep(db, sweep_id)["spec"]["space"]]
    orphan, _ = study.ask(the_study, dims)  # asked, then the process died before recording it
    controller.step(db, sweep_id)
    told = {t.number: t.state.name for t in study.open_study(sweep_id, "maximize").trials}
    assert told[orphan] == "FAIL"


def test_the_sweep_cli_refuses_a_bad_space_and_queues_a_good_one(db, capsys):
    from jobs.cli import main

    rc = main(["sweep", "--dataset", "builtin:breast-cancer", "--space", "data.dataset=0:1"])
    assert rc == 2 and "error:" in capsys.readouterr().err
    rc = main(
        [
            "sweep",
            "--dataset",
            "builtin:breast-cancer",
            "--preset",
            "sutskever",
            "--space",
            "optim.lr=log:1e-3:1",
            "--trials",
            "3",
            "--parallel",
            "1",
            "--epochs",
            "3",
            "--set",
            "train.preflight=false",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "sweep 1 created: 3 trials, rungs at 1, 3 epochs" in out
    assert main(["sweeps", "1", "--pause"]) == 0
    assert "sweep 1 (paused)" in capsys.readouterr().out
    assert main(["sweeps", "1", "--pause"]) == 2


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_over_a_live_one_is_not(db):
    import socket

    sweep_id = _sweep(db, trials=3, parallel=1)
    host = socket.gethostname()
    assert store.take_lease(db, sweep_id, f"{host}:1:7", 600)  # pid 1 lives: no takeover
    assert controller.step(db, sweep_id) is False
    store.drop_lease(db, sweep_id, f"{host}:1:7")
    dead = f"{host}:{2**22 + 12345}:7"  # beyond any pid this host hands out
    assert store.take_lease(db, sweep_id, dead, 600)
    assert controller.step(db, sweep_id) is True
    assert store.get_sweep(db, sweep_id)["lease_by"] is None


def test_a_members_sweep_counts_against_their_queued_runs_and_waits_for_a_slot(db, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_QUEUED_PER_USER", "2")
    from jobs.runs.submit import submit

    submit(
        "sutskever",
        "builtin:breast-cancer",
        overrides={"train.preflight": False},
        owner="alice",
        db=db,
    )
    sweep_id = _sweep(db, trials=4, parallel=2, owner="alice")
    trials = store.trials(db, sweep_id)
    assert len(trials) == 1  # her own run holds the other slot: the sweep waits, says why
    assert "alice" in store.get_sweep(db, sweep_id)["note"]["text"]
    finish_in_flight(db, sweep_id)
    controller.step(db, sweep_id)
    assert len(store.trials(db, sweep_id)) == 2  # a slot came free: the next trial


def test_only_the_owner_or_an_admin_controls_a_sweep(db):
    from jobs import service

    sweep_id = _sweep(db, trials=2, parallel=1, owner="alice")
    with pytest.raises(service.Refused):
        service.control_sweep(db, sweep_id, "cancel", {"name": "bob", "is_admin": 0})
    assert store.get_sweep(db, sweep_id)["status"] == "running"
    service.control_sweep(db, sweep_id, "pause", {"name": "alice", "is_admin": 0})
    service.control_sweep(db, sweep_id, "cancel", {"name": "root", "is_admin": 1})
    assert store.get_sweep(db, sweep_id)["status"] == "cancelled"


def test_time_saved_counts_the_epoch_loop_not_the_segments_start_up():
    """A trial's rate is its run's loop seconds over the epochs it trained there (start-up,
    pre-flight and scoring made short rungs look slow); a run from before those fields keeps
    its seconds over its epochs."""
    trials = [
        {
            "number": 0,
            "state": "paused",
            "epochs": 1,
            "seconds": 3.0,
            "run_summary": {"loop_epochs": 1, "loop_seconds": 0.5},
        },
        {
            "number": 1,
            "state": "complete",
            "epochs": 3,
            "seconds": 5.0,
            "run_summary": {"loop_epochs": 2, "loop_seconds": 1.2},
        },
        {"number": 2, "state": "pruned", "epochs": 1, "seconds": 2.0, "run_summary": None},
    ]
    saved = views.saved_by_pruning(trials, top=3)
    assert saved["epochs_saved"] == 4
    assert saved["seconds_saved"] == pytest.approx(2 * 0.5 + 2 * 2.0)
    assert saved["seconds_per_epoch"] == pytest.approx((0.5 + 0.6 + 2.0) / 3)
    assert saved["seconds_trained"] == pytest.approx(10.0)
