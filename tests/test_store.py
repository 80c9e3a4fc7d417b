"""The run registry and metric store, on real SQLite files and real processes."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.errors import (
    DatasetInUse,
    DatasetNotFound,
    IllegalTransition,
    LostClaim,
    RunNotFound,
    WriterClosed,
)
from jobs.store import db as jdb
from jobs.store import registry as reg
from jobs.store.reader import events, export_metrics, keys, series
from jobs.store.writer import SHIFTS, MetricWriter
from tests import store_workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "trainboard.db"


@pytest.fixture
def db(path: Path):
    d = jdb.connect(path)
    yield d
    d.close()


def _max_step(db, rid):
    """The largest step stored for the run (straight SQL: what the reader's series build on)."""
    return db.execute("SELECT max(step) FROM metrics WHERE run_id = ?", [rid]).fetchone()[0]


def new_run(db, **kw) -> int:
    return reg.create_run(db, spec={"lr": 0.1}, preset="sutskever", **kw)


def write_points(path: Path, run_id: int, points: dict[str, list[tuple[int, float]]]) -> None:
    with MetricWriter(path, run_id) as w:
        for key, pts in points.items():
            for s, v in pts:
                w.log(s, {key: v})


def stored(db, run_id: int, key: str) -> list[tuple[int, float]]:
    rows = db.execute(
        "SELECT step, value FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
        "WHERE run_id = ? AND k.name = ? ORDER BY step",
        [run_id, key],
    ).fetchall()
    return [(s, math.nan if v is None else v) for s, v in rows]


# --- database and migrations ----------------------------------------------------------------


def test_data_home_and_db_path_follow_trainboard_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    assert jdb.data_home() == tmp_path / "home"
    assert jdb.db_path() == tmp_path / "home" / "trainboard.db"
    monkeypatch.delenv("TRAINBOARD_HOME")
    assert jdb.data_home() == Path.home() / ".trainboard"


def test_every_connection_is_wal_with_busy_timeout_and_foreign_keys(db):
    pragma = lambda name: db.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("busy_timeout") >= 5000
    assert pragma("foreign_keys") == 1
    assert pragma("synchronous") == 1  # NORMAL


def test_a_version_1_database_is_upgraded_in_place(path, monkeypatch):
    monkeypatch.setattr(jdb, "MIGRATIONS", jdb.MIGRATIONS[:1])
    old = jdb.connect(path)
    assert jdb.schema_version(old) == 1 and not old["queue_sends"].exists()
    rid = new_run(old)
    old.close()
    monkeypatch.undo()
    jdb._migrated.clear()  # the next version of the program opens the same file
    db = jdb.connect(path)
    assert jdb.schema_version(db) == len(jdb.MIGRATIONS) >= 2
    assert db["queue_sends"].exists() and reg.get_run(db, rid)["status"] == "queued"


def test_migrations_run_twice_are_a_noop(path, db):
    schema = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    assert jdb.schema_version(db) == len(jdb.MIGRATIONS)
    assert jdb.migrate(db) == []
    jdb._migrated.clear()  # as if a new process opened the file
    again = jdb.connect(path)
    assert jdb.migrate(again) == []
    assert again.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == schema
    assert again.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
        jdb.MIGRATIONS
    )
    for table in (
        "users",
        "sessions",
        "datasets",
        "runs",
        "workers",
        "metrics",
        "events",
        "queue_sends",
    ):
        assert again[table].exists()


def test_metric_tables_are_without_rowid(db):
    for table in ("metrics", "metrics_ds"):
        assert "WITHOUT ROWID" in db[table].schema


# --- run lifecycle --------------------------------------------------------------------------


def test_run_lifecycle_from_queued_to_finished(db):
    rid = new_run(db, name="first", owner="ana", group_id="g1")
    run = reg.get_run(db, rid)
    assert run["status"] == "queued" and run["spec"] == {"lr": 0.1} and run["attempt"] == 0
    run = reg.claim_run(db, rid, worker="w1", device="cuda:0")
    assert (run["status"], run["worker"], run["device"], run["attempt"]) == (
        "running",
        "w1",
        "cuda:0",
        1,
    )
    reg.heartbeat(db, rid, worker="w1", progress=0.5)
    assert reg.get_run(db, rid)["progress"] == 0.5
    reg.finish_run(db, rid, {"val/loss": 0.25})
    run = reg.get_run(db, rid)
    assert run["status"] == "finished" and run["summary"] == {"val/loss": 0.25}
    assert run["finished_at"] >= run["started_at"] >= run["created_at"]


