"""Watching a run's process while it trains: the one loop a local worker
(:mod:`jobs.queue.tasks`, heartbeats in the store) and a remote one (:mod:`jobs.remote.worker`,
heartbeats to the server) share. They differ only in how they heartbeat and learn of a cancel,
which they pass in.

Each ``heartbeat_s`` while the process lives: heartbeat; a run taken from this worker (the
reaper gave it away, or the server handed it back) is stopped at once. Then, once: a warm
shutdown sends SIGTERM, so the engine checkpoints and the run goes back to the queue
(``released``); a cancel lets the engine stop itself (it sees the flag). Either way, a process
still alive ``STOP_GRACE_S`` later is killed.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

# After a cancel (or shutdown) request, how long the engine gets to checkpoint and stop before
# its process is terminated. The engine checks every cancel_poll_s, so this is only a backstop.
STOP_GRACE_S = 60.0


class Beat(Enum):
    """What a heartbeat learned."""

    HELD = "held"  # the run is still this worker's: go on
    ENDING = "ending"  # the runner has just recorded the outcome and is exiting: wait for it
    LOST = "lost"  # taken from this worker: stop the process at once


@dataclass(frozen=True)
class Watched:
    """How the watch ended: the process's exit code (None: the run was lost and the process
    killed), and whether a warm shutdown asked it to hand the run back."""

    code: int | None
    released: bool


def watch(
    child: subprocess.Popen,
    *,
    heartbeat_s: float,
    beat: Callable[[], Beat],
    cancelled: Callable[[], bool],
    shutting_down: threading.Event,
) -> Watched:
    """Wait for ``child`` (the run's process), heartbeating with ``beat`` every
    ``heartbeat_s``; ``cancelled`` is asked after a heartbeat until a stop has been sent."""
    stop_sent_at: float | None = None
    released = False
    while True:
        try:
            child.wait(timeout=heartbeat_s)
            return Watched(child.returncode, released)
        except subprocess.TimeoutExpired:
            pass
        got = beat()
        if got is Beat.LOST:
            child.kill()
            child.wait()
            return Watched(None, released)
        if got is Beat.ENDING:
            continue
        if stop_sent_at is None:
            if shutting_down.is_set():
                # Warm shutdown: ask for a checkpoint, then hand the run back.
                child.send_signal(signal.SIGTERM)
                stop_sent_at, released = time.monotonic(), True
            elif cancelled():
                stop_sent_at = time.monotonic()  # the engine sees the flag itself
        elif time.monotonic() - stop_sent_at > STOP_GRACE_S:
            child.kill()
