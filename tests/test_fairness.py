"""Issue 18, #6: fairness while runs run, on a team server with two real worker processes on the
embedded broker. One member can hold at most TRAINBOARD_MAX_RUNNING_PER_USER slots (default:
half the slots), and a run past TRAINBOARD_MAX_RUN_HOURS stops with a checkpoint, a status that
says why, and can be resumed."""

from __future__ import annotations

import os

import pytest

from engine.vocab import TERMINAL
from jobs import service
from jobs.errors import IllegalTransition
from jobs.runs import submit
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import FAST_ENV, TINY, Worker, wait_for

SLOW = {"TRAINBOARD_FAULT_STEP_DELAY_S": "0.05"}


@pytest.fixture
def team(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRAINBOARD_TEAM", "1")
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    monkeypatch.delenv("TRAINBOARD_MAX_RUNNING_PER_USER", raising=False)
    for k, v in FAST_ENV.items():
        monkeypatch.setenv(k, v)
    workers: list[Worker] = []

    def start(n: int, **env: str) -> None:
        for i in range(n):
            w = Worker({**os.environ, **SLOW, **env}, tmp_path / f"w{i}.log", f"w{i}@test")
            workers.append(w)
        for w in workers:
            w.wait_ready()

    yield connect(), start
    for w in workers:
        w.stop()


def _submit(db, owner: str, epochs: int) -> int:
    return submit.submit(
        "quick", "builtin:digits", overrides={**TINY, "train.epochs": epochs}, owner=owner, db=db
    ).run_id


def test_one_member_holds_at_most_half_the_slots_and_the_rest_start_in_turn(team):
    db, start = team
    start(2)  # two slots: a member may hold one
    bobs = [_submit(db, "bob", 4) for _ in range(3)]
    seen_running: list[tuple[str, ...]] = []

    def sample() -> None:
        runs = [r for r in registry.list_runs(db) if r["status"] == "running"]
        seen_running.append(tuple(sorted(r["owner"] for r in runs)))

    wait_for(lambda: registry.get_run(db, bobs[0])["status"] == "running", 60, "bob's first run")
    carol = _submit(db, "carol", 2)
    wait_for(
        lambda: sample() or registry.get_run(db, carol)["status"] != "queued",
        60,
        "carol's run to start while bob's runs hold a slot",
    )
    summary = service.home_summary(db)
    assert summary["running_cap"] == 1
    holders = {w["holder"] for w in summary["workers"]}
    assert holders <= {"bob", "carol", "—"} and "bob" in holders

    def all_over():
        sample()
        runs = [registry.get_run(db, r) for r in (*bobs, carol)]
        return runs if all(r["status"] in TERMINAL for r in runs) else None

    runs = wait_for(all_over, 240, "every run to end")
    assert [r["status"] for r in runs] == ["finished"] * 4, [r["error"] for r in runs]
    assert seen_running and max(s.count("bob") for s in seen_running) == 1, seen_running
    # bob's runs ran one after the other
    b = [registry.get_run(db, r) for r in bobs]
    for first, second in zip(b, b[1:], strict=False):
        assert second["started_at"] >= first["finished_at"] - 0.5


def test_a_run_past_the_time_limit_stops_with_a_checkpoint_and_can_be_resumed(team):
    db, start = team
    start(1, TRAINBOARD_MAX_RUN_HOURS=str(4 / 3600))  # four seconds
    run_id = _submit(db, "bob", 500)
    run = wait_for(
        lambda: (r := registry.get_run(db, run_id))["status"] in TERMINAL and r,
        120,
        "the run to stop at the time limit",
    )
    assert run["status"] == "cancelled", run
    assert "4 h" not in run["error"] and "limit per run (TRAINBOARD_MAX_RUN_HOURS" in run["error"]
    events = [e["message"] for e in registry_events(db, run_id)]
    assert any(m.startswith("stopped at the run time limit") for m in events), events
    point = submit.resume_point(db, run_id)
    assert point.possible, point.reason
    submit.resume(db, run_id, ["train.epochs=1000"])
    assert registry.get_run(db, run_id)["status"] in ("queued", "running")


def registry_events(db, run_id: int) -> list[dict]:
    return service.events(db, run_id)


def test_the_running_cap_is_counted_in_the_claim_itself(team):
    """Two claims racing for one member at the cap: the statement counts, so the second fails."""
    db, _ = team
    a, b = _submit(db, "bob", 1), _submit(db, "bob", 1)
    registry.claim_run(db, a, worker="w1", device="cpu", max_running=1)
    with pytest.raises(IllegalTransition):
        registry.claim_run(db, b, worker="w2", device="cpu", max_running=1)
    assert registry.get_run(db, b)["status"] == "queued"
    assert registry.fair_queue(db, "cpu", max_running=1) == []
    assert registry.fair_queue(db, "cpu") == [b]
