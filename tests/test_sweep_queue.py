"""A sweep through the real queue: two Celery worker processes, Redis, the real engine.

12 trials on 400 digits with ASHA at 1 and 3 epochs (η = 3): trials behind at 1 epoch are
paused there (their run finishes at the rung, checkpoint kept) and the best third go on from
their checkpoint under the same run id. One trial is made to fail (400 digits cut to 10 rows
leaves classes with a single row: the run fails on the worker); the sweep goes on. A worker
is killed in the middle of a trial: the reaper requeues its run as it does any lost run, and
another worker resumes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobs.store import registry
from jobs.store import sweeps as store
from jobs.store.db import connect
from jobs.sweeps import controller, study, views
from tests.queue_helpers import (
    FAST_ENV,
    Worker,
    queue_prefix,
    redis_available,
    redis_url_from_env,
    wait_for,
)

SPACE = [
    "optim.lr=log:1e-3:3e-1",
    "model.dropout=0:0.5",
    "data.max_rows=int:10:400",
]
BASE = {"train.preflight": False, "train.overfit_one_batch": False, "train.baselines": False}


@pytest.fixture
def sweep_env(tmp_path, monkeypatch):
    env = {"TRAINBOARD_HOME": str(tmp_path / "home"), **FAST_ENV}
    url = redis_url_from_env()
    if redis_available(url):
        env |= {"TRAINBOARD_BROKER_URL": url, "TRAINBOARD_QUEUE_PREFIX": queue_prefix()}
    else:  # the embedded filesystem broker: the same worker code, one machine
        monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
        monkeypatch.delenv("TRAINBOARD_QUEUE_PREFIX", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    workers: list[Worker] = []

    def start(name: str, **extra: str) -> Worker:
        w = Worker({**os.environ, **env, **extra}, tmp_path / f"{name}.log", name)
        workers.append(w)
        return w

    yield Path(env["TRAINBOARD_HOME"]), start
    for w in workers:
        w.stop()


def _events(db, run_id: int) -> list[dict]:
    return [dict(r) for r in db["events"].rows_where("run_id = ?", [run_id], order_by="id")]


def test_a_12_trial_asha_sweep_on_two_workers_pauses_resumes_and_survives_a_failed_trial(
    sweep_env,
):
    home, start = sweep_env
    db = connect()
    sweep_id = controller.create_sweep(
        "quick",
        "builtin:digits",
        space=SPACE,
        trials=12,
        parallel=2,
        min_epochs=1,
        eta=3,
        max_epochs=3,
        overrides={**BASE, "data.max_rows": 400},
        db=db,
    )
    sweep = store.get_sweep(db, sweep_id)
    assert sweep["spec"]["rungs"] == [1, 3] and sweep["direction"] == "maximize"
    assert len(store.trials(db, sweep_id)) == 2  # queued at once, up to the parallel limit
    # The next trial Optuna hands out is one that must fail on the worker: 10 rows of digits.
    study.open_study(sweep_id, "maximize").enqueue_trial(
        {"optim.lr": 0.01, "model.dropout": 0.1, "data.max_rows": 10}
    )
    # w1 trains slowly (each step 0.3 s longer), so it can be killed in the middle of a trial
    w1 = start("w1@sweep", TRAINBOARD_FAULT_STEP_DELAY_S="0.3")
    w2 = start("w2@sweep")
    w1.wait_ready()
    w2.wait_ready()

    def on_w1():
        """A trial w1 is training, but never the one made to fail: killed, it would fail on
        the next worker too (a run of 10 rows), which is not what this part is about. Under
        load its short "running" spell was caught once, and the test read a failure."""
        for r in registry.list_runs(db, status=["running"]):
            trial = store.trial_of_run(db, r["id"]) if r["worker"] == "w1@sweep" else None
            if trial is not None and json.loads(trial["params"])["data.max_rows"] != 10:
                return r["id"]
        return None

    killed = wait_for(on_w1, 120, "w1 to run a trial")
    w1.sigkill()  # the worker and its run's process: the run is lost, as in a crash
    w3 = start("w3@sweep")
    w3.wait_ready()

    def over():
        return store.get_sweep(db, sweep_id)["status"] == "finished"

    try:
        wait_for(over, 240, "the sweep to finish", interval=0.5)
    except BaseException:
        for w in (w1, w2, w3):
            print(f"--- {w.name} ---\n{w.log()[-5000:]}")
        for t in store.trials(db, sweep_id):
            print(t["number"], t["state"], t["run_status"], t["rung_values"], t["run_error"])
        raise

    trials = store.trials(db, sweep_id)
    assert len(trials) == 12
    states = [t["state"] for t in trials]
    by_number = {t["number"]: t for t in trials}
    # the enqueued trial failed on a worker, was recorded as failed, and the sweep went on
    assert by_number[2]["params"]["data.max_rows"] == 10
    assert by_number[2]["state"] == "failed" and by_number[2]["run_status"] == "failed"
    assert "single row" in (by_number[2]["run_error"] or "")
    # ASHA: the best third of the trials scored at 1 epoch went on to 3; the others were paused
    scored_at_1 = [t for t in trials if 1 in t["rung_values"]]
    promoted = [t for t in trials if 3 in t["rung_values"]]
    # (asynchronous: a trial promoted early may later fall out of the top third)
    assert len(promoted) >= max(len(scored_at_1) // 3, 1)
    assert states.count("pruned") == len(scored_at_1) - len(promoted)
    assert all(t["state"] == "complete" and t["epochs"] == 3 for t in promoted)

    paused = [t for t in trials if t["state"] == "pruned"]
    for t in paused:  # the pause is on the run's timeline; it never trained past the rung
        kinds = [e["kind"] for e in _events(db, t["run_id"])]
        assert "sweep_paused" in kinds and "resumed" not in kinds
        assert registry.get_run(db, t["run_id"])["summary"]["epochs"] == 1
    resumed = 0
    for t in promoted:
        events = _events(db, t["run_id"])
        kinds = [e["kind"] for e in events]
        if "sweep_paused" in kinds:  # it waited at the rung before it was promoted
            resumed += 1
            assert kinds.index("sweep_paused") < kinds.index("sweep_promoted")
        # resumed from its 1-epoch checkpoint under the same id: not restarted
        (res,) = [e for e in events if e["kind"] == "resumed"]
        assert json.loads(res["data"])["epoch"] == 1
        assert kinds.count("run_start") <= 1
    assert paused and resumed >= 1, states

    # the killed worker's trial was requeued by the reaper as any run is, and went on
    # (its attempt count is no witness: a promotion reopens the run with fresh attempts)
    assert f"run {killed} lost (worker w1@sweep stopped heartbeating)" in w2.log() + w3.log()
    run = registry.get_run(db, killed)
    assert run["status"] == "finished" and run["worker"] in ("w2@sweep", "w3@sweep"), (
        run["status"],
        run["worker"],
        run["error"],
    )
    (trial,) = [t for t in trials if t["run_id"] == killed]
    assert trial["state"] in ("complete", "pruned")

    saved = views.sweep_report(db, sweep_id)["saved"]
    print(
        f"pruning saved {saved['epochs_saved']} epochs, {saved['seconds_saved']:.1f} s "
        f"({saved['seconds_per_epoch']:.2f} s an epoch measured); trials trained "
        f"{saved['seconds_trained']:.1f} s"
    )
    assert saved["epochs_saved"] == 2 * len(paused) and saved["seconds_saved"] > 0

    # Optuna's view of it: complete, pruned and failed trials, the rung values as reports
    the_study = study.open_study(sweep_id, "maximize")
    told = {t.number: t.state.name for t in the_study.trials}
    assert told[2] == "FAIL"
    assert sorted(n for n, s in told.items() if s == "COMPLETE") == sorted(
        t["number"] for t in promoted
    )
    assert all(told[t["number"]] == "PRUNED" for t in paused)
