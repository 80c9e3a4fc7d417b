"""One run in its own process: ``python -m jobs.queue.runner RUN_ID --worker NAME --device DEV``.

The Celery task (``jobs.queue.tasks.train``) claims the run and starts this process; this process
loads the run's config and dataset, runs the engine with the metric writer as sink, and records
the outcome. A fresh process per run means GPU memory is fully released when it exits, a crash
(segfault, OOM kill) takes down only this run, and CUDA is only ever initialised here, never
in the worker that starts the processes.

This process writes the outcome itself (it has the summary). If it dies without doing so, the
task that watches it records a failure from the exit code.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from engine.messages import Message
from jobs.queue.celery_app import settings
from jobs.store.channel import StoreChannel
from jobs.store.db import run_dir

PR_SET_PDEATHSIG = 1
# Exit code for "stopped because the worker shuts down": the worker hands the run back to the
# queue and the next attempt resumes from the checkpoint the engine saved on the way out.
EXIT_RELEASED = 75
_released = False


def runner_log(run_id: int) -> Path:
    """Where a run's process writes its output (the worker quotes its last line on a crash)."""
    return run_dir(run_id, settings().home) / "runner.log"


def _on_sigterm(signum, frame) -> None:
    global _released
    _released = True


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the worker that started it dies.

    A SIGKILLed worker must not leave an orphan that keeps training (and writing metrics) while
    the reaper hands the run to another worker; the new attempt resumes from the last
    checkpoint instead.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