def _run_in(db, status: str) -> int:
    rid = new_run(db)
    if status in ("running", "finished", "diverged", "lost"):
        reg.claim_run(db, rid, worker="w", device="cpu")
    {
        "finished": lambda: reg.finish_run(db, rid, {}),
        "failed": lambda: reg.fail_run(db, rid, "boom"),
        "diverged": lambda: reg.diverge_run(db, rid, "nan loss"),
        "cancelled": lambda: reg.cancel_run(db, rid),
        "lost": lambda: reg.mark_lost(db, rid, "no heartbeat"),
    }.get(status, lambda: None)()
    assert reg.get_run(db, rid)["status"] == status
    return rid


ACTIONS = {
    # action: (call, statuses it may start from, status it leads to)
    "claim": (
        lambda db, r: reg.claim_run(db, r, worker="w2", device="cpu"),
        {"queued", "lost"},
        "running",
    ),
    "finish": (lambda db, r: reg.finish_run(db, r, {}), {"running"}, "finished"),
    "fail": (lambda db, r: reg.fail_run(db, r, "err"), {"queued", "running", "lost"}, "failed"),
    "diverge": (lambda db, r: reg.diverge_run(db, r, "nan"), {"running"}, "diverged"),
    "cancel": (lambda db, r: reg.cancel_run(db, r), {"queued", "running", "lost"}, "cancelled"),
    "mark_lost": (lambda db, r: reg.mark_lost(db, r, "gone"), {"running"}, "lost"),
    "requeue": (lambda db, r: reg.requeue_run(db, r), {"lost"}, "queued"),
    "release": (lambda db, r: reg.release_run(db, r), {"running"}, "queued"),
    # resume from the checkpoint (jobs.runs.submit.resume): a run that stopped goes back to the queue
    "reopen": (lambda db, r: reg.reopen_run(db, r), {"failed", "cancelled", "lost"}, "queued"),
    "request_cancel": (
        lambda db, r: reg.request_cancel(db, r),
        {"queued", "running", "lost"},
        None,
    ),
}


@pytest.mark.parametrize("status", jdb.RUN_STATUSES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_status_transitions_are_allowed_or_raise_illegal_transition(db, status, action):
    call, allowed_from, target = ACTIONS[action]
    rid = _run_in(db, status)
    if status in allowed_from:
        call(db, rid)
        after = reg.get_run(db, rid)["status"]
        if action == "request_cancel":
            assert after == ("running" if status == "running" else "cancelled")
            assert reg.cancel_requested(db, rid)
        else:
            assert after == target
    else:
        with pytest.raises(IllegalTransition) as info:
            call(db, rid)
        assert info.value.current == status and str(rid) in str(info.value)
        assert reg.get_run(db, rid)["status"] == status  # nothing changed


def test_unknown_run_raises_run_not_found(db):
    with pytest.raises(RunNotFound):
        reg.get_run(db, 999)
    with pytest.raises(RunNotFound):
        reg.claim_run(db, 999, worker="w", device="cpu")
    with pytest.raises(RunNotFound):
        reg.cancel_requested(db, 999)


def test_requeue_is_bounded_by_max_attempts(db):
    rid = new_run(db, max_attempts=2)
    for attempt in (1, 2):
        assert reg.claim_run(db, rid, worker=f"w{attempt}", device="cpu")["attempt"] == attempt
        reg.mark_lost(db, rid, f"worker w{attempt} vanished")
        run = reg.requeue_run(db, rid)
    assert run["status"] == "failed"
    assert "2 attempts" in run["error"] and "w2 vanished" in run["error"]


def test_a_run_released_by_a_clean_shutdown_keeps_its_attempts(db):
    rid = new_run(db, max_attempts=1)
    for _ in range(3):  # three clean restarts of the server: the run is never given up
        assert reg.claim_run(db, rid, worker="w", device="cpu")["attempt"] == 1
        run = reg.release_run(db, rid)
        assert (run["status"], run["attempt"], run["worker"]) == ("queued", 0, None)
    reg.claim_run(db, rid, worker="w", device="cpu")
    reg.mark_lost(db, rid, "worker vanished")  # a real loss still counts
    assert reg.requeue_run(db, rid)["status"] == "failed"


def test_heartbeat_from_a_worker_that_lost_the_run_raises_lost_claim(db):
    rid = new_run(db)
    reg.claim_run(db, rid, worker="old", device="cpu")
    reg.mark_lost(db, rid, "stale")
    reg.requeue_run(db, rid)
    reg.claim_run(db, rid, worker="new", device="cpu")
    with pytest.raises(LostClaim):
        reg.heartbeat(db, rid, worker="old")
    reg.heartbeat(db, rid, worker="new")


def test_stale_runs_lists_running_runs_without_recent_heartbeat(db):
    fresh, stale = new_run(db), new_run(db)
    for rid in (fresh, stale):
        reg.claim_run(db, rid, worker="w", device="cpu")
    db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [time.time() - 120, stale])
    assert [r["id"] for r in reg.stale_runs(db, 60)] == [stale]


