"""What a run kept on disk, read without torch: the epoch its checkpoint holds.

The worker never imports torch (``jobs.queue.worker``), yet when a run's process is killed it
must say what was kept ("the checkpoint after epoch 3") and a resume must refuse to "go on" to
fewer epochs than the checkpoint holds. ``torch.save`` writes a zip whose ``data.pkl`` is a
pickle of the checkpoint dict with the tensors stored beside it; this module reads that pickle
with an unpickler that builds nothing but plain containers: every class it names (tensors,
storages) becomes an inert placeholder, and no code from the file is ever run.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

MAX_PICKLE_BYTES = 64 << 20


class _Inert:
    """Stands in for every object the pickle names (tensors, storages, torch.Size...)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass


class _Skeleton(pickle.Unpickler):
    _SAFE = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
    }

    def find_class(self, module: str, name: str) -> Any:
        return self._SAFE.get((module, name), _Inert)

    def persistent_load(self, pid: Any) -> Any:
        return _Inert()


def read_skeleton(path: Path) -> dict[str, Any] | None:
    """The checkpoint dict with placeholders for tensors; None when it can't be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                return None
            info = zf.getinfo(names[0])
            if info.file_size > MAX_PICKLE_BYTES:
                return None
            with zf.open(info) as f:
                obj = _Skeleton(f).load()
    except Exception:  # a torn or foreign file: nothing to report, the engine decides on resume
        return None
    return obj if isinstance(obj, dict) else None


def checkpoint_epoch(path: Path) -> int | None:
    """The last complete epoch ``checkpoint.pt`` holds (0: stopped during the first), or None
    when there is no readable checkpoint."""
    skeleton = read_skeleton(Path(path)) if Path(path).exists() else None
    state = skeleton.get("state") if skeleton else None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    return epoch if isinstance(epoch, int) else None
