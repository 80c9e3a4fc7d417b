"""A/B over paired seeds through the real queue (issue 23 §2, acceptance): two real Celery
workers on real Redis train the groups with the real engine, and the read model judges them.

- Switching T2 off (no standardising, no log(1 + x)) on breast-cancer, whose columns span
  0.05 (smoothness) to 2,500 (area), gives "A is better" with a CI of B − A that excludes 0.
- Two identical arms give "no difference shown": the same seed with the same settings trains
  the same net in two worker processes, so every pair ties.

Kept small: the quick preset for 2 epochs, its pre-flight checks off, 3 seeds and 2 seeds."""

from __future__ import annotations

import pytest

from engine.vocab import TERMINAL
from jobs import service
from jobs.store import registry
from tests.queue_helpers import redis_available, redis_url_from_env, wait_for
from tests.test_queue import QueueEnv

pytestmark = pytest.mark.redis

FAST = {"train.epochs": 2, "train.preflight": False, "train.overfit_one_batch": False}


@pytest.fixture
def qenv(tmp_path, monkeypatch):
    url = redis_url_from_env()
    if not redis_available(url):
        pytest.skip(f"no Redis at {url} (set TRAINBOARD_TEST_REDIS_URL)")
    env = QueueEnv(tmp_path, monkeypatch, url)
    yield env
    env.close()


def test_t2_off_is_worse_and_identical_arms_tie_through_real_workers(qenv):
    db = qenv.db
    source = "builtin:breast-cancer"
    t2 = service.submit_ab(
        "quick",
        source,
        tip="T2",
        change=None,
        seeds=3,
        target=None,
        overrides=FAST,
        queue="cpu",
        dataset_id=None,
        info=None,
    )
    lr = registry.get_run(db, t2.pairs[0][1])["spec"]["optim"]["lr"]
    same = service.submit_ab(
        "quick",
        source,
        tip=None,
        change={"optim.lr": lr},
        seeds=2,
        target=None,
        overrides=FAST,
        queue="cpu",
        dataset_id=None,
        info=None,
    )
    qenv.start_worker("w1@test")
    qenv.start_worker("w2@test")
    ids = t2.run_ids + same.run_ids

    def all_over():
        return all(registry.get_run(db, i)["status"] in TERMINAL for i in ids)

    try:
        wait_for(all_over, 600, "the A/B groups' runs to end", interval=1.0)
    finally:
        for w in qenv.workers:
            print(f"--- {w.name} log (tail) ---\n{w.log()[-2000:]}")
    runs = [registry.get_run(db, i) for i in ids]
    assert {r["status"] for r in runs} == {"finished"}, [(r["id"], r["error"]) for r in runs]
    workers = {r["worker"] for r in runs}
    print("runs per worker:", {w: sum(r["worker"] == w for r in runs) for w in workers})

    report = service.ab_report(db, t2.group_id)
    verdict, diff = report["scores"]["test"]["verdict"], report["scores"]["test"]["diff"]
    print(verdict.message, diff)
    assert verdict.decision == "a_better", verdict.message
    assert diff.n == 3 and diff.high < 0  # the CI of B − A lies below 0
    assert report["scores"]["best_val"]["verdict"].decision == "a_better"

    tie = service.ab_report(db, same.group_id)
    print(tie["scores"]["test"]["verdict"].message, tie["scores"]["test"]["diff"])
    assert tie["change"] == []  # identical settings
    assert tie["scores"]["test"]["verdict"].decision == "no_difference"
    # pairing is exact: same seed, same settings, the same net in two processes (CPU)
    assert tie["scores"]["test"]["diff"].ties == 2
