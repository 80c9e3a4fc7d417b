"""Delete and resume (issue 12): owners delete their own runs and datasets, admins any, and the
files go with them; a dataset an active run uses stays; a failed, cancelled or lost run with a
checkpoint goes on from it; a killed run's message says what was kept and how to resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from jobs import service
from jobs.cli import main
from jobs.datasets import ingest as datasets
from jobs.errors import DatasetInUse, RunActive, RunNotFound
from jobs.people import auth
from jobs.queue import presence, tasks
from jobs.queue.checkpoints import checkpoint_epoch
from jobs.runs import submit
from jobs.store import registry
from jobs.store.db import connect, db_path, run_dir
from jobs.store.writer import MetricWriter

TABLE = "a,b,label\n" + "\n".join(f"{i},{i % 7},{i % 2}" for i in range(40))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(submit, "send_run", lambda db, run_id, app=None: True)
    return tmp_path / "home"


@pytest.fixture
def db(home):
    return connect()


USERS = {
    "ada": {"name": "ada", "is_admin": 1},
    "bob": {"name": "bob", "is_admin": 0},
    "carol": {"name": "carol", "is_admin": 0},
}


def _finished_run(db, owner: str, dataset_id: int | None = None, status: str = "finished") -> int:
    rid = registry.create_run(
        db, spec={"data": {"dataset": "builtin:digits"}}, preset="quick", owner=owner,
        dataset_id=dataset_id,
    )  # fmt: skip
    registry.claim_run(db, rid, worker="w", device="cpu")
    {"finished": lambda: registry.finish_run(db, rid, {}),
     "failed": lambda: registry.fail_run(db, rid, "boom"),
     "cancelled": lambda: registry.cancel_run(db, rid)}[status]()  # fmt: skip
    folder = run_dir(rid)
    folder.mkdir(parents=True)
    (folder / "checkpoint.pt").write_bytes(b"weights")
    (folder / "model.pt").write_bytes(b"weights")
    with MetricWriter(db_path(), rid) as w:
        w.log(1, {"train/loss": 1.0})
        w.event(1, "run_end", "done")
    return rid


# --- delete runs -------------------------------------------------------------------------------


def test_owners_delete_their_own_runs_admins_any_and_the_files_go_too(db):
    mine = _finished_run(db, "bob")
    theirs = _finished_run(db, "carol")
    with pytest.raises(auth.NotAllowed, match="only 'carol' or an admin"):
        service.delete_run(db, theirs, USERS["bob"])
    assert registry.get_run(db, theirs)["status"] == "finished"
    service.delete_run(db, mine, USERS["bob"])
    service.delete_run(db, theirs, USERS["ada"])
    for rid in (mine, theirs):
        with pytest.raises(RunNotFound):
            registry.get_run(db, rid)
        assert not run_dir(rid).exists()
        for table in ("metrics", "events", "queue_sends"):
            n = db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [rid]).fetchone()[0]
            assert n == 0, table
    assert [p.name for p in run_dir(1).parent.iterdir()] == []  # nothing set aside is left


def test_an_active_run_cannot_be_deleted(db):
    rid = registry.create_run(db, spec={}, preset="quick", owner="bob")
    with pytest.raises(RunActive, match="cancel it first"):
        service.delete_run(db, rid, USERS["bob"])
    registry.claim_run(db, rid, worker="w", device="cpu")
    with pytest.raises(RunActive, match="running"):
        submit.delete_run(db, rid)
    assert registry.get_run(db, rid)["status"] == "running"


def test_a_new_run_that_gets_a_deleted_runs_id_never_sees_its_checkpoint(db):
    rid = _finished_run(db, "bob")
    submit.delete_run(db, rid)
    again = registry.create_run(db, spec={}, preset="quick")
    assert again == rid  # SQLite reuses the highest id
    assert not (run_dir(again) / "checkpoint.pt").exists()


def test_runs_delete_on_the_command_line(db, capsys):
    rid = _finished_run(db, "bob")
    active = registry.create_run(db, spec={}, preset="quick")
    assert main(["runs", "delete", str(rid)]) == 0
    assert "deleted" in capsys.readouterr().out
    assert main(["runs", "delete", str(active)]) == 2
    assert "cancel it first" in capsys.readouterr().err
    assert main(["runs", "delete", "999"]) == 2
    assert main(["runs"]) == 0  # listing still works without a subcommand


# --- delete datasets ----------------------------------------------------------------------------


def _upload(db, owner: str, target: str | None = None) -> dict:
    return datasets.ingest(db, TABLE.encode(), "table.csv", owner=owner, target=target)


def test_a_dataset_used_by_a_queued_run_stays_and_one_used_by_finished_runs_goes(db):
    ds = _upload(db, "bob")
    path = Path(ds["path"])
    queued = registry.create_run(db, spec={}, preset="quick", owner="bob", dataset_id=ds["id"])
    with pytest.raises(DatasetInUse, match=rf"run {queued} \(queued\)"):
        service.delete_dataset(db, ds["id"], USERS["bob"])
    assert path.exists()
    registry.cancel_run(db, queued)
    done = _finished_run(db, "bob", dataset_id=ds["id"])
    with pytest.raises(auth.NotAllowed):
        service.delete_dataset(db, ds["id"], USERS["carol"])
    service.delete_dataset(db, ds["id"], USERS["bob"])
    assert not path.exists()
    assert registry.list_datasets(db) == []
    assert registry.get_run(db, done)["dataset_id"] is None  # the run keeps its charts


def test_a_file_shared_by_two_targets_stays_until_the_last_goes(db):
    ds = _upload(db, "bob")
    other = service.retarget_dataset(db, ds["id"], "a", owner="carol")
    assert other["owner"] == "carol" and other["path"] == ds["path"]  # finding 11
    service.delete_dataset(db, ds["id"], USERS["ada"])
    assert Path(ds["path"]).exists()
    service.delete_dataset(db, other["id"], USERS["carol"])
    assert not Path(ds["path"]).exists()


def test_datasets_list_add_remove_on_the_command_line(db, home, tmp_path, capsys):
    f = tmp_path / "table.csv"
    f.write_text(TABLE)
    assert main(["datasets", "add", str(f), "--owner", "bob"]) == 0
    assert "dataset 1 added: table.csv (40 rows, target label" in capsys.readouterr().out
    assert main(["datasets", "list"]) == 0
    assert "table.csv" in capsys.readouterr().out
    stored = Path(registry.get_dataset(db, 1)["path"])
    assert main(["datasets", "remove", "1"]) == 0
    assert not stored.exists() and registry.list_datasets(db) == []
    assert main(["datasets", "add", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


# --- resume -------------------------------------------------------------------------------------


def _checkpoint(home: Path, run_id: int, epoch: int) -> None:
    import torch

    folder = run_dir(run_id, home)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"net": {"w": torch.zeros(3)}, "state": {"epoch": epoch, "step": 12 * epoch}},
        folder / "checkpoint.pt",
    )


def test_the_checkpoint_epoch_is_read_without_torch(home, tmp_path):
    _checkpoint(home, 7, 3)
    assert checkpoint_epoch(run_dir(7, home) / "checkpoint.pt") == 3
    assert checkpoint_epoch(tmp_path / "none.pt") is None
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 torn")
    assert checkpoint_epoch(tmp_path / "torn.pt") is None


def _killed(db, home, *, epoch: int | None) -> int:
    """A run whose process was SIGKILLed (the OOM killer's signal) after ``epoch`` epochs."""
    presence.set_current(presence.make_presence("cpu", "w1@test"))
    rid = registry.create_run(
        db, spec={"data": {"dataset": "builtin:digits"}, "train": {"epochs": 10}}, preset="quick"
    )
    registry.claim_run(db, rid, worker="w1@test", device="cpu")
    if epoch is not None:
        _checkpoint(home, rid, epoch)
    assert tasks._conclude(db, rid, -9, released=False, log_path=None) == "failed"
    return rid


def test_a_sigkilled_run_says_what_was_kept_and_how_to_resume(db, home):
    rid = _killed(db, home, epoch=3)
    error = registry.get_run(db, rid)["error"]
    assert "killed by SIGKILL" in error and "out-of-memory killer" in error
    assert "Kept: the checkpoint after epoch 3" in error
    assert f"trainboard resume {rid}" in error
    assert "(out of memory?)" not in error
    nothing = _killed(db, home, epoch=None)
    assert "Nothing was kept" in registry.get_run(db, nothing)["error"]


def test_resume_requeues_the_same_run_with_fresh_attempts_and_no_cancel_flag(db, home):
    rid = _killed(db, home, epoch=3)
    point = service.resume_point(db, rid)
    assert point.possible and point.epoch == 3 and "after epoch 3" in point.reason
    with pytest.raises(auth.NotAllowed):
        service.resume_run(db, rid, USERS["bob"])  # owned by 'local'
    with pytest.raises(ConfigError, match="already holds 3 epochs"):
        service.resume_run(db, rid, None, epochs=3)
    with pytest.raises(ConfigError, match="a resume can change only"):
        submit.resume(db, rid, ["model.hidden=[8]"])
    res = service.resume_run(db, rid, None, epochs=20)
    run = registry.get_run(db, res.run_id)
    assert res.run_id == rid and run["status"] == "queued"
    assert (run["attempt"], run["cancel_requested"], run["error"]) == (0, 0, None)
    assert run["spec"]["train"]["epochs"] == 20
    with pytest.raises(ConfigError, match="only a failed, cancelled or lost run"):
        submit.resume(db, rid)


def test_a_run_without_a_checkpoint_or_a_finished_one_is_not_resumed(db, home, capsys):
    rid = _killed(db, home, epoch=None)
    assert not service.resume_point(db, rid).possible
    assert main(["resume", str(rid)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    done = _finished_run(db, "bob")
    assert main(["resume", str(done)]) == 2
    assert "is finished" in capsys.readouterr().err
    assert registry.get_run(db, done)["status"] == "finished"


def test_a_resume_counts_against_the_queue_quota(db, home, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_QUEUED_PER_USER", "1")
    rid = _killed(db, home, epoch=2)
    registry.create_run(db, spec={}, preset="quick")  # 'local' has one queued run already
    with pytest.raises(ConfigError, match="already has 1 runs waiting"):
        submit.resume(db, rid)
    assert registry.get_run(db, rid)["status"] == "failed"
