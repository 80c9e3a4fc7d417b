"""Quotas and fairness on a shared server (issue 12, finding 8): what one run and one person may
ask for is checked when a run is queued, and workers take runs in a fair order between users."""

from __future__ import annotations

import threading

import pytest

from engine.errors import ConfigError
from jobs import service
from jobs.queue import presence, tasks
from jobs.runs import quotas, submit
from jobs.store import registry
from jobs.store.db import connect


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    for var in (
        "TRAINBOARD_MAX_QUEUED_PER_USER",
        "TRAINBOARD_MAX_EPOCHS",
        "TRAINBOARD_MAX_ENSEMBLE",
        "TRAINBOARD_MAX_PARAMS",
        "TRAINBOARD_MAX_RUN_MEMORY_GB",
    ):
        monkeypatch.delenv(var, raising=False)
    # No broker in these tests: a submit records the run and notes the broker is away.
    monkeypatch.setattr(submit, "send_run", lambda db, run_id, app=None: True)
    return tmp_path / "home"


@pytest.fixture
def db(home):
    return connect()


@pytest.fixture
def digits(db):
    return service.add_builtin(db, "builtin:digits", owner="ada")


# --- the size estimate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "modality", "shape", "overrides"),
    [
        ("mlp", "tabular", (13,), {"model.hidden": [64, 32]}),
        ("cnn", "image", (1, 8, 8), {"model.channels": [16, 32]}),
        ("cnn", "image", (3, 28, 28), {}),
        ("lstm", "sequence", (50, 2), {"model.rnn_layers": 2}),
        ("gru", "sequence", (20, 3), {"model.kind": "gru"}),
        ("mlp", "tabular", (13,), {"ensemble.members": 5}),
    ],
)
def test_the_parameter_estimate_matches_the_engines_models(kind, modality, shape, overrides):
    import torch

    from engine.config import resolve_config
    from engine.models import build_model

    cfg = resolve_config("quick", overrides=overrides)
    outputs = 3
    model = build_model(cfg.model, shape, outputs, modality)
    real = sum(p.numel() for p in model.parameters()) * cfg.ensemble.members
    info = {"modality": modality, "input_shape": list(shape), "outputs": outputs, "rows": 100}
    est = quotas.estimate(cfg.to_dict(), info)
    assert est.kind == kind and est.exact_input
    assert est.params == real
    del torch


# --- refusals at submit time, not in the worker ---------------------------------------------


def refused(*args) -> dict:
    """The fields of the door's refusal of ``service.validate_run(*args)`` (it must refuse)."""
    with pytest.raises(service.Refused) as e:
        service.validate_run(*args)
    return e.value.fields


def test_a_four_trillion_parameter_model_is_refused_before_anything_is_queued(db, digits):
    table = service.add_builtin(db, "builtin:breast-cancer", owner="ada")
    errors = refused("quick", table, {"model.hidden": [65536] * 1000})
    assert "about 4.29e+12 parameters" in errors["model.hidden"]
    assert "TRAINBOARD_MAX_PARAMS" in errors["model.hidden"]
    # the same on images, once the model is an MLP
    errors = refused("quick", digits, {"model.kind": "mlp", "model.hidden": [65536] * 10})
    assert "parameters" in errors["model.hidden"]
    assert registry.count_runs(db) == 0


def test_epochs_ensemble_size_and_seed_are_capped_at_submit(db, digits):
    errors = refused("quick", digits, {"train.epochs": 10000, "ensemble.members": 64})
    assert "at most 1,000 epochs" in errors["train.epochs"]
    assert "at most 16 ensemble members" in errors["ensemble.members"]
    errors = refused("quick", digits, {"train.seed": 10**30})
    assert "0 to 4,294,967,295" in errors["train.seed"]
    assert service.validate_run("quick", digits, {"train.seed": 2**32 - 1}).ok
    assert registry.count_runs(db) == 0


def test_a_refused_size_is_a_coded_message_that_reads_in_both_chinese_scripts(db, digits):
    """Issue 19: the server's limits travel as code + params, so the New run page says them
    in the reader's language (app/engine_text.py), numbers formatted there."""
    from app import engine_text, i18n

    errors = refused("quick", digits, {"train.epochs": 10000, "ensemble.members": 64})
    epochs, members = errors["train.epochs"], errors["ensemble.members"]
    assert (epochs.code, epochs.params) == ("quota.epochs", {"limit": 1000, "asked": 10000})
    assert members.code == "quota.members"
    with i18n.language("zh_Hans"):
        assert engine_text.text(members) == (
            "本服务器最多允许 16 个集成成员（TRAINBOARD_MAX_ENSEMBLE）；请求了 64 个"
        )
    with i18n.language("zh_Hant"):
        assert "10,000" in engine_text.text(epochs) and "伺服器" in engine_text.text(epochs)
        wide = {"model.kind": "mlp", "model.hidden": [65536] * 10}
        big = refused("quick", digits, wide)
        assert "參數" in engine_text.text(big["model.hidden"])


