"""The one task: ``train(run_id)``.

It takes an id only and is idempotent: the database decides. A message is a turn for one queued
run of its queue, taken in a fair order between users (``registry.fair_queue``): with A's 100
runs ahead of B's one, B's run starts next, whichever message arrives. A message whose own run
is over or held by another worker (a redelivery) starts the next fair run if one waits, and does
nothing otherwise. The task claims the run, starts a fresh process for it
(``jobs.queue.runner``), heartbeats while it lives, and records a failure if the process dies
without recording an outcome, saying what was kept and how to resume.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import time

from celery import shared_task
from celery.exceptions import Reject

from engine.limits import CHECKPOINT
from engine.vocab import TERMINAL
from jobs.errors import IllegalTransition, LostClaim, RunNotFound
from jobs.queue import presence, spare
from jobs.queue.celery_app import TRAIN_TASK, settings
from jobs.queue.checkpoints import checkpoint_epoch
from jobs.queue.runner import EXIT_RELEASED, runner_log
from jobs.queue.sends import send_run
from jobs.queue.watch import Beat, watch
from jobs.runs import quotas
from jobs.store import registry
from jobs.store.db import connect, run_dir

log = logging.getLogger(__name__)


@shared_task(name=TRAIN_TASK, ignore_result=True)
def train(run_id: int) -> str:
    return supervise(int(run_id))


def _fresh(run, stale_after_s: float) -> bool:
    hb = run["heartbeat_at"] or run["started_at"] or 0.0
    return time.time() - hb < stale_after_s


def supervise(run_id: int) -> str:
    """Claim ``run_id``, run it in a child process, watch it; returns what happened (for logs)."""
    from jobs import remote

    if remote.enabled():  # a worker on another host: the same steps through the server
        from jobs.remote.worker import supervise as supervise_remote

        return supervise_remote(run_id, explain_exit=exit_reason)
    db = connect()
    try:
        return _supervise(db, run_id)
    finally:
        db.close()


def _supervise(db, run_id: int) -> str:
    s = settings()
    me = presence.current()
    if me.shutting_down.is_set():
        # A message that arrives during a warm shutdown — typically the run this very worker
        # just handed back — goes back to the broker for the next worker; claiming it here
        # would start a run that the shutdown then kills.
        raise Reject(f"worker {me.name} is shutting down", requeue=True)
    try:
        run = registry.get_run(db, run_id)
    except RunNotFound:
        log.warning("run %s does not exist; dropping its message", run_id)
        return "missing"
    if run["status"] in TERMINAL:
        skipped = f"skipped: already {run['status']}"
    elif run["status"] == "running" and _fresh(run, s.stale_after_s):
        skipped = f"skipped: running on {run['worker']}"
    else:
        # Running with a stale heartbeat: the reaper marks it lost and sends it again.
        skipped = f"skipped: run {run_id} is {run['status']}"
    # A lost run's own message resumes it; otherwise the message is a turn for the next run
    # in the fair order of its queue (often this very run).
    # In team mode one member holds at most TRAINBOARD_MAX_RUNNING_PER_USER slots at once.
    cap = quotas.max_running_per_user(db)
    candidates = (
        [run_id]
        if run["status"] == "lost"
        else registry.fair_queue(db, run["queue"], max_running=cap)
    )
    claimed = None
    for candidate in candidates:
        try:
            registry.claim_run(db, candidate, worker=me.name, device=me.device, max_running=cap)
        except IllegalTransition:
            continue  # another worker took it a moment ago (or its owner is at the cap): next
        claimed = candidate
        break
    if claimed is None:
        return skipped
    if claimed != run_id:
        log.info("message for run %s: run %s is next in the fair order", run_id, claimed)
    run_id = claimed

    me.current_run = run_id
    try:
        me.report(db)
        return _watch(db, run_id, s)
    finally:
        me.current_run = None
        me.report(db)
        _next_turn(db, run["queue"])
        _step_sweep(db, run_id)


def _step_sweep(db, run_id: int) -> None:
    """The run was a sweep's trial: its sweep pauses, promotes or queues the next trial now
    (``jobs.sweeps.controller``), not at the next housekeeping pass. Never fails the task."""
    try:
        from jobs.sweeps.controller import on_run_over

        on_run_over(db, run_id)
    except Exception:  # the housekeeping pass steps the sweep again
        log.exception("stepping the sweep of run %s failed", run_id)


def _next_turn(db, queue: str) -> None:
    """A slot came free: send a turn for the next fair run of the queue, if one waits. A run
    passed over while its owner was at the running cap has no message of its own left (it was
    used as a turn for someone else's run), and must not wait for the reaper's re-send."""
    cap = quotas.max_running_per_user(db)
    if cap is None:
        return  # no cap: every queued run still has its own message
    waiting = registry.fair_queue(db, queue, limit=1, max_running=cap)
    if waiting:
        send_run(db, waiting[0])


def _watch(db, run_id: int, s) -> str:
    me = presence.current()
    log_path = runner_log(run_id)
    try:
        child = spare.start_runner(run_id)
    except OSError as e:
        registry.fail_run(db, run_id, f"could not start the run's process: {e}")
        return "failed"

    def beat() -> Beat:
        try:
            registry.heartbeat(db, run_id, worker=me.name)
        except LostClaim as e:
            # Terminal: the runner just recorded the outcome. Otherwise the reaper gave the
            # run away (we were too slow to heartbeat).
            return Beat.ENDING if e.current in TERMINAL else Beat.LOST
        except sqlite3.OperationalError as e:
            # The store could not take this beat (its disk full, a lock held too long): keep
            # watching and beat again next time. Raising here ended the task and left the
            # run's process running unwatched; the reaper then gave the run away, and the
            # orphan recorded a failure on the new attempt (the disk-full fault test, once).
            log.warning("run %s: heartbeat not written (%s); trying again", run_id, e)
        return Beat.HELD

    got = watch(
        child,
        heartbeat_s=s.heartbeat_s,
        beat=beat,
        cancelled=lambda: registry.cancel_requested(db, run_id),
        shutting_down=me.shutting_down,
    )
    if got.code is None:
        return "lost"
    return _conclude(db, run_id, got.code, released=got.released, log_path=log_path)


def _conclude(db, run_id: int, code: int, *, released: bool, log_path) -> str:
    run = registry.get_run(db, run_id)
    if run["status"] != "running" or run["worker"] != presence.current().name:
        return run["status"]  # the runner recorded the outcome
    if released and code == EXIT_RELEASED:
        # The engine saved a checkpoint on the way out: back to the queue without using up an
        # attempt, and the next worker resumes from there.
        registry.release_run(db, run_id)
        send_run(db, run_id)
        return "released"
    if registry.cancel_requested(db, run_id):
        registry.cancel_run(db, run_id)
        return "cancelled"
    registry.fail_run(db, run_id, exit_reason(code, log_path, run_id=run_id))
    return "failed"


def exit_reason(code: int, log_path=None, *, run_id: int | None = None) -> str:
    """Why a run's process ended without recording an outcome, and what was kept."""
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        what = f"the run's process was killed by {name}"
        if sig == signal.SIGKILL:
            what += " (the system's out-of-memory killer sends this signal: the run may have needed more memory than the machine had)"
    else:
        tail = ""
        if log_path is not None and log_path.exists():
            lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                tail = f": {lines[-1].strip()}"
        what = f"the run's process exited with code {code}{tail}"
    return what if run_id is None else f"{what}. {kept(run_id)}"


def kept(run_id: int) -> str:
    """What a run that stopped keeps on disk, and how to go on from it."""
    epoch = checkpoint_epoch(run_dir(run_id, settings().home) / CHECKPOINT)
    if epoch is None:
        return (
            "Nothing was kept: it stopped before its first checkpoint. Queue it again (with a "
            "smaller model, batch or data.max_rows if memory ran out)."
        )
    at = f"after epoch {epoch}" if epoch else "from within its first epoch"
    return (
        f"Kept: the checkpoint {at}. Resume it from there with `trainboard resume {run_id}` "
        "(add --set train.epochs=N to change its length) or with Resume on the run's page."
    )
