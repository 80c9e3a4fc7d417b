"""The store's people and queue_sends modules (jobs/store/people.py, jobs/store/sends.py), on
real SQLite files and, for the races, real processes: their transactions are all or nothing,
and their compare-and-sets let exactly one caller through."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from jobs.store import db as jdb
from jobs.store import people, sends
from jobs.store import registry as reg


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "trainboard.db"


@pytest.fixture
def db(path: Path):
    d = jdb.connect(path)
    yield d
    d.close()


def _user(db, name: str = "ada") -> None:
    db["users"].insert(
        {"name": name, "password_hash": "old", "is_admin": 0, "created_at": 0.0},
    )


def _session(db, token: str, user: str = "ada", expires_at: float = 100.0) -> None:
    db["sessions"].insert(
        {"token": token, "user": user, "created_at": 0.0, "expires_at": expires_at}
    )


# --- people -------------------------------------------------------------------------------


def test_a_new_password_hash_ends_every_session_of_that_user_only(db):
    _user(db, "ada")
    _user(db, "bob")
    _session(db, "a1")
    _session(db, "a2")
    _session(db, "b1", user="bob")
    db["users"].update(1, {"failed_attempts": 7, "locked_until": 99.0})
    people.set_password_hash(db, "ada", "new")
    ada = db["users"].get(1)
    assert (ada["password_hash"], ada["failed_attempts"], ada["locked_until"]) == ("new", 0, 0)
    assert [s["token"] for s in db["sessions"].rows] == ["b1"]


def test_deleting_a_user_deletes_their_sessions(db):
    _user(db, "ada")
    _user(db, "bob")
    _session(db, "a1")
    _session(db, "b1", user="bob")
    people.delete_user(db, "ada")
    assert [u["name"] for u in db["users"].rows] == ["bob"]
    assert [s["token"] for s in db["sessions"].rows] == ["b1"]


def test_a_login_clears_its_attempts_opens_a_session_and_drops_expired_ones(db):
    _user(db)
    _session(db, "stale", expires_at=5.0)
    db["login_attempts"].insert({"key": "ada\x00here", "failed": 2, "locked_until": 0.0})
    db["login_attempts"].insert({"key": "ada\x00elsewhere", "failed": 4, "locked_until": 9.0})
    people.open_session(
        db, name="ada", token_hash="h", now=10.0, expires_at=50.0, attempt_key="ada\x00here"
    )
    assert [r["key"] for r in db["login_attempts"].rows] == ["ada\x00elsewhere"]
    assert [(s["token"], s["expires_at"]) for s in db["sessions"].rows] == [("h", 50.0)]
    assert db["users"].get(1)["password_hash"] == "old"  # no rehash asked for
    people.open_session(
        db,
        name="ada",
        token_hash="h2",
        now=11.0,
        expires_at=51.0,
        attempt_key="x",
        new_password_hash="rehashed",
    )
    assert db["users"].get(1)["password_hash"] == "rehashed"


def test_a_login_that_fails_half_way_changes_nothing(db):
    """The session insert fails (the same token twice): the attempts it would have cleared
    and the rehash it would have stored are rolled back with it."""
    _user(db)
    _session(db, "h")
    db["login_attempts"].insert({"key": "k", "failed": 3, "locked_until": 0.0})
    with pytest.raises(sqlite3.IntegrityError):
        people.open_session(
            db,
            name="ada",
            token_hash="h",
            now=10.0,
            expires_at=50.0,
            attempt_key="k",
            new_password_hash="rehashed",
        )
    assert db["login_attempts"].get("k")["failed"] == 3
    assert db["users"].get(1)["password_hash"] == "old"
    assert not db.conn.in_transaction


def test_a_session_is_found_with_its_user_by_token_hash(db):
    _user(db)
    _session(db, "h", expires_at=42.0)
    assert people.session_user(db, "h") == {
        "id": 1,
        "name": "ada",
        "is_admin": 0,
        "expires_at": 42.0,
    }
    assert people.session_user(db, "nope") is None


class Refused(Exception):
    pass


def test_an_attempt_whose_step_refuses_stores_nothing(db):
    seen = []

    def step(row):
        seen.append(row)
        if row and row[0] >= 2:
            raise Refused
        return (row[0] if row else 0) + 1, 7.0

    people.count_attempt(db, "k", step)
    people.count_attempt(db, "k", step)
    with pytest.raises(Refused):
        people.count_attempt(db, "k", step)
    assert seen == [None, (1, 7.0), (2, 7.0)]
    assert db["login_attempts"].get("k") == {"key": "k", "failed": 2, "locked_until": 7.0}
    assert not db.conn.in_transaction


def _count_many(path: str, n: int, start) -> None:
    db = jdb.connect(path)
    start.wait()
    for _ in range(n):
        people.count_attempt(db, "k", lambda row: ((row[0] if row else 0) + 1, 0.0))
    db.close()


def test_attempts_counted_by_parallel_processes_are_never_lost(path):
    """Read and write in one BEGIN IMMEDIATE: 4 processes × 200 increments of one key, started
    together, add up to 800 (a read outside the write lock would lose some, or fail with
    SQLite's stale-snapshot "database is locked")."""
    jdb.connect(path).close()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_count_many, args=(str(path), 200, start)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    assert jdb.connect(path)["login_attempts"].get("k")["failed"] == 800


def test_saving_a_setting_keeps_only_the_newest_browser_settings(db):
    people.save_setting(db, "ada", "language", "en", keep_browsers=3)
    for i in range(6):
        people.save_setting(db, f"ada@b{i}", "language", "zh_Hans", keep_browsers=3)
    people.save_setting(db, "ada", "language", "zh_Hant", keep_browsers=3)  # an update
    rows = {r["user"]: r["value"] for r in db["user_settings"].rows}
    assert rows == {"ada": "zh_Hant", "ada@b3": "zh_Hans", "ada@b4": "zh_Hans", "ada@b5": "zh_Hans"}


# --- queue_sends --------------------------------------------------------------------------


def _run(db, status: str = "queued", created_at: float = 0.0) -> int:
    rid = reg.create_run(db, spec={"lr": 0.1}, preset="quick")
    db["runs"].update(rid, {"status": status, "created_at": created_at})
    return rid


def test_a_success_counts_a_send_and_clears_the_error_a_failure_keeps_the_last_success(db):
    rid = _run(db)
    sends.record_failure(db, rid, "down", 1.0)
    assert db["queue_sends"].get(rid) == {
        "run_id": rid,
        "sent_at": None,
        "sends": 0,
        "last_error": "down",
        "last_try_at": 1.0,
    }
    sends.record_sent(db, rid, 2.0)
    sends.record_sent(db, rid, 3.0)
    sends.record_failure(db, rid, "down again", 4.0)
    row = db["queue_sends"].get(rid)
    assert (row["sent_at"], row["sends"], row["last_error"], row["last_try_at"]) == (
        3.0,
        2,
        "down again",
        4.0,
    )
    sends.record_sent(db, rid, 5.0)
    assert db["queue_sends"].get(rid)["last_error"] is None


def test_resend_candidates_are_old_queued_runs_never_sent_failed_or_sent_long_ago(db):
    never = _run(db)
    failed = _run(db)
    sends.record_sent(db, failed, 95.0)  # got through recently, then a re-send failed
    sends.record_failure(db, failed, "down", 96.0)
    long_ago = _run(db)
    sends.record_sent(db, long_ago, 10.0)
    recent = _run(db)
    sends.record_sent(db, recent, 95.0)
    too_new = _run(db, created_at=60.0)
    running = _run(db, status="running")
    got = sends.resend_candidates(db, created_before=50.0, sent_before=90.0)
    assert [r["id"] for r in got] == [never, failed, long_ago]
    assert {too_new, running, recent}.isdisjoint(r["id"] for r in got)
    assert got[1]["last_error"] == "down" and got[2]["sent_at"] == 10.0
    assert got[0]["sent_at"] is None


def test_a_send_claim_is_a_compare_and_set_on_the_last_try(db):
    rid = _run(db)
    assert sends.claim_send(db, rid, None, 1.0)  # no row yet: the insert claims it
    assert not sends.claim_send(db, rid, None, 2.0)  # another reaper read the same None
    assert sends.claim_send(db, rid, 1.0, 3.0)
    assert not sends.claim_send(db, rid, 1.0, 4.0)
    assert db["queue_sends"].get(rid)["last_try_at"] == 3.0


def _claim(path: str, rid: int, start, out) -> None:
    db = jdb.connect(path)
    start.wait()
    out.put(sends.claim_send(db, rid, None, 1.0))
    db.close()


def test_of_racing_processes_exactly_one_claims_a_send(path):
    db = jdb.connect(path)
    rid = _run(db)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(path), rid, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(120)
    assert sorted(results) == [False, False, False, True]


# --- the reads moved from jobs/runs into the registry -------------------------------------


def test_the_largest_gpu_is_that_of_a_worker_not_stopped(db):
    from jobs.runs.quotas import device_memory

    assert reg.largest_gpu_mib(db) is None
    assert device_memory(db, "gpu") == (None, "")
    reg.upsert_worker(db, "cpu0", device="cpu", status="online")
    reg.upsert_worker(db, "big", device="cuda:0", gpu_mem_total=81559, status="stopped")
    reg.upsert_worker(db, "small", device="cuda:0", gpu_mem_total=24564, status="online")
    assert reg.largest_gpu_mib(db) == 24564
    size, what = device_memory(db, "gpu")
    assert size == 24564 * 2**20 and what.code == "quota.what.gpu"


def test_the_run_filters_offer_each_value_in_use_once(db):
    for owner, preset in [("ada", "quick"), ("ada", "quick"), ("bob", "auto")]:
        reg.create_run(db, spec={}, preset=preset, owner=owner)
    assert sorted(reg.filter_values(db)) == [("auto", "bob", None), ("quick", "ada", None)]
