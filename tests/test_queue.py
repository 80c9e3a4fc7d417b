"""The queue end to end: real worker processes, the real engine, a real broker.

Every scenario runs twice: against Redis (``redis`` marker; TRAINBOARD_TEST_REDIS_URL) and
against the embedded filesystem broker. Runs are tiny (a few epochs on 400 digits).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.vocab import TERMINAL
from jobs.queue.celery_app import TRAIN_TASK, current_app
from jobs.queue.sends import send_info
from jobs.runs.submit import cancel as cancel_run
from jobs.runs.submit import submit
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import (
    FAST_ENV,
    TINY,
    RedisServer,
    Worker,
    queue_prefix,
    redis_available,
    redis_url_from_env,
    wait_for,
)


class QueueEnv:
    """A data directory and broker settings, shared by this process and the workers it starts."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker_url: str | None):
        self.tmp_path = tmp_path
        self.env = {"TRAINBOARD_HOME": str(tmp_path / "home"), **FAST_ENV}
        if broker_url:
            self.env["TRAINBOARD_BROKER_URL"] = broker_url
            self.env["TRAINBOARD_QUEUE_PREFIX"] = queue_prefix()
        else:
            monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
            monkeypatch.delenv("TRAINBOARD_QUEUE_PREFIX", raising=False)
        for k, v in self.env.items():
            monkeypatch.setenv(k, v)
        self.workers: list[Worker] = []
        self.db = connect()

    @property
    def home(self) -> Path:
        return Path(self.env["TRAINBOARD_HOME"])

    def start_worker(self, name: str = "w1@test") -> Worker:
        w = Worker(
            {**os.environ, **self.env}, self.tmp_path / f"{name}-{len(self.workers)}.log", name
        )
        self.workers.append(w)
        w.wait_ready()
        return w

    def submit(self, epochs: int, **extra) -> int:
        res = submit(
            "quick",
            "builtin:digits",
            overrides={**TINY, "train.epochs": epochs, **extra},
            db=self.db,
        )
        assert res.sent, res.note
        return res.run_id

    def run(self, run_id: int) -> dict:
        return registry.get_run(self.db, run_id)

    def wait_status(self, run_id: int, statuses, timeout: float = 90) -> dict:
        statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)

        def reached():
            r = self.run(run_id)
            return r if r["status"] in statuses else None

        try:
            return wait_for(reached, timeout, f"run {run_id} to become {'/'.join(statuses)}")
        except BaseException:
            for w in self.workers:
                print(f"--- {w.name} log ---\n{w.log()[-4000:]}")
            log = self.home / "runs" / str(run_id) / "runner.log"
            if log.exists():
                print(f"--- runner log ---\n{log.read_text()[-4000:]}")
            raise

    def steps(self, run_id: int, key: str) -> list[int]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT m.step FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
                "WHERE m.run_id = ? AND k.name = ? ORDER BY m.step",
                [run_id, key],
            ).fetchall()
        ]

    def close(self) -> None:
        for w in self.workers:
            w.stop()


@pytest.fixture(params=["redis", "embedded"], ids=["redis", "embedded"])
def qenv(request, tmp_path, monkeypatch):
    broker_url = None
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
        broker_url = redis_url_from_env()
        if not redis_available(broker_url):
            pytest.skip(f"no Redis at {broker_url} (set TRAINBOARD_TEST_REDIS_URL)")
    env = QueueEnv(tmp_path, monkeypatch, broker_url)
    yield env
    env.close()


def test_submitted_run_finishes_with_metrics_and_a_redelivery_does_nothing(qenv):
    worker = qenv.start_worker()
    run_id = qenv.submit(epochs=3)
    run = qenv.wait_status(run_id, TERMINAL)
    assert run["status"] == "finished", run["error"]
    assert run["attempt"] == 1 and run["worker"] == "w1@test"
    steps = qenv.steps(run_id, "val/loss")
    assert steps == [steps[0] * e for e in (1, 2, 3)]  # one point an epoch
    assert (qenv.home / "runs" / str(run_id) / "checkpoint.pt").exists()
    workers = registry.list_workers(qenv.db)
    assert [w["name"] for w in workers] == ["w1@test"] and workers[0]["device"] == "cpu"

    # The broker delivers the same task again (e.g. Redis's visibility timeout): a no-op.
    current_app().send_task(
        TRAIN_TASK, args=[run_id], queue=current_app().trainboard_settings.queue_name("cpu")
    )
    wait_for(lambda: worker.log().count("succeeded") >= 2, 30, "the redelivered task")
    assert "skipped: already finished" in worker.log()
    after = qenv.run(run_id)
    assert (after["status"], after["attempt"], after["finished_at"]) == (
        "finished",
        1,
        run["finished_at"],
    )
    assert qenv.steps(run_id, "val/loss") == steps


