"""The fault suite: real Redis, real workers, real SQLite, real faults.

Each test injects one fault into a running run and checks that (1) the run ends in a truthful
state, (2) the dashboard's read model says so, and (3) every metric point committed before the
fault is still there afterwards. Results feed docs/reliability.md (tests/reliability.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.vocab import TERMINAL
from jobs.runs import views
from jobs.runs.submit import submit
from jobs.store import registry
from tests.disk_helpers import fill_to_the_last_byte, small_disk, unmount
from tests.queue_helpers import (
    TINY,
    RedisServer,
    free_port,
    redis_available,
    redis_url_from_env,
    wait_for,
)
from tests.reliability import record_fault
from tests.test_queue import QueueEnv

pytestmark = pytest.mark.redis


def committed(db, run_id: int) -> set[tuple[str, int]]:
    """(key, step) of every metric point stored for the run."""
    rows = db.execute(
        "SELECT k.name, m.step FROM metrics m JOIN metric_keys k ON k.id = m.key_id WHERE m.run_id = ?",
        [run_id],
    ).fetchall()
    return {(k, s) for k, s in rows}


# Every step of a run under test sleeps this long (the engine's slow-device fault hook), so the
# run outlasts the fault injected into it however fast the machine is: a run of 10 epochs on all
# of digits (9 steps each: 60% of its rows train) lasts at least 6 s. Without it, a quiet machine finished runs first.
SLOW_STEPS = {"TRAINBOARD_FAULT_STEP_DELAY_S": "0.07"}


def no_duplicate_steps(db, run_id: int) -> bool:
    row = db.execute(
        "SELECT COUNT(*), COUNT(DISTINCT key_id || ':' || step) FROM metrics WHERE run_id = ?",
        [run_id],
    ).fetchone()
    return row[0] == row[1]


def ui_status(db, run_id: int) -> dict:
    """What the Runs page and the run page show (the same read model the pages render)."""
    rows, _ = views.run_rows(db)
    return next(r for r in rows if r["id"] == run_id)


@pytest.fixture
def redis_env(tmp_path, monkeypatch):
    url = redis_url_from_env()
    if not redis_available(url):
        pytest.skip(f"no Redis at {url}")
    env = QueueEnv(tmp_path, monkeypatch, url)
    env.env.update(SLOW_STEPS)
    yield env
    env.close()


def _submit(
    env: QueueEnv, epochs: int, preset: str = "quick", dataset: str = "builtin:digits", **extra
) -> int:
    # All of digits (not TINY's 400 rows), so an epoch lasts long enough for a fault to land
    # mid-run; every step logged, so each fault has hundreds of committed points to account for.
    overrides = {
        **TINY,
        "data.max_rows": None,
        "train.epochs": epochs,
        "train.log_every": 1,
        "train.ratio_every": 5,
        **extra,
    }
    res = submit(preset, dataset, overrides=overrides, db=env.db)
    assert res.sent, res.note
    return res.run_id


def _wait_points(env: QueueEnv, run_id: int, n_epochs: int) -> set[tuple[str, int]]:
    wait_for(
        lambda: len(env.steps(run_id, "val/loss")) >= n_epochs,
        120,
        f"{n_epochs} epochs of run {run_id}",
    )
    return committed(env.db, run_id)


def _epochs_complete(env: QueueEnv, run_id: int, epochs: int) -> bool:
    """One validation point per epoch, at multiples of the steps per epoch: none missing, none twice."""
    steps = env.steps(run_id, "val/loss")
    return bool(steps) and steps == [steps[0] * e for e in range(1, epochs + 1)]


def _still_running(env: QueueEnv, run_id: int) -> None:
    """The fault must land mid-run, or the test proves nothing."""
    assert env.run(run_id)["status"] == "running", "the run ended before the fault; make it longer"


def _wait_or_dump(env: QueueEnv, cond, timeout: float, what: str):
    try:
        return wait_for(cond, timeout, what)
    except BaseException:
        for w in env.workers:
            print(f"--- {w.name} log ---\n{w.log()[-4000:]}")
        raise


def test_redis_restarted_mid_run(tmp_path, monkeypatch):
    server = RedisServer(tmp_path)
    server.start()
    env = QueueEnv(tmp_path, monkeypatch, server.url)
    env.env.update(SLOW_STEPS)
    try:
        env.start_worker()
        run_id = _submit(env, epochs=10)
        before = _wait_points(env, run_id, 2)
        _still_running(env, run_id)
        server.stop()  # Redis goes away (and comes back empty: no persistence on this one)
        time.sleep(3)
        server.start()
        run = env.wait_status(run_id, TERMINAL, timeout=180)
        after = committed(env.db, run_id)
        lost = len(before - after)
        record_fault(
            "Redis stopped 3 s mid-run, restarted empty",
            final_status=run["status"],
            survived=run["status"] == "finished" and lost == 0,
            points_checked=len(before),
            points_lost=lost,
            note=f"attempt {run['attempt']}; metrics go to SQLite, not Redis",
        )
        assert run["status"] == "finished", run["error"]
        assert lost == 0 and no_duplicate_steps(env.db, run_id)
        assert _epochs_complete(env, run_id, 10)
        assert ui_status(env.db, run_id)["status"] == "finished"
    finally:
        env.close()
        server.stop()


def test_worker_sigkilled_mid_run(redis_env):
    env = redis_env
    first = env.start_worker("w1@faults")
    run_id = _submit(env, epochs=10)
    _wait_points(env, run_id, 2)
    first.sigkill()
    _still_running(env, run_id)  # nobody has noticed yet
    time.sleep(0.5)
    before = committed(env.db, run_id)  # what was committed when the process died
    env.start_worker("w2@faults")
    _wait_or_dump(
        env, lambda: env.run(run_id)["attempt"] >= 2, 60, "the reaper to requeue the lost run"
    )
    run = env.wait_status(run_id, TERMINAL, timeout=180)
    after = committed(env.db, run_id)
    lost = len(before - after)
    record_fault(
        "worker SIGKILLed mid-run",
        final_status=f"lost → resumed → {run['status']}",
        survived=run["status"] == "finished" and lost == 0,
        points_checked=len(before),
        points_lost=lost,
        note=f"attempt {run['attempt']}, resumed from the epoch checkpoint",
    )
    assert run["status"] == "finished" and run["attempt"] == 2, run["error"]
    assert lost == 0 and no_duplicate_steps(env.db, run_id)
    assert _epochs_complete(env, run_id, 10)
    kinds = [e["kind"] for e in registry_events(env, run_id)]
    assert "resumed" in kinds
    assert ui_status(env.db, run_id)["status"] == "finished"


def registry_events(env, run_id):
    from jobs.store.reader import events

    return events(env.db, run_id)


def test_worker_out_of_memory(redis_env, monkeypatch):
    env = redis_env
    oom_step = 40
    env.env["TRAINBOARD_FAULT_OOM_AT_STEP"] = str(
        oom_step
    )  # the engine's fault hook: a real torch.OutOfMemoryError
    env.start_worker("w-oom@faults")
    run_id = _submit(env, epochs=10)
    run = env.wait_status(run_id, TERMINAL, timeout=120)
    stored = committed(env.db, run_id)
    per_epoch = env.steps(run_id, "val/loss")[0]
    # everything logged before the fault: every train/loss step and every finished epoch
    expected = {("train/loss", s) for s in range(1, oom_step)}
    expected |= {
        ("val/loss", per_epoch * e) for e in range(1, oom_step) if per_epoch * e < oom_step
    }
    lost = len(expected - stored)
    record_fault(
        f"out of memory at step {oom_step} (engine fault hook)",
        final_status=run["status"],
        survived=run["status"] == "failed"
        and "out of memory" in (run["error"] or "")
        and lost == 0,
        points_checked=len(expected),
        points_lost=lost,
        note="failed with: " + (run["error"] or "")[:90],
    )
    assert run["status"] == "failed"
    assert "out of memory" in run["error"] and "train.batch_size" in run["error"]
    assert lost == 0, "what was logged before the fault keeps its metrics"
    assert "oom" in [e["kind"] for e in registry_events(env, run_id)]
    assert ui_status(env.db, run_id)["status"] == "failed"


def test_run_that_diverges(redis_env):
    env = redis_env
    env.start_worker("w-div@faults")
    run_id = _submit(
        env,
        epochs=10,
        preset="sutskever",
        dataset="builtin:diabetes",
        **{
            "optim.lr": 10.0,
            "data.standardize": False,
            "train.log_every": 1,
            "data.max_rows": None,
        },
    )
    run = env.wait_status(run_id, TERMINAL, timeout=120)
    stored = committed(env.db, run_id)
    record_fault(
        "run diverges (LR 10 on raw inputs)",
        final_status=run["status"],
        survived=run["status"] == "diverged",
        points_checked=len(stored),
        points_lost=0,
        note=(run["error"] or "")[:100],
    )
    assert run["status"] == "diverged"
    assert "learning rate" in run["error"]
    assert "diverged" in [e["kind"] for e in registry_events(env, run_id)]
    assert ui_status(env.db, run_id)["status"] == "diverged"


def test_disk_full_while_writing_metrics(tmp_path, monkeypatch):
    """The whole data directory (database, checkpoints, run logs) lives on a 16 MB filesystem;
    mid-run a file fills it to the last byte for 4 s (an operator then frees it). The metric
    writer keeps the points in memory and retries; the epoch checkpoints that meet the full disk
    are reported and skipped; the run finishes with every point and its trained model."""
    url = redis_url_from_env()
    if not redis_available(url):
        pytest.skip(f"no Redis at {url}")
    small = small_disk(tmp_path / "small", "16m")
    try:
        home = small / "home"
        home.mkdir()
        env = QueueEnv(tmp_path, monkeypatch, url)
        env.env["TRAINBOARD_HOME"] = str(home)
        env.env.update(SLOW_STEPS)
        monkeypatch.setenv("TRAINBOARD_HOME", str(home))
        from jobs.store.db import connect

        env.db = connect()
        try:
            env.start_worker("w-disk@faults")
            run_id = _submit(env, epochs=12, **{"train.log_every": 1, "train.ratio_every": 1})
            before = _wait_points(env, run_id, 2)
            _still_running(env, run_id)
            filler = small / "filler"
            assert fill_to_the_last_byte(filler) > 0
            full_at = time.monotonic()
            time.sleep(4)
            during = committed(env.db, run_id)
            filler.unlink()
            freed_after = time.monotonic() - full_at
            run = env.wait_status(run_id, TERMINAL, timeout=180)
            after = committed(env.db, run_id)
            lost = len(before - after)
            skipped = sum(e["kind"] == "checkpoint_failed" for e in registry_events(env, run_id))
            model = home / "runs" / str(run_id) / "model.pt"
            record_fault(
                f"disk full for {freed_after:.0f} s under the whole data directory (16 MB tmpfs)",
                final_status=run["status"],
                survived=run["status"] == "finished" and lost == 0 and model.exists(),
                points_checked=len(before),
                points_lost=lost,
                note=f"{len(after) - len(during)} points were held in memory and written once space returned; "
                f"{skipped} checkpoint(s) skipped",
            )
            assert run["status"] == "finished", run["error"]
            assert model.exists(), "the trained model was written once space returned"
            assert lost == 0 and no_duplicate_steps(env.db, run_id)
            assert _epochs_complete(env, run_id, 12), "no gap in the series"
        finally:
            env.close()
    finally:
        unmount(small)


def test_app_restarted_while_a_run_is_going(tmp_path):
    """`trainboard up` (dashboard + worker, embedded broker) is stopped with Ctrl-C mid-run and
    started again: the run is handed back, resumes from its checkpoint and finishes."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    env.update(
        {
            "TRAINBOARD_HOME": str(home),
            "TRAINBOARD_HEARTBEAT_S": "0.5",
            "TRAINBOARD_STALE_AFTER_S": "3",
            "TRAINBOARD_REAP_INTERVAL_S": "1",
            "TRAINBOARD_RESEND_AFTER_S": "3",
            "TRAINBOARD_CANCEL_POLL_S": "0.2",
            **SLOW_STEPS,
        }
    )

    def up(log: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "up", "--port", str(free_port()), "--no-browser"],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    epochs = 20
    log = tmp_path / "up.log"
    first = up(log)
    try:
        sub = subprocess.run(
            [
                sys.executable,
                "-m",
                "jobs.cli",
                "submit",
                "--preset",
                "quick",
                "--dataset",
                "builtin:digits",
                *sum(
                    (
                        ["--set", f"{k}={v}"]
                        for k, v in {
                            **TINY,
                            "data.max_rows": None,
                            "train.epochs": epochs,
                            "train.log_every": 1,
                        }.items()
                    ),
                    [],
                ),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sub.returncode == 0, sub.stdout + sub.stderr
        from jobs.store.db import connect

        os.environ["TRAINBOARD_HOME"] = str(home)
        try:
            db = connect(home / "trainboard.db")
            run_id = registry.list_runs(db)[0]["id"]

            def val_steps():
                return sorted(s for k, s in committed(db, run_id) if k == "val/loss")

            wait_for(lambda: len(val_steps()) >= 2, 180, "two epochs under the first `up`")
            stop(first)
            before = committed(db, run_id)
            status_between = registry.get_run(db, run_id)["status"]
            assert status_between not in TERMINAL, (
                "the run ended before the restart; make it longer"
            )
            second = up(log)
            try:
                run = wait_for(
                    lambda: (r := registry.get_run(db, run_id))["status"] in TERMINAL and r,
                    240,
                    "the run to finish after the restart",
                )
            finally:
                stop(second)
            after = committed(db, run_id)
            lost = len(before - after)
            record_fault(
                "app (`trainboard up`) stopped with Ctrl-C mid-run and restarted",
                final_status=f"{status_between} → {run['status']}",
                survived=run["status"] == "finished" and lost == 0,
                points_checked=len(before),
                points_lost=lost,
                note=f"handed back on Ctrl-C, resumed from its checkpoint; attempt {run['attempt']}",
            )
            assert run["status"] == "finished", run["error"]
            assert lost == 0 and no_duplicate_steps(db, run_id)
            steps = val_steps()  # one point per epoch, at multiples of the steps per epoch
            assert steps and steps == [steps[0] * e for e in range(1, epochs + 1)]
            assert ui_status(db, run_id)["status"] == "finished"
            # Ctrl-C is a clean shutdown: the run was handed back, not lost, and kept its attempt.
            from jobs.store.reader import events

            kinds = [e["kind"] for e in events(db, run_id)]
            assert "released" in kinds and "resumed" in kinds
            assert run["attempt"] == 1
        finally:
            os.environ.pop("TRAINBOARD_HOME", None)
    finally:
        stop(first)
        print(log.read_text()[-3000:])
