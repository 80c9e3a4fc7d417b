"""Issue 12 on the pages: resume and delete a run on Run detail, delete a dataset, and the queued-
run quota shown as a message on New run (not a traceback). Real store, real AppTest pages."""

from __future__ import annotations

import pytest
import torch

from jobs.datasets import ingest as datasets
from jobs.errors import DatasetNotFound, RunNotFound
from jobs.store import registry
from jobs.store.db import connect, db_path, run_dir
from jobs.store.writer import MetricWriter
from tests.test_app import assert_clean, page, texts


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _over(db, status: str, *, checkpoint_epoch: int | None = None) -> int:
    """A run that is over, with a few points (and a checkpoint after ``checkpoint_epoch``)."""
    rid = registry.create_run(
        db,
        spec={"data": {"dataset": "builtin:digits"}, "train": {"epochs": 4}},
        preset="quick",
        name=f"{status} run",
    )
    registry.claim_run(db, rid, worker="w", device="cpu")
    {
        "finished": lambda: registry.finish_run(db, rid, {}),
        "failed": lambda: registry.fail_run(db, rid, "boom"),
        "cancelled": lambda: registry.cancel_run(db, rid),
    }[status]()
    folder = run_dir(rid)
    folder.mkdir(parents=True, exist_ok=True)
    if checkpoint_epoch is not None:
        torch.save(
            {"net": {"w": torch.zeros(3)}, "state": {"epoch": checkpoint_epoch, "step": 6}},
            folder / "checkpoint.pt",
        )
    with MetricWriter(db_path(), rid) as w:
        w.log(1, {"train/loss": 1.0})
    return rid


def test_run_detail_resumes_a_failed_run_from_its_checkpoint(home):
    db = connect()
    rid = _over(db, "failed", checkpoint_epoch=2)
    at = page("run_detail", run_id=rid)
    assert "Resume from the checkpoint" in [b.label for b in at.button]
    at.number_input(key=f"rd_resume_epochs_{rid}").set_value(6)
    next(b for b in at.button if b.label == "Resume from the checkpoint").click()
    at.run()
    assert_clean(at)
    run = registry.get_run(db, rid)
    assert run["status"] == "queued" and run["spec"]["train"]["epochs"] == 6
    assert f"Resumed: run {rid} is queued again." in texts(at)


def test_a_resume_that_asks_for_fewer_epochs_than_kept_says_why(home):
    db = connect()
    rid = _over(db, "cancelled", checkpoint_epoch=3)
    at = page("run_detail", run_id=rid)
    at.number_input(key=f"rd_resume_epochs_{rid}").set_value(2)
    next(b for b in at.button if b.label == "Resume from the checkpoint").click()
    at.run()
    assert_clean(at)
    assert any("already holds 3 epochs" in e.value for e in at.error)
    assert registry.get_run(db, rid)["status"] == "cancelled"  # nothing changed


def test_a_finished_run_offers_delete_but_no_resume_and_delete_removes_it(home):
    db = connect()
    rid = _over(db, "finished", checkpoint_epoch=4)
    at = page("run_detail", run_id=rid)
    labels = [b.label for b in at.button]
    assert "Resume from the checkpoint" not in labels and "Delete for good" in labels
    next(b for b in at.button if b.label == "Delete for good").click()
    at.run()
    with pytest.raises(RunNotFound):
        registry.get_run(db, rid)
    assert not run_dir(rid).exists()


def test_datasets_page_deletes_a_dataset(home):
    db = connect()
    ds = datasets.register_builtin(db, "builtin:diabetes")
    at = page("datasets", dataset_id=ds["id"])
    next(b for b in at.button if b.label == "Delete for good").click()
    at.run()
    assert_clean(at)
    with pytest.raises(DatasetNotFound):
        registry.get_dataset(db, ds["id"])


def test_new_run_shows_the_queue_quota_as_a_message(home, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_QUEUED_PER_USER", "1")
    db = connect()
    ds = datasets.register_builtin(db, "builtin:diabetes")
    registry.create_run(db, spec={}, preset="quick", dataset_id=ds["id"], name="waiting")
    before = registry.count_runs(db)
    at = page("new_run", new_run_dataset=ds["id"])
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    (err,) = [e.value for e in at.error]
    assert err.startswith("Nothing was queued") and "1" in err
    assert registry.count_runs(db) == before
