"""The LR range test as a queued job (issue 23 §1): ``trainboard lr-find`` queues it through
``jobs.service``, a real worker process runs it with the real engine, and the suggestion comes
back from the store; on the embedded broker and on Redis, as tests/test_queue.py does."""

from __future__ import annotations

import pytest

from jobs import service
from jobs.cli import main as trainboard
from jobs.store import registry
from tests.queue_helpers import redis_available, redis_url_from_env, wait_for
from tests.test_queue import QueueEnv


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


def test_lr_find_runs_on_a_worker_and_the_cli_prints_its_suggestion(qenv, capsys):
    qenv.start_worker()
    code = trainboard(["lr-find", "--dataset", "builtin:breast-cancer", "--preset", "sutskever"])
    out = capsys.readouterr().out
    run_id = int(out.split("queued as run ")[1].split()[0])
    run = qenv.run(run_id)
    assert run["status"] == "finished", (run["error"], out)
    assert run["name"] == "LR range test (sutskever)"
    assert run["spec"]["lr_find"] is True
    found = service.lr_find_result(run)
    assert found is not None and len(found.curves) == 3
    assert set(found.rules) == {"valley", "steepest", "minimum"}
    # the verdict the CLI printed is the stored one, and its exit code says which it is
    assert str(found.message()) in out
    assert code == (0 if found.lr is not None else 3)
    assert run["summary"]["suggested_lr"] == found.lr
    # each order's curve is stored as metric points, one per step it ran
    for k, curve in enumerate(found.curves):
        assert qenv.steps(run_id, f"lr_find/loss/{k}") == list(range(len(curve.lrs)))
    assert qenv.steps(run_id, "lr_find/lr") == list(range(len(found.curves[0].lrs)))
    # an LR test trains nothing a later run resumes: no checkpoint, no model
    assert not (qenv.home / "runs" / str(run_id) / "checkpoint.pt").exists()


def test_a_queued_lr_find_can_be_cancelled_like_a_run(qenv):
    res = service.submit_lr_find(
        "quick",
        "builtin:breast-cancer",
        target=None,
        overrides=None,
        queue="cpu",
        dataset_id=None,
        info=None,
    )
    assert service.cancel_run(qenv.db, res.run_id, None) == "cancelled"
    qenv.start_worker()
    wait_for(lambda: "succeeded" in qenv.workers[0].log(), 60, "the worker to skip it")
    run = registry.get_run(qenv.db, res.run_id)
    assert run["status"] == "cancelled" and run["summary"] is None


def test_a_member_cannot_turn_a_run_into_an_lr_test_by_overrides():
    with pytest.raises(service.Refused) as e:
        service.validate_run("quick", {"path": "builtin:iris", "target": None}, {"lr_find": True})
    assert "lr_find" in e.value.fields