class RunChannel(Protocol):
    """What a run's process needs from the store, and nothing more (``jobs.store.channel``):
    the spec and the cancel flag in; points, events, heartbeats and the outcome out."""

    def spec(self) -> dict[str, Any]: ...
    def dataset(self) -> dict[str, Any] | None: ...
    def cancel_requested(self) -> bool: ...
    def log(self, step: int, values: dict[str, float]) -> None: ...
    def event(
        self, step: int, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None: ...
    def flush(self, timeout: float = 30) -> None: ...
    def heartbeat(self, progress: float) -> None: ...
    def record(
        self, status: str, *, error: str | None = None, summary: dict | None = None
    ) -> str: ...


class RunSink:
    """The engine's sink (``engine.sink.Sink``) over a run channel."""

    def __init__(self, channel: RunChannel, timed_out: Any = None) -> None:
        self.channel = channel
        self.timed_out = timed_out or (lambda: False)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.channel.log(step, values)
        if any(k.startswith("val/") for k in values):
            # Validation points end an epoch, and the engine writes its checkpoint right
            # after them: commit first, so a run killed later never resumes from a checkpoint
            # whose epoch has no metrics in the store (a gap in the series).
            self.channel.flush(timeout=30)

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        stopped = isinstance(message, Message) and message.code == "event.stopped"
        if kind == "cancelled" and stopped and _released:
            # The engine stopped because the worker shuts down, not because anyone cancelled.
            kind = "released"
            how = Message("how.released")
            message = Message("event.released", stopped=Message.with_params(message, how=how))
        elif kind == "cancelled" and stopped and self.timed_out():
            message = Message.with_params(message, how=Message("how.time_limit"))
        self.channel.event(step, kind, message, data)

    def progress(self, fraction: float) -> None:
        self.channel.heartbeat(fraction)


def last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else repr(exc)


def execute(run_id: int, *, worker: str, device: str) -> str:
    """Run the engine on a claimed run and record its outcome; returns the final status."""
    # Imported here: the engine pulls in torch, which the worker process never needs.
    from engine.api import run_training
    from engine.config import Config
    from engine.data import DataError
    from engine.errors import EngineError
    from engine.faults import FaultHook
    from engine.threads import ThreadPolicy
    from jobs.runs import quotas

    s = settings()
    # The wall-time limit of this attempt (TRAINBOARD_MAX_RUN_HOURS): past it the engine stops
    # the run as it stops a cancelled one, with a checkpoint, and the status says why.
    limit_s = quotas.max_run_seconds()
    deadline = time.monotonic() + limit_s

    def timed_out() -> bool:
        return time.monotonic() > deadline

    folder = run_dir(run_id, s.home)
    folder.mkdir(parents=True, exist_ok=True)
    channel = _channel(run_id, worker, s)
    try:
        # Only the stored resolved spec is re-checked here: it was validated once at submit.
        spec = channel.spec()
        config = Config.from_dict(spec)
        # Nothing is read that the store did not register and this process did not check.
        from jobs.datasets.ingest import verify_for_run

        verify_for_run(spec, channel.dataset(), s.home)
        sink = RunSink(channel, timed_out)

        def should_stop() -> bool:
            return _released or channel.cancel_requested() or timed_out()

        with channel:
            if config.lr_find:
                # An LR range test (issue 23) is a run whose spec says so: the same claim,
                # cancel, heartbeat and record as a training run; its curves are metric points
                # and its suggestion is in the summary (docs/engine.md, "Finding a learning
                # rate"). 300 steps: no run folder or checkpoint.
                from engine.lr_find import run_lr_find

                result = run_lr_find(
                    config,
                    sink=sink,
                    should_stop=should_stop,
                    device=device,
                    threads=ThreadPolicy.from_env(os.environ),
                )
            else:
                result = run_training(
                    config,
                    sink=sink,
                    should_stop=should_stop,
                    run_dir=folder,
                    device=device,
                    resume=True,
                    # Test-only fault injection (slow steps, a simulated OOM), read from this
                    # process's environment in one place; inert when the variables are unset.
                    faults=FaultHook.from_env(os.environ),
                    # CPU threads from the cores this worker slot owns (TRAINBOARD_CORES, set
                    # by `trainboard up`) and the model's size; TRAINBOARD_THREADS overrides.
                    threads=ThreadPolicy.from_env(os.environ),
                )
    except (EngineError, DataError) as e:
        # Bad input: the message is meant for the user as it is.
        first = e.args[0] if e.args else None
        return channel.record("failed", error=first if isinstance(first, Message) else str(e))
    except Exception as e:
        traceback.print_exc()
        return channel.record("failed", error=last_line(e))
    if _released and result.status == "cancelled":
        return "released"
    if result.status == "cancelled" and timed_out() and not channel.cancel_requested():
        return channel.record("cancelled", error=quotas.time_limit_message(limit_s))
    # A cancelled run's message ("cancelled at step N; checkpoint saved") is in its events.
    error = None if result.status == "cancelled" else result.message
    return channel.record(result.status, error=error, summary=result.summary)


def _channel(run_id: int, worker: str, s) -> RunChannel:
    """The store on this host, or the spool a remote worker posts to its server."""
    from jobs import remote

    if remote.enabled():
        from jobs.remote.channel import RemoteChannel

        return RemoteChannel(run_id, home=s.home, cancel_poll_s=s.cancel_poll_s)
    return StoreChannel(
        run_id, worker=worker, heartbeat_s=s.heartbeat_s, cancel_poll_s=s.cancel_poll_s
    )


def _log_to_run_dir(run_id: int) -> None:
    """Send this process's stdout/stderr (and any C-level output) to ``runs/<id>/runner.log``."""
    path = runner_log(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.queue.runner")
    parser.add_argument("run_id", type=int, nargs="?", help="the run (else read from stdin)")
    parser.add_argument(
        "--standby",
        action="store_true",
        help="import the engine first, then read the run id from stdin",
    )
    parser.add_argument("--worker", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid if args.parent_pid is not None else os.getppid())
    # Ctrl-C in a terminal reaches the whole process group: the worker decides what happens
    # (it sends SIGTERM on a warm shutdown), so the run itself ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    run_id = args.run_id
    if run_id is None:
        if args.standby:
            # A warm spare: the seconds of importing torch are spent before a run arrives.
            # Importing torch does not initialise CUDA; that happens in the run. warm_up also
            # imports what a run loads on first use (the gradient check's sympy, the baselines'
            # scikit-learn). Then the heap is frozen: it lives as long as this
            # process, and the collector's full passes during the run and at exit need not
            # scan it (gc.freeze, made for processes that load and then wait; the collect
            # first, off the run's path, so no garbage of the imports is kept for good).
            from engine.api import warm_up

            warm_up()
            gc.collect()
            gc.freeze()
        line = sys.stdin.readline().strip()
        if not line:
            return 0  # the worker closed our stdin: no run for us
        run_id = int(line)
    _log_to_run_dir(run_id)
    status = execute(run_id, worker=args.worker, device=args.device)
    print(f"run {run_id}: {status}", file=sys.stderr)
    return EXIT_RELEASED if status == "released" else 0


if __name__ == "__main__":
    sys.exit(main())
