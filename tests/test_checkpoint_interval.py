"""Checkpoints on a time interval (issue 20, §7): after the first epoch, after a failed write,
every ``CHECKPOINT_EVERY_S`` and at the end; a run that dies between two resumes from the older
one and finishes. No stopwatch: the interval is set to 0 (every epoch) or to a day (never)."""

from __future__ import annotations

import pytest
import torch

import engine.train
from engine import MemorySink, resolve_config
from engine.checkpoint import due
from engine.train import CHECKPOINT, train
from tests.engine_helpers import blobs

DAY = 86_400.0


def small(**ov):
    return resolve_config(
        "sutskever",
        dataset="builtin:digits",
        overrides={"train.preflight": False, "model.hidden": [16], "train.batch_size": 32}
        | {"train.baselines": False}
        | ov,
    )


@pytest.mark.parametrize(
    ("final", "failed", "saved", "since_s", "expected"),
    [
        (False, False, False, 0.0, True),  # the first epoch: a resume has something to start from
        (False, False, True, 0.1, False),  # within the interval: skipped
        (False, False, True, 5.0, True),  # the interval has passed
        (False, True, True, 0.1, True),  # the last write failed: try again
        (True, False, True, 0.1, True),  # the last epoch: what the run ends on
    ],
)
def test_a_checkpoint_is_due_first_after_a_failure_at_the_interval_and_at_the_end(
    final, failed, saved, since_s, expected
):
    assert due(final=final, failed=failed, saved=saved, since_s=since_s, every_s=5.0) is expected


class OnDisk(MemorySink):
    """Records, at each epoch's validation point, which epoch the checkpoint on disk holds."""

    def __init__(self, path):
        super().__init__()
        self.path, self.seen = path, []

    def log(self, step, values):
        super().log(step, values)
        if "epoch" in values:
            held = torch.load(self.path, weights_only=True) if self.path.exists() else None
            self.seen.append(held["state"]["epoch"] if held else None)


@pytest.mark.parametrize(
    ("every_s", "held"), [(0.0, [None, 1, 2, 3, 4]), (DAY, [None, 1, 1, 1, 1])]
)
def test_checkpoints_follow_the_interval_and_the_last_epoch_is_always_saved(
    tmp_path, monkeypatch, every_s, held
):
    monkeypatch.setattr(engine.train, "CHECKPOINT_EVERY_S", every_s)
    sink = OnDisk(tmp_path / CHECKPOINT)
    res = train(small(**{"train.epochs": 5}), blobs(), sink=sink, run_dir=tmp_path)
    assert res.status == "finished"
    assert sink.seen == held
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["state"]["epoch"] == 5


def test_a_run_that_dies_between_checkpoints_resumes_from_the_older_one_and_finishes(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(engine.train, "CHECKPOINT_EVERY_S", DAY)

    class Dies(MemorySink):
        def log(self, step, values):
            super().log(step, values)
            if values.get("epoch") == 4:
                raise KeyboardInterrupt  # the process dies at epoch 4: only epoch 1 is on disk

    with pytest.raises(KeyboardInterrupt):
        train(small(**{"train.epochs": 6}), blobs(), sink=Dies(), run_dir=tmp_path)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["state"]["epoch"] == 1
    sink = MemorySink()
    res = train(small(**{"train.epochs": 6}), blobs(), sink=sink, run_dir=tmp_path)
    assert sink.kinds("resumed")[0]["data"]["epoch"] == 1
    assert res.status == "finished" and res.summary["epochs"] == 6
    assert [v for _, v in sink.series("epoch")] == [2.0, 3.0, 4.0, 5.0, 6.0]
