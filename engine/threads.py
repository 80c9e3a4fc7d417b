"""How many intra-op threads a run gets: the thread policy.

torch starts one intra-op thread per core. Two processes that each do that on the same cores
fight for them: on a 2-core machine two small runs at torch's default ran 13× slower together
than the same two runs at one thread each (docs/operations.md, "Threads"). Small models gain
little from a second thread even alone, because each step is too short to split. So:

- a run uses at most the cores it owns: all of the machine's (``trainboard train``), or its
  worker slot's share (``trainboard up`` gives each CPU slot ``TRAINBOARD_CORES``);
- a run whose training step is small (:data:`SMALL_STEP_WORK` multiply-adds) gets 1 thread;
- ``TRAINBOARD_THREADS`` / ``--threads`` overrides both.

The engine never reads the environment: callers build a :class:`ThreadPolicy` with
:meth:`ThreadPolicy.from_env` and pass it to ``train`` / ``run_training``. No torch import at
module level (the worker builds a policy without loading torch).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Multiply-adds per training step (forward, for one batch) below which one thread is as fast as
# several: measured with bench/engine.py on the 2-core build machine, where the MLP case
# (200k×64 rows, 256-256, batch 128: ~1e7) ran fastest on 1 thread and the LSTM case (T=50,
# 128 units, batch 64: ~2e8) on 2. Set between the two, an order of magnitude from each.
SMALL_STEP_WORK = 5e7
MAX_THREADS = 256


def cores_available() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def step_work(n_params: int, batch_size: int, input_shape: Sequence[int], modality: str) -> float:
    """A rough multiply-add count of one forward pass over one batch: parameters × rows ×
    positions the weights are applied at (time steps of a sequence, pixels of an image)."""
    if modality == "sequence":
        positions = input_shape[0]
    elif modality == "image":
        positions = math.prod(input_shape[1:])
    else:
        positions = 1
    return float(n_params) * batch_size * max(1, positions)


@dataclass(frozen=True)
class ThreadPolicy:
    cores: int  # the cores this run owns
    override: int | None = None  # TRAINBOARD_THREADS / --threads

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, threads: int | None = None) -> ThreadPolicy:
        """``TRAINBOARD_CORES`` (a worker slot's share; default: every core this process may
        use) and ``TRAINBOARD_THREADS`` (or ``threads``, from ``--threads``) as the override."""
        cores = _positive(environ.get("TRAINBOARD_CORES"), "TRAINBOARD_CORES") or cores_available()
        if threads is not None and threads < 1:
            raise ValueError(f"--threads must be at least 1, got {threads}")
        override = (
            threads
            if threads is not None
            else _positive(environ.get("TRAINBOARD_THREADS"), "TRAINBOARD_THREADS")
        )
        return cls(cores=cores, override=override)

    def threads_for(self, work: float) -> int:
        """Threads for a run whose step is ``work`` multiply-adds (see :func:`step_work`)."""
        if self.override is not None:
            return max(1, min(self.override, MAX_THREADS))
        if work < SMALL_STEP_WORK:
            return 1
        return max(1, min(self.cores, MAX_THREADS))

    def why(self, threads: int, work: float) -> str:
        if self.override is not None:
            return f"{threads} thread(s): set by TRAINBOARD_THREADS / --threads"
        if work < SMALL_STEP_WORK:
            return f"1 thread: a small model (~{work:.2g} multiply-adds a step) gains nothing from more"
        return f"{threads} thread(s): the cores this run owns"


def _positive(value: str | None, name: str) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of threads, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return n


def apply(threads: int) -> None:
    """Set torch's intra-op threads for this process."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