def test_racing_processes_claim_each_run_exactly_once(path, db):
    run_ids = [new_run(db) for _ in range(20)]
    with mp.get_context("spawn").Pool(3) as pool:
        won = pool.starmap(
            store_workers.try_claim, [(str(path), run_ids, f"w{i}") for i in range(3)]
        )
    assert sorted(r for w in won for r in w) == run_ids
    assert {reg.get_run(db, r)["attempt"] for r in run_ids} == {1}


def test_list_and_count_runs_filter_and_page(db):
    ds = reg.add_dataset(db, name="digits")
    ids = [
        new_run(db, owner="ana" if i % 2 else "bo", dataset_id=ds if i < 4 else None)
        for i in range(7)
    ]
    reg.claim_run(db, ids[0], worker="w", device="cpu")
    assert [r["id"] for r in reg.list_runs(db, limit=3)] == ids[::-1][:3]
    assert [r["id"] for r in reg.list_runs(db, limit=3, offset=3)] == ids[::-1][3:6]
    assert reg.count_runs(db) == 7
    assert reg.count_runs(db, owner="ana") == 3
    assert reg.count_runs(db, dataset_id=ds, owner="bo") == 2
    assert [r["id"] for r in reg.list_runs(db, status="running")] == [ids[0]]
    assert reg.count_runs(db, status=["queued", "running"]) == 7
    assert reg.status_counts(db) == {"queued": 6, "running": 1}
    assert reg.list_runs(db, preset="sutskever", limit=1)[0]["spec"] == {"lr": 0.1}
    with pytest.raises(ValueError, match="allowed"):
        reg.list_runs(db, status="done")


def test_a_dataset_used_only_by_runs_that_are_over_can_be_deleted(db):
    did = reg.add_dataset(db, name="iris", report={"rows": 150})
    rid = new_run(db, dataset_id=did)
    reg.claim_run(db, rid, worker="w", device="cpu")
    with pytest.raises(DatasetInUse, match=f"run {rid} \\(running\\)"):
        reg.delete_dataset(db, did)
    reg.finish_run(db, rid, {})
    assert reg.delete_dataset(db, did)["name"] == "iris"
    assert reg.get_run(db, rid)["dataset_id"] is None


def test_deleting_a_run_removes_its_points_events_and_send_record(path, db):
    from jobs.errors import RunActive

    rid = new_run(db)
    child = new_run(db)
    db.execute("UPDATE runs SET parent_run_id = ? WHERE id = ?", [rid, child])
    write_points(path, rid, {"train/loss": [(1, 1.0), (2, 0.5)]})
    db.execute("INSERT INTO queue_sends (run_id, sends) VALUES (?, 1)", [rid])
    with pytest.raises(RunActive):
        reg.delete_run(db, rid)
    reg.cancel_run(db, rid)
    reg.delete_run(db, rid)
    with pytest.raises(RunNotFound):
        reg.get_run(db, rid)
    for table in ("metrics", "metrics_ds", "events", "queue_sends"):
        assert (
            db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [rid]).fetchone()[0] == 0
        )
    assert reg.get_run(db, child)["parent_run_id"] is None


