"""The loop that watches a run's process (jobs.queue.watch), shared by the local and the remote
worker, on real child processes: each way a watch ends. The workers themselves, with real
Celery, Redis and a server, are in test_queue*, test_reliability and test_remote*."""

from __future__ import annotations

import subprocess
import sys
import threading

from jobs.queue import watch as watching
from jobs.queue.watch import Beat, Watched, watch

# Exits 3 on SIGTERM (as the engine does after checkpointing), else sleeps for ``argv[1]`` s.
CHILD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


def _child(seconds: float) -> subprocess.Popen:
    """A child whose SIGTERM handler is in place (it said so) before the watch starts."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    return child


def _watch(child, beats=None, cancel=False, shutting=False):
    asked = []
    seq = iter(beats or [])
    stop = threading.Event()
    if shutting:
        stop.set()

    def cancelled() -> bool:
        asked.append(True)
        return cancel

    got = watch(
        child,
        heartbeat_s=0.05,
        beat=lambda: next(seq, Beat.HELD),
        cancelled=cancelled,
        shutting_down=stop,
    )
    return got, asked


def test_a_process_that_ends_by_itself_gives_its_exit_code():
    got, asked = _watch(_child(0.3))
    assert got == Watched(0, False) and asked, "a cancel is asked after each heartbeat"


def test_a_lost_run_is_killed_at_once():
    child = _child(30)
    got, _asked = _watch(child, [Beat.HELD, Beat.LOST])
    assert got == Watched(None, False) and child.returncode is not None


def test_a_warm_shutdown_asks_for_a_checkpoint_and_hands_the_run_back():
    got, asked = _watch(_child(30), shutting=True)
    assert got == Watched(3, True) and not asked


def test_a_cancel_lets_the_engine_stop_then_kills_it_after_the_grace(monkeypatch):
    monkeypatch.setattr(watching, "STOP_GRACE_S", 0.3)
    got, asked = _watch(_child(30), cancel=True)
    assert got.code is not None and got.code < 0 and not got.released  # killed
    assert len(asked) == 1, "asked until a stop is sent, then no more"


def test_a_run_whose_outcome_is_being_recorded_is_waited_for_not_stopped():
    got, asked = _watch(_child(0.4), [Beat.ENDING] * 100, cancel=True)
    assert got == Watched(0, False) and not asked
