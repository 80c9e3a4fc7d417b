"""What a run writes to its folder, and how it survives a full or failing disk.

``checkpoint.pt`` holds everything a resume needs and is rewritten at the end of an epoch (the
first, then every few seconds, and the last: :func:`due`); ``model.pt``
holds the best weights with the preprocessing statistics, for download and inference. Both are
written atomically (temporary file, then rename).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from engine.errors import StorageError
from engine.messages import Message
from engine.sink import Sink
from engine.vocab import EventKind

# The trained model is the run's result: wait ~1 min for space before giving up.
MODEL_SAVE_WAITS_S = (1, 2, 4, 8, 15, 30)


def atomic_save(obj: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash or a full disk mid-write never leaves
    a torn file, and the previous version stays intact. On failure the partial file is removed
    (it would hold disk space the run needs) and the OSError is raised."""
    tmp = path.with_suffix(".tmp")
    try:
        # Through a Python file object, so a failed write surfaces as the OSError it is (ENOSPC…);
        # given a path, torch.save reports it as an opaque RuntimeError from its zip writer.
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def load(path: Path, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_save` (tensors only, no pickled code)."""
    return torch.load(path, map_location=device, weights_only=True)


def save_model(obj: dict, path: Path, sink: Sink, step: int) -> None:
    """Write the trained model; while the disk refuses, wait and try again (an operator may be
    freeing space), then give up with a message that says what to do."""
    for i, wait in enumerate((*MODEL_SAVE_WAITS_S, None)):
        try:
            atomic_save(obj, path)
            return
        except OSError as e:
            if wait is None:
                raise StorageError(
                    Message(
                        "error.model_save",
                        path=str(path),
                        why=disk_message(e),
                        retries=i,
                        seconds=sum(MODEL_SAVE_WAITS_S),
                    )
                ) from e
            if i == 0:
                sink.event(
                    step,
                    EventKind.CHECKPOINT_FAILED,
                    Message(
                        "event.model_save_retry",
                        why=disk_message(e),
                        seconds=sum(MODEL_SAVE_WAITS_S),
                    ),
                    {"error": disk_message(e)},
                )
            time.sleep(wait)


def due(*, final: bool, failed: bool, saved: bool, since_s: float, every_s: float) -> bool:
    """Whether the loop writes a checkpoint after this epoch: the last epoch's always (what the
    run ends on), the first one (``saved`` False: a resume has something to start from), the
    one after a failed write, and otherwise once ``every_s`` seconds have passed since the
    newest one."""
    return final or failed or not saved or since_s >= every_s


def resume_point(epoch: int) -> Message:
    """Where a resume would start, given the epoch the newest checkpoint on disk holds."""
    return Message("resume.after_epoch", epoch=epoch) if epoch else Message("resume.beginning")


def disk_message(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__