def test_the_limits_are_set_by_the_administrator(db, digits, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_MAX_EPOCHS", "5")
    monkeypatch.setenv("TRAINBOARD_MAX_PARAMS", "1000")
    errors = refused("quick", digits, {"train.epochs": 6})
    assert "at most 5 epochs" in errors["train.epochs"]
    assert "1,000 allowed" in errors["model.channels"]  # digits are images: a CNN


def test_the_memory_budget_uses_the_datasets_shape(db, monkeypatch):
    """A wide-input MLP on a dataset with many columns: the parameters count the input layer,
    read from the dataset's stored shape, and the memory budget refuses it."""
    monkeypatch.setenv("TRAINBOARD_MAX_RUN_MEMORY_GB", "1")
    ds = {
        "path": "builtin:digits",
        "target": None,
        "report": {"modality": "tabular", "input_shape": [4000], "outputs": 10, "rows": 10},
    }
    errors = refused("quick", ds, {"model.hidden": [16384, 4096]})
    assert "training would need about" in errors["train.batch_size"], errors
    assert service.validate_run("quick", ds, {"model.hidden": [64]}).ok


def test_the_command_line_submit_is_checked_too(db, capsys):
    from jobs.cli import main

    assert main(["submit", "--dataset", "builtin:digits", "--set", "train.seed=1000000000000"]) == 2
    assert "train.seed" in capsys.readouterr().err
    assert registry.count_runs(db) == 0


def test_a_user_can_queue_twenty_runs_and_the_twenty_first_is_refused(db, digits):
    v = service.validate_run("quick", digits, {})
    for _ in range(20):
        service.queue_run(db, v, dataset_id=digits["id"], owner="bob")
    assert service.queue_quota(db, "bob") is not None
    with pytest.raises(ConfigError) as e:
        service.queue_run(db, v, dataset_id=digits["id"], owner="bob")
    assert "already has 20 runs waiting" in str(e.value) and "queue" in e.value.fields
    assert registry.count_runs(db, owner="bob") == 20
    # someone else is not held up, and an A/B pair needs room for both
    service.queue_run(db, v, dataset_id=digits["id"], owner="carol")
    for _ in range(18):
        service.queue_run(db, v, dataset_id=digits["id"], owner="carol")
    with pytest.raises(service.Refused) as e:
        service.queue_ab_pair(db, "quick", digits, "T2", {}, owner="carol")
    assert "queue" in e.value.fields
    assert registry.count_runs(db, owner="carol") == 19


def test_parallel_submits_cannot_slip_past_the_queue_quota(home, digits):
    """Eight threads, each with its own connection, submit five runs each at once: exactly the
    quota is recorded (the count and the insert are one statement)."""
    v = service.validate_run("quick", digits, {})
    errors: list[Exception] = []

    def submit_five():
        db = connect()
        for _ in range(5):
            try:
                service.queue_run(db, v, dataset_id=digits["id"], owner="bob")
            except ConfigError as e:
                errors.append(e)

    threads = [threading.Thread(target=submit_five) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.count_runs(connect(), owner="bob") == 20
    assert len(errors) == 20


# --- fair claiming ----------------------------------------------------------------------------


class _FakeChild:
    """Stands in for the run's process: the run finishes at once."""

    returncode = 0

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def wait(self, timeout=None):
        registry.finish_run(connect(), self.run_id, {})
        return 0


def test_with_a_users_hundred_runs_ahead_another_users_run_starts_next(db, monkeypatch):
    monkeypatch.setattr(tasks.spare, "start_runner", _FakeChild)
    presence.set_current(presence.make_presence("cpu", "w1@test"))
    spec = {"data": {"dataset": "builtin:digits"}}
    a_runs = [registry.create_run(db, spec=spec, preset="quick", owner="ada") for _ in range(100)]
    b_run = registry.create_run(db, spec=spec, preset="quick", owner="bob")

    # The broker delivers messages in the order they were sent: ada's first.
    tasks.supervise(a_runs[0])
    assert registry.get_run(db, a_runs[0])["status"] == "finished"
    tasks.supervise(a_runs[1])  # ada's second message is bob's turn
    assert registry.get_run(db, b_run)["status"] == "finished"
    assert registry.get_run(db, a_runs[1])["status"] == "queued"
    tasks.supervise(a_runs[2])  # back to ada, oldest first
    assert registry.get_run(db, a_runs[1])["status"] == "finished"
    # bob's own message, arriving late, is a turn for ada's next run (nothing is lost)
    tasks.supervise(b_run)
    assert registry.get_run(db, a_runs[2])["status"] == "finished"


def test_the_fair_order_puts_users_with_fewer_running_runs_first(db):
    spec = {"x": 1}
    a = [registry.create_run(db, spec=spec, preset="quick", owner="ada") for _ in range(3)]
    registry.claim_run(db, a[0], worker="w1", device="cpu")  # ada has one running
    c = registry.create_run(db, spec=spec, preset="quick", owner="carol")
    g = registry.create_run(db, spec=spec, preset="quick", owner="gpu-user", queue="gpu")
    assert registry.fair_queue(db, "cpu") == [c, a[1]]
    assert registry.fair_queue(db, "gpu") == [g]


def test_builtin_adding_length_is_bounded_before_anything_is_allocated():
    """Finding 1: builtin:adding-100000000 allocated 4000×T×2 floats; now refused by its name."""
    import resource

    from engine.data import DataError, load_dataset

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DataError, match="1,?000"):
        load_dataset("builtin:adding-100000000")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024
    assert load_dataset("builtin:adding-1000").x.shape == (4000, 1000, 2)
