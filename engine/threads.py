"""How many intra-op threads a run gets: the thread policy.

torch starts one intra-op thread per core. Two processes that each do that on the same cores
fight for them: on a 2-core machine two small runs at torch's default ran 13× slower together
than the same two runs at one thread each (docs/operations.md, "Threads"). Small models gain
little from a second thread even alone, because each step is too short to split. So:

- a run uses at most the cores it owns: all of the machine's (``trainboard train``), or its
  worker slot's share (``trainboard up`` gives each CPU slot ``TRAINBOARD_CORES``);
- runs on one machine share the cores they own: each announces itself in a small folder (one
  file per process, :class:`ThreadGovernor`) and uses ``cores // runs`` threads, re-checked twice
  a second, so a second ``trainboard train`` started beside a first makes both drop to
  their share instead of both spinning on every core;
- a run whose training step is tiny (:data:`SMALL_STEP_WORK` multiply-adds) gets 1 thread;
- ``TRAINBOARD_THREADS`` / ``--threads`` overrides all of it.

The engine never reads the environment: callers build a :class:`ThreadPolicy` with
:meth:`ThreadPolicy.from_env` and pass it to ``train`` / ``run_training``. No torch import at
module level (the worker builds a policy without loading torch).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Multiply-adds per training step (forward, for one batch) below which a second thread does not
# pay for its synchronisation. Measured with bench/engine.py on the 2-core build machine: the MLP
# case (64-256-256-10, batch 128: ~1e7) ran 1.27× faster on 2 threads than on 1, alone; a
# 13-32-3 MLP at batch 32 (~2e4) ran no faster. Set well below the first.
SMALL_STEP_WORK = 1e6
RECHECK_S = 0.5  # how often a run looks again at how many runs share its cores (a few stat calls)
MAX_THREADS = 256


def cores_available() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def step_work(n_params: int, batch_size: int, input_shape: Sequence[int], kind: str) -> float:
    """A rough multiply-add count of one forward pass over one batch: parameters × rows ×
    positions the weights are applied at (time steps for an LSTM/GRU, pixels for a CNN; an MLP
    applies each weight once per row, whatever the input's shape)."""
    if kind in ("lstm", "gru"):
        positions = input_shape[0]
    elif kind == "cnn":
        positions = math.prod(input_shape[1:])
    else:
        positions = 1
    return float(n_params) * batch_size * max(1, positions)


@dataclass(frozen=True)
class ThreadPolicy:
    cores: int  # the cores this run owns
    override: int | None = None  # TRAINBOARD_THREADS / --threads
    share_dir: Path | None = None  # where the runs of this machine announce themselves

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
        # One folder per user and machine: every Trainboard run process on this host, from the
        # CLI or from any worker slot, announces itself there.
        base = environ.get("TRAINBOARD_RUNTIME_DIR") or tempfile.gettempdir()
        share_dir = Path(base) / f"trainboard-runs-{os.getuid()}"
        return cls(cores=cores, override=override, share_dir=share_dir)

    def threads_for(self, work: float, runs: int = 1) -> int:
        """Threads for a run whose step is ``work`` multiply-adds (see :func:`step_work`) while
        ``runs`` runs (itself included) share the cores."""
        if self.override is not None:
            return max(1, min(self.override, MAX_THREADS))
        if work < SMALL_STEP_WORK:
            return 1
        return max(1, min(self.cores // max(1, runs), MAX_THREADS))


class ThreadGovernor:
    """Applies a :class:`ThreadPolicy` for one run, and keeps it right while other runs come and
    go on the same machine. Written here because neither torch nor the OS divides cores between
    cooperating processes: torch's OpenMP threads spin-wait, so two processes with one thread
    per core each ran 0.58× as fast together as one alone (bench/engine.py)."""

    _seq = 0

    def __init__(self, policy: ThreadPolicy, work: float) -> None:
        self.policy, self.work = policy, work
        self._me: Path | None = None
        if policy.share_dir is not None and policy.override is None and work >= SMALL_STEP_WORK:
            try:
                policy.share_dir.mkdir(parents=True, exist_ok=True)
                ThreadGovernor._seq += 1  # one process may train more than one run
                self._me = policy.share_dir / f"{os.getpid()}.{ThreadGovernor._seq}"
                self._me.touch()
            except OSError:
                self._me = None  # no shared folder: fall back to the cores this run owns
        self._next = 0.0
        self.threads = 0
        self.tick(force=True)

    def _runs(self) -> int:
        if self._me is None:
            return 1
        live = 0
        for f in self._me.parent.iterdir():
            pid = f.name.split(".")[0]
            if pid.isdigit() and _alive(int(pid)):
                live += 1
            else:
                f.unlink(missing_ok=True)  # a run that died without cleaning up
        return max(1, live)

    def tick(self, force: bool = False) -> None:
        """Cheap between steps: looks at the other runs at most every :data:`RECHECK_S`."""
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + RECHECK_S
        n = self.policy.threads_for(self.work, self._runs())
        if n != self.threads:
            apply(n)
            self.threads = n

    def close(self) -> None:
        if self._me is not None:
            self._me.unlink(missing_ok=True)
            self._me = None

    def why(self) -> str:
        if self.policy.override is not None:
            return f"{self.threads} thread(s): set by TRAINBOARD_THREADS / --threads"
        if self.work < SMALL_STEP_WORK:
            return f"1 thread: a small model (~{self.work:.2g} multiply-adds a step) gains nothing from more"
        return f"{self.threads} thread(s): the cores this run owns, shared with the runs beside it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