def test_datasets_add_get_list_delete(db):
    did = reg.add_dataset(db, name="iris", sha256="ab", size_bytes=10, report={"rows": 150})
    assert reg.get_dataset(db, did)["report"] == {"rows": 150}
    assert [d["name"] for d in reg.list_datasets(db)] == ["iris"]
    rid = new_run(db, dataset_id=did)
    with pytest.raises(DatasetInUse):
        reg.delete_dataset(db, did)
    db.execute("DELETE FROM runs WHERE id = ?", [rid])
    reg.delete_dataset(db, did)
    with pytest.raises(DatasetNotFound):
        reg.get_dataset(db, did)
    with pytest.raises(ValueError, match="allowed"):
        reg.add_dataset(db, name="x", colour="red")


def test_workers_upsert_and_list_alive(db):
    reg.upsert_worker(db, "gpu0", host="h", device="cuda:0", gpu_name="H100", pid=1)
    reg.upsert_worker(db, "cpu", host="h", device="cpu", last_seen=time.time() - 300)
    reg.upsert_worker(db, "gpu0", current_run=5)
    assert [w["name"] for w in reg.list_workers(db)] == ["gpu0"]
    everyone = {w["name"]: w for w in reg.list_workers(db, alive_within_s=None)}
    assert everyone["gpu0"]["current_run"] == 5 and everyone["gpu0"]["gpu_name"] == "H100"
    assert everyone["gpu0"]["alive"] and not everyone["cpu"]["alive"]


# --- metric writer --------------------------------------------------------------------------


def test_writer_stores_points_and_events_and_close_flushes(path, db):
    rid = new_run(db)
    with MetricWriter(path, rid, flush_interval=60) as w:  # nothing but close() can flush
        for s in range(10):
            w.log(s, {"train/loss": 1.0 / (s + 1), "lr": 0.1})
        w.log(9, {"val/loss": float("nan")})
        w.event(9, "lr_cut", "LR cut", {"old_lr": 0.1, "new_lr": 0.05})
    assert keys(db, rid) == ["lr", "train/loss", "val/loss"]
    assert _max_step(db, rid) == 9
    assert stored(db, rid, "train/loss") == [(s, 1.0 / (s + 1)) for s in range(10)]
    assert math.isnan(series(db, rid, "val/loss")["val/loss"].value[0])
    (ev,) = events(db, rid)
    assert (ev["step"], ev["kind"], ev["data"]) == (9, "lr_cut", {"old_lr": 0.1, "new_lr": 0.05})
    with pytest.raises(WriterClosed):
        w.log(10, {"lr": 0.1})


def test_writer_flush_commits_without_close(path, db):
    rid = new_run(db)
    w = MetricWriter(path, rid, flush_interval=60, flush_points=10**6)
    w.log(0, {"a": 1.0})
    w.event(0, "run_start", "go")
    w.flush()
    assert stored(jdb.connect(path), rid, "a") == [(0, 1.0)]
    assert len(events(db, rid)) == 1
    w.close()
    w.close()  # idempotent


def test_writer_rejects_bad_input_at_the_door(path, db):
    with MetricWriter(path, new_run(db)) as w:
        with pytest.raises(TypeError):
            w.log(0, {"a": "high"})
        with pytest.raises(ValueError):
            w.log(-1, {"a": 1.0})
        with pytest.raises(TypeError):
            w.event(0, "doctor", "x", {"obj": object()})
        with pytest.raises(TypeError, match="names"):
            w.log(0, {3: 1.0})
        w.log(0, {"a": 1})  # ints and numpy scalars are numbers too
        w.log(1, {"a": np.float32(0.5)})
    assert [v for _, v in stored(jdb.connect(path), w.run_id, "a")] == [1.0, 0.5]


def _check_levels(db, run_id: int, key: str, exact: bool) -> None:
    pts = stored(db, run_id, key)
    steps = np.array([s for s, _ in pts])
    vals = np.array([v for _, v in pts])
    kid = db.execute("SELECT id FROM metric_keys WHERE name = ?", [key]).fetchone()[0]
    for level, shift in enumerate(SHIFTS, start=1):
        rows = db.execute(
            "SELECT bucket, n, min_step, vmin, max_step, vmax FROM metrics_ds "
            "WHERE run_id = ? AND key_id = ? AND level = ? ORDER BY bucket",
            [run_id, kid, level],
        ).fetchall()
        assert [r[0] for r in rows] == sorted(set((steps >> shift).tolist()))
        for b, n, smin, vmin, smax, vmax in rows:
            sel = (steps >> shift) == b
            assert n >= sel.sum() and vmin <= vals[sel].min() and vmax >= vals[sel].max()
            if exact:
                assert n == sel.sum() and (smin, vmin) == (
                    steps[sel][vals[sel].argmin()],
                    vals[sel].min(),
                )
                assert (smax, vmax) == (steps[sel][vals[sel].argmax()], vals[sel].max())