def test_cancelling_a_running_run_saves_a_checkpoint_and_stops(qenv):
    qenv.start_worker()
    run_id = qenv.submit(epochs=500)
    ckpt = qenv.home / "runs" / str(run_id) / "checkpoint.pt"
    wait_for(lambda: ckpt.exists(), 90, "the first checkpoint")
    assert cancel_run(run_id, qenv.db) == "running"
    asked = time.monotonic()
    run = qenv.wait_status(run_id, TERMINAL, timeout=30)
    assert run["status"] == "cancelled"
    print(f"cancelled {time.monotonic() - asked:.1f} s after the request")
    assert ckpt.exists()
    assert any(e["kind"] == "cancelled" for e in _events(qenv, run_id))


def test_a_queued_run_is_cancelled_at_once_and_never_runs(qenv):
    # No worker yet: the run waits in the broker, is cancelled, then the worker drops it.
    run_id = qenv.submit(epochs=2)
    assert cancel_run(run_id, qenv.db) == "cancelled"
    worker = qenv.start_worker()
    wait_for(lambda: "skipped: already cancelled" in worker.log(), 30, "the worker to drop it")
    assert qenv.run(run_id)["attempt"] == 0


def test_a_killed_worker_loses_its_run_which_resumes_on_a_new_worker(qenv):
    # All of digits (about ten steps an epoch), each step slowed to at least 50 ms by the engine's
    # slow-device fault hook, so the kill lands mid-run however fast the machine is.
    qenv.env["TRAINBOARD_FAULT_STEP_DELAY_S"] = "0.05"
    first = qenv.start_worker("w1@test")
    run_id = qenv.submit(epochs=12, **{"data.max_rows": None})
    # Kill once a couple of epochs are checkpointed, so there is something to resume from.
    wait_for(lambda: len(qenv.steps(run_id, "val/loss")) >= 2, 90, "two epochs")
    first.sigkill()
    before = qenv.steps(run_id, "val/loss")
    assert qenv.run(run_id)["status"] == "running"  # nobody has noticed yet

    qenv.start_worker("w2@test")
    run = qenv.wait_status(run_id, TERMINAL, timeout=120)
    assert run["status"] == "finished", run["error"]
    assert run["attempt"] == 2 and run["worker"] == "w2@test"
    steps = qenv.steps(run_id, "val/loss")
    # One point per epoch, none twice, none missing: it resumed at the checkpointed epoch.
    assert steps == [steps[0] * e for e in range(1, 13)]
    assert steps[: len(before)] == before
    assert any(e["kind"] == "resumed" for e in _events(qenv, run_id))


def test_a_queued_run_whose_message_was_lost_is_sent_again(qenv, tmp_path):
    run_id = qenv.submit(epochs=2)
    _drop_queued_messages(qenv)
    qenv.start_worker()
    run = qenv.wait_status(run_id, TERMINAL, timeout=90)
    assert run["status"] == "finished", run["error"]
    assert run["attempt"] == 1
    assert send_info(qenv.db, run_id)["sends"] == 2


