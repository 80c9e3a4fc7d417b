"""The warm spare runner a worker keeps ready, and starting a run's process.

A spare is a runner process (``python -m jobs.queue.runner --standby``) that has already
imported the engine and waits on stdin for a run id. Each spare still runs exactly one run and
exits, so "a fresh process per run" holds; it only moves the seconds of ``import torch`` off the
critical path. The next spare starts as soon as a run is handed over, so it is ready when the
run ends even in a backlog (it imports torch but never touches CUDA until it gets a run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from jobs.queue import presence

# A warm spare runner per worker: a runner process that has already imported the engine and
# waits on stdin for a run id. Each spare still runs exactly one run and exits, so "a fresh
# process per run" holds; it only moves the seconds of `import torch` off the critical path.
# The next spare starts as soon as a run is handed over, so it is ready when the run ends
# even in a backlog (it imports torch but never touches CUDA until it gets a run).
_spare: subprocess.Popen | None = None
_spare_lock = threading.Lock()


def _spawn_runner() -> subprocess.Popen:
    me = presence.current()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.queue.runner",
            "--standby",
            "--worker",
            me.name,
            "--device",
            me.device,
            "--parent-pid",
            str(os.getpid()),
        ],
        stdin=subprocess.PIPE,
    )


def prepare() -> None:
    """Start a spare runner unless one is waiting (off with TRAINBOARD_WARM_RUNNER=0)."""
    global _spare
    if os.environ.get("TRAINBOARD_WARM_RUNNER", "1") == "0":
        return
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _spawn_runner()


def discard() -> None:
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None and spare.poll() is None:
        spare.stdin.close()  # it exits on EOF


def start_runner(run_id: int) -> subprocess.Popen:
    global _spare
    with _spare_lock:
        proc, _spare = _spare, None
    for _ in range(2):
        if proc is None or proc.poll() is not None:
            proc = _spawn_runner()
        try:
            proc.stdin.write(f"{run_id}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            proc = None  # the spare died meanwhile; start a fresh one
            continue
        if not presence.current().shutting_down.is_set():
            prepare()
        return proc
    raise OSError("the run's process exited before it got its run id")