def test_downsampled_levels_match_the_raw_points(path, db):
    rid = new_run(db)
    rng = np.random.default_rng(0)
    write_points(path, rid, {"train/loss": list(enumerate(rng.normal(size=5000).tolist()))})
    _check_levels(db, rid, "train/loss", exact=True)


def test_replayed_points_from_a_resumed_run_are_not_duplicated(path, db):
    rid = new_run(db)
    write_points(path, rid, {"a": [(s, float(s)) for s in range(3000)]})
    # The resumed run replays 2,000..2,999 (one value differs) and goes on to 4,999.
    write_points(
        path, rid, {"a": [(s, 2500.5 if s == 2500 else float(s)) for s in range(2000, 5000)]}
    )
    pts = stored(db, rid, "a")
    assert [s for s, _ in pts] == list(range(5000))
    assert dict(pts)[2500] == 2500.5
    _check_levels(db, rid, "a", exact=False)  # still covers every point (min/max conservative)


def _spiky(n: int, seed: int = 1) -> tuple[np.ndarray, dict[int, float]]:
    rng = np.random.default_rng(seed)
    values = 1.0 + 0.01 * rng.normal(size=n)
    spikes = {
        int(s): float(v)
        for s, v in zip(rng.choice(n, 12, replace=False), [50.0, -50.0] * 6, strict=True)
    }
    spikes[n // 3], spikes[2 * n // 3] = 1000.0, -1000.0  # the global max and min
    for s, v in spikes.items():
        values[s] = v
    return values, spikes


@pytest.mark.parametrize("n", [12_000, 200_000], ids=["bucketed-from-raw", "stored-levels"])
def test_downsampled_series_keeps_global_min_max_last_and_every_spike(path, db, n):
    values, spikes = _spiky(n)
    values[n // 2 + 1] = math.nan  # a diverged point must not break min/max
    rid = new_run(db)
    with MetricWriter(path, rid) as w:
        for s, v in enumerate(values.tolist()):
            w.log(s, {"train/loss": v})
    data = series(db, rid, ["train/loss"], max_points=2000)["train/loss"]
    got = dict(zip(data.step, data.value, strict=True))
    assert data.downsampled and 500 < len(data) <= 2000
    assert data.step == sorted(set(data.step))
    assert got[n // 3] == 1000.0 and got[2 * n // 3] == -1000.0  # global max and min
    assert data.step[-1] == n - 1 and data.value[-1] == values[-1]  # the last point
    assert all(got.get(s) == v for s, v in spikes.items())  # no spike hidden
    assert all(
        lo <= v <= hi or math.isnan(v)
        for v, lo, hi in zip(data.value, data.vmin, data.vmax, strict=True)
    )
    # A live read from mid-bucket: nothing at or before since_step, spikes after it kept.
    since = n // 2 + 7
    tail = series(db, rid, "train/loss", max_points=500, since_step=since)["train/loss"]
    assert tail.downsampled and len(tail) <= 500 and min(tail.step) > since
    assert tail.step[-1] == n - 1
    assert all(
        dict(zip(tail.step, tail.value, strict=True)).get(s) == v
        for s, v in spikes.items()
        if s > since
    )


def test_series_of_short_and_unknown_keys_is_raw(path, db):
    rid = new_run(db)
    write_points(path, rid, {"val/loss": [(100 * e, 1.0 / (e + 1)) for e in range(50)]})
    out = series(db, rid, ["val/loss", "never/logged"])
    assert not out["val/loss"].downsampled
    assert out["val/loss"].step == [100 * e for e in range(50)]
    assert out["val/loss"].vmin == out["val/loss"].value == out["val/loss"].vmax
    assert len(out["never/logged"]) == 0 and out["never/logged"].last_step is None
    assert series(db, rid, "val/loss", since_step=4900)["val/loss"].step == []


def test_four_writer_processes_and_a_polling_reader_lose_nothing(path):
    """Acceptance: 4 writer processes + a reader polling every 100 ms: no 'database is locked',
    no lost or duplicated point, and incremental reads that neither skip nor repeat."""
    steps = 3000
    reader_errors: list[str] = []
    seen: dict[tuple[int, str], list[tuple[int, float]]] = {}
    since: dict[int, dict[str, int | None]] = {}
    last_event: dict[int, int | None] = {}
    seen_events: dict[int, list[int]] = {}
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        result = pool.starmap_async(
            store_workers.write_run, [(str(path), steps, f"w{i}") for i in range(4)]
        )
        db = None
        while True:
            done = result.ready()
            try:
                if db is None and path.exists():
                    db = jdb.connect(path)
                if db is not None:
                    reg.count_runs(db, status="running")
                    for run in reg.list_runs(db, limit=10):
                        rid = run["id"]
                        wanted = [*store_workers.KEYS, "val/loss"]
                        got = series(
                            db,
                            rid,
                            wanted,
                            max_points=100_000,
                            since_step=since.setdefault(rid, {}),
                        )
                        for key, data in got.items():
                            seen.setdefault((rid, key), []).extend(
                                zip(data.step, data.value, strict=True)
                            )
                            if data.last_step is not None:
                                since[rid][key] = data.last_step
                        evs = events(db, rid, since_id=last_event.get(rid))
                        seen_events.setdefault(rid, []).extend(e["step"] for e in evs)
                        if evs:
                            last_event[rid] = evs[-1]["id"]
            except sqlite3.OperationalError as e:
                reader_errors.append(str(e))
            if done:
                break
            time.sleep(0.1)
        outcomes = result.get()
    assert reader_errors == []
    assert [o["errors"] for o in outcomes] == [[]] * 4
    db = jdb.connect(path)
    for o in outcomes:
        rid = o["run_id"]
        assert reg.get_run(db, rid)["status"] == "finished"
        for key in store_workers.KEYS:
            expected = [(s, store_workers.point(rid, s, key)) for s in range(steps)]
            assert stored(db, rid, key) == expected  # nothing lost, nothing duplicated
            assert seen[(rid, key)] == expected  # incremental reads: no skip, no repeat
        val = [(s, float(s)) for s in range(49, steps, 50)]
        assert stored(db, rid, "val/loss") == val and seen[(rid, "val/loss")] == val
        assert seen_events[rid] == [s for s, _ in val]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sigkilled_writer_loses_at_most_its_last_flush_interval(path, db):
    rid = new_run(db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store_workers", "kill", str(path), str(rid)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "phase2 1050"
        # Phase 2 sits below flush_points: only the background interval flush can commit it.
        deadline = time.monotonic() + 30
        while _max_step(db, rid) != 1049 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _max_step(db, rid) == 1049
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "phase3 1100"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    jdb._migrated.clear()
    after = jdb.connect(path)  # opens cleanly, WAL recovered
    assert after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = set()
    for key in store_workers.KEYS:
        steps = [s for s, _ in stored(after, rid, key)]
        assert steps == list(range(len(steps)))  # a prefix: no holes, no duplicates
        assert 1050 <= len(steps) <= 1100  # only the unflushed tail (phase 3) may be lost
        counts.add(len(steps))
    assert len(counts) == 1  # a step's points are committed together
    # The resumed run replays the tail without duplicates, and the store still takes writes.
    with MetricWriter(path, rid) as w:
        for s in range(1000, 1100):
            w.log(s, {k: store_workers.point(rid, s, k) for k in store_workers.KEYS})
    assert [s for s, _ in stored(after, rid, "lr")] == list(range(1100))


# --- export --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_metrics_round_trips(path, db, tmp_path, fmt):
    rid = new_run(db)
    write_points(path, rid, {"b": [(s, s * 0.5) for s in range(100)], "a": [(3, float("nan"))]})
    out = tmp_path / f"m.{fmt}"
    assert export_metrics(db, rid, out, fmt) == 101
    df = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(df.columns) == ["key", "step", "value"]
    assert df["key"].tolist() == ["a"] + ["b"] * 100
    assert math.isnan(df["value"][0]) and df["value"][1:].tolist() == [s * 0.5 for s in range(100)]
    with pytest.raises(ValueError, match="csv"):
        export_metrics(db, rid, out, "xlsx")
