"""The store's side of workers on other hosts (jobs/store/remote.py and the registry functions
jobs/remote/ calls): one transaction per chunk, a mark that never goes back, tokens replaced
and revoked, and the registry's reads for cancels and dataset downloads. Real SQLite files in
tmp_path; tests/test_remote_store.py drives the same code through the ingest."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.store import registry
from jobs.store import remote as store
from jobs.store.db import connect


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    db = connect()
    yield db
    db.close()


def _running(db, worker="gpu-box", dataset_id=None) -> int:
    run_id = registry.create_run(db, spec={}, preset="t", dataset_id=dataset_id)
    registry.claim_run(db, run_id, worker=worker, device="cpu")
    return run_id


def _rows(db, run_id) -> tuple[int, int, int]:
    return tuple(
        db.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
        for t in ("metrics", "metrics_ds", "events")
    )


def _write(db, writer, run_id, n=100):
    writer.write(
        db,
        run_id,
        ["loss"],
        np.zeros(n, np.int32),
        np.arange(n),
        np.linspace(1, 0, n),
        [(0, "note", "hello", "{}", 0.0)],
    )


def test_a_chunk_that_fails_inside_its_transaction_leaves_no_records_and_the_mark_in_place(db):
    run_id = _running(db)
    store.start_attempt(db, run_id, 1, "gpu-box", 0.0)
    writer = store.RecordWriter()
    with pytest.raises(RuntimeError), store.locked_attempt(db, run_id, 1) as row:
        assert row == ("gpu-box", 0)
        _write(db, writer, run_id)
        store.advance_mark(db, run_id, 1, 7, 100, 1.0)
        raise RuntimeError("the server died mid-chunk")
    assert _rows(db, run_id) == (0, 0, 0)
    assert store.high_water_mark(db, run_id, 1) == 0
    # the same chunk again, this time whole: records and mark land together
    with store.locked_attempt(db, run_id, 1):
        _write(db, writer, run_id)
        store.advance_mark(db, run_id, 1, 7, 100, 1.0)
    points, buckets, events = _rows(db, run_id)
    assert points == 100 and buckets > 0 and events == 1
    assert store.high_water_mark(db, run_id, 1) == 7


def test_an_attempt_never_handed_out_has_no_row_and_mark_zero(db):
    run_id = _running(db)
    with store.locked_attempt(db, run_id, 1) as row:
        assert row is None
    assert store.high_water_mark(db, run_id, 1) == 0


def test_the_mark_raised_for_an_outcome_never_goes_back(db):
    run_id = _running(db)
    store.start_attempt(db, run_id, 1, "gpu-box", 0.0)
    store.raise_mark(db, run_id, 1, 9, 1.0)
    store.raise_mark(db, run_id, 1, 4, 2.0)
    assert store.high_water_mark(db, run_id, 1) == 9
    # a new claim of the same attempt starts its records over
    store.start_attempt(db, run_id, 1, "gpu-box/1", 3.0)
    assert store.high_water_mark(db, run_id, 1) == 0


def test_a_new_token_for_a_name_replaces_the_old_and_ends_its_revocation(db):
    store.save_token(db, "gpu-box", "h1", 1.0)
    assert store.token_owner(db, "h1") == ("gpu-box", None)
    assert store.revoke_token(db, "gpu-box", 2.0)
    assert store.token_owner(db, "h1") is None
    assert not store.revoke_token(db, "gpu-box", 3.0)  # nothing active left to revoke
    store.save_token(db, "gpu-box", "h2", 4.0)
    assert store.token_owner(db, "h1") is None
    assert store.token_owner(db, "h2") == ("gpu-box", None)
    store.touch_token(db, "gpu-box", 5.0)
    assert store.token_owner(db, "h2") == ("gpu-box", 5.0)
    assert store.list_tokens(db) == [
        {"name": "gpu-box", "created_at": 4.0, "revoked_at": None, "last_used_at": 5.0}
    ]


def test_a_file_shipped_again_replaces_its_record(db):
    run_id = _running(db)
    store.save_run_file(db, run_id, "checkpoint.pt", "a" * 64, 10, 1.0)
    store.save_run_file(db, run_id, "checkpoint.pt", "b" * 64, 20, 2.0)
    assert store.run_files(db, run_id) == {"checkpoint.pt": {"sha256": "b" * 64, "size": 20}}
    assert store.run_files(db, run_id + 1) == {}


def test_cancels_among_names_only_the_given_running_runs_asked_to_stop(db):
    asked, other, quiet = _running(db), _running(db), _running(db)
    queued = registry.create_run(db, spec={}, preset="t")
    for run_id in (asked, other):
        registry.request_cancel(db, run_id)
    registry.request_cancel(db, queued)  # a queued run is cancelled at once, not asked
    assert registry.cancels_among(db, [asked, quiet, queued]) == [asked]
    assert registry.running_holders(db) == [
        (asked, "gpu-box"),
        (other, "gpu-box"),
        (quiet, "gpu-box"),
    ]


def test_running_dataset_files_are_those_of_running_runs_only(db, tmp_path):
    ds = registry.add_dataset(db, name="d", path=str(tmp_path / "d.csv"), sha256="c" * 64)
    running = _running(db, worker="gpu-box/0", dataset_id=ds)
    registry.create_run(db, spec={}, preset="t", dataset_id=ds)  # queued: not downloadable
    assert registry.running_dataset_files(db, "c" * 64) == [("gpu-box/0", str(tmp_path / "d.csv"))]
    registry.finish_run(db, running, {})
    assert registry.running_dataset_files(db, "c" * 64) == []