def _runner_pid(qenv, run_id: int) -> int | None:
    """The process training ``run_id``: a ``jobs.queue.runner`` with its runner.log open."""
    log = (qenv.home / "runs" / str(run_id) / "runner.log").resolve()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"jobs.queue.runner" not in (proc / "cmdline").read_bytes():
                continue
            if any(os.readlink(fd) == str(log) for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def test_a_sigkilled_run_says_what_was_kept_and_resumes_with_more_epochs(qenv):
    """The OOM killer's signal on the run's process: the run ends failed saying which epoch's
    checkpoint was kept and how to resume; `trainboard resume ID --set train.epochs=N` goes on
    from that checkpoint under the same id, and no epoch appears twice or goes missing."""
    import signal

    from jobs.cli import main

    qenv.env["TRAINBOARD_FAULT_STEP_DELAY_S"] = "0.05"
    qenv.start_worker()
    run_id = qenv.submit(epochs=30, **{"data.max_rows": None})
    wait_for(lambda: len(qenv.steps(run_id, "val/loss")) >= 2, 90, "two epochs")
    pid = wait_for(lambda: _runner_pid(qenv, run_id), 10, "the run's process")
    os.kill(pid, signal.SIGKILL)
    run = qenv.wait_status(run_id, TERMINAL, timeout=60)
    assert run["status"] == "failed"
    before = _points(qenv, run_id)  # committed when the process died
    kept = len(qenv.steps(run_id, "val/loss"))
    assert "killed by SIGKILL" in run["error"], run["error"]
    assert f"trainboard resume {run_id}" in run["error"]
    epoch = int(run["error"].split("checkpoint after epoch ")[1].split(".")[0])
    assert epoch in (kept - 1, kept), (epoch, kept)  # the last val point may precede its save

    assert main(["resume", str(run_id), "--set", f"train.epochs={epoch + 2}"]) == 0
    run = qenv.wait_status(run_id, TERMINAL, timeout=120)
    assert run["status"] == "finished", run["error"]
    assert run["id"] == run_id and run["summary"]["epochs"] == epoch + 2
    steps = qenv.steps(run_id, "val/loss")
    assert steps == [steps[0] * e for e in range(1, epoch + 3)]  # one point an epoch, each once
    resumed = [e for e in _events(qenv, run_id) if e["kind"] == "resumed"]
    assert resumed and f"after epoch {epoch}" in resumed[-1]["message"]
    lost = len(before - _points(qenv, run_id))
    if qenv.env.get("TRAINBOARD_BROKER_URL"):  # one row in docs/reliability.md, not one per broker
        from tests.reliability import record_fault

        record_fault(
            "run's process SIGKILLed mid-run (the OOM killer's signal), then `trainboard resume`",
            final_status=f"failed → resumed → {run['status']}",
            survived=run["status"] == "finished" and lost == 0,
            points_checked=len(before),
            points_lost=lost,
            note=f"the failure said: kept the checkpoint after epoch {epoch}, resume with "
            f"`trainboard resume {run_id}`; same id, {epoch + 2} epochs, no epoch twice",
        )
    assert lost == 0


def _points(qenv, run_id: int) -> set[tuple[str, int]]:
    rows = qenv.db.execute(
        "SELECT k.name, m.step FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE m.run_id = ?",
        [run_id],
    ).fetchall()
    return {(k, s) for k, s in rows}


@pytest.mark.redis
def test_submit_while_redis_is_down_keeps_the_run_queued_and_sends_it_when_redis_is_back(
    tmp_path, monkeypatch
):
    server = RedisServer(tmp_path)
    server.start()
    env = QueueEnv(tmp_path, monkeypatch, server.url)
    try:
        env.start_worker()
        server.stop()
        res = submit("quick", "builtin:digits", overrides={**TINY, "train.epochs": 2}, db=env.db)
        assert not res.sent and "unreachable" in res.note
        assert env.run(res.run_id)["status"] == "queued"
        assert "unreachable" in send_info(env.db, res.run_id)["last_error"]
        time.sleep(2)
        server.start()  # same port, empty: the worker reconnects, its reaper sends the run
        run = env.wait_status(res.run_id, TERMINAL, timeout=120)
        assert run["status"] == "finished", run["error"]
        assert send_info(env.db, res.run_id)["last_error"] is None
    finally:
        env.close()
        server.stop()


def _events(qenv, run_id: int) -> list[dict]:
    from jobs.store.reader import events

    return events(qenv.db, run_id)


def _drop_queued_messages(qenv) -> None:
    """Lose every message waiting in the broker, the way a restart without persistence does."""
    s = current_app().trainboard_settings
    if s.embedded:
        for f in (s.broker_dir / "queue").glob("*.msg"):
            f.unlink()
    else:
        with current_app().connection_for_write() as conn:
            conn.default_channel.queue_purge(s.queue_name("cpu"))


def test_a_worker_shutting_down_hands_new_messages_back_to_the_broker(tmp_path, monkeypatch):
    """During a warm shutdown the worker can still receive a message — typically the run it
    has just handed back. It must not claim it (the shutdown would kill the run's process and
    the run would end `failed`): the message is rejected with requeue for the next worker."""
    from celery.exceptions import Reject

    from jobs.queue import presence, tasks
    from jobs.store.db import connect

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    run_id = registry.create_run(db, spec={}, preset="quick")
    me = presence.current()
    me.shutting_down.set()
    try:
        with pytest.raises(Reject) as e:
            tasks.supervise(run_id)
        assert e.value.requeue
    finally:
        me.shutting_down.clear()
    assert registry.get_run(db, run_id)["status"] == "queued"
