"""Starting a worker, and what a worker does besides running tasks.

Pool: ``threads`` with a concurrency of one. The task itself does no training: it claims the
run, starts ``python -m jobs.queue.runner`` (a fresh process per run, see ``jobs.queue.runner``), watches it
and heartbeats. A thread pool keeps the worker's consumer responsive while a run goes on (so
``celery inspect ping`` answers, and a warm shutdown can tell the run to checkpoint), and the
worker process never imports torch, so CUDA is never initialised in a process that forks.
(The alternative, prefork with ``worker_max_tasks_per_child=1``, forks the worker, re-runs a
task whose child crashed through ``reject_on_worker_lost``, and cannot watch its own run.)

Besides tasks, each worker runs one background thread that
- writes the worker's row in the ``workers`` table (host, device, GPU, current run, last seen),
  so the UI sees who is alive without asking the broker;
- runs the reaper (``jobs.queue.reaper.reap_once``, which also steps the sweeps) at start and
  then every ``reap_interval_s``.

At start it also sweeps upload files a dead dashboard left behind (``jobs.datasets.ingest.sweep_tmp``).
"""

from __future__ import annotations

import logging
import threading
import time

from celery import signals

from jobs.queue import presence, spare
from jobs.queue.celery_app import current_app, settings
from jobs.queue.reaper import reap_once
from jobs.store.db import connect

# Re-exported for the CLI: the worker's device helpers live with its identity.
parse_device = presence.parse_device
visible_gpus = presence.visible_gpus

log = logging.getLogger(__name__)


def _housekeeping() -> None:
    s = settings()
    db = connect()  # this thread's own connection
    next_reap = 0.0
    while not presence.current().shutting_down.is_set():
        try:
            presence.current().report(db)
            if time.monotonic() >= next_reap:
                reap_once(db, current_app())
                next_reap = time.monotonic() + s.reap_interval_s
        except Exception:  # keep the thread alive through a locked DB or a broker outage
            log.exception("worker housekeeping failed; retrying")
        presence.current().shutting_down.wait(min(s.heartbeat_s, s.reap_interval_s))


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **_) -> None:
    spare.prepare()
    _sweep_uploads()
    from jobs import remote

    if remote.enabled():
        # On another host: no database here; presence and records go to the server, whose
        # ingest runs the reaper (jobs.remote.worker).
        from jobs.remote.worker import flusher

        flusher()
    else:
        threading.Thread(target=_housekeeping, name="trainboard-housekeeping", daemon=True).start()
    log.info(
        "trainboard worker %s ready (device %s, queues %s)",
        presence.current().name,
        presence.current().device,
        ",".join(presence.current().queues),
    )


@signals.worker_shutting_down.connect
def _on_shutting_down(**_) -> None:
    # The running task sees this and asks its run to checkpoint and stop (jobs.queue.tasks).
    presence.current().shutting_down.set()
    spare.discard()


@signals.worker_shutdown.connect
def _on_shutdown(**_) -> None:
    from jobs import remote

    if remote.enabled():
        from jobs.remote.worker import flusher

        flusher().close(final_status="stopped")
        return
    try:
        presence.current().report(status="stopped")
    except Exception:
        log.exception("could not mark worker %s stopped", presence.current().name)


def _sweep_uploads() -> None:
    """Upload files left in the data directory by a dashboard that died while checking them."""
    from jobs.datasets.ingest import sweep_tmp

    try:
        sweep_tmp()
    except OSError:
        log.exception("could not sweep leftover upload files")


def worker_argv(device: str, *, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    s = settings()
    device = presence.parse_device(device)
    queues = ",".join(s.queue_name(q) for q in presence.queues_for(device))
    return [
        "worker",
        "--pool=threads",
        "--concurrency=1",
        f"--hostname={name or presence.default_name(device)}",
        f"--queues={queues}",
        # Presence lives in the database; Celery's own gossip, mingle and event heartbeats
        # would only add broker traffic and seconds of start-up.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--loglevel={loglevel}",
    ]


def run_worker(device: str = "cpu", *, name: str | None = None, loglevel: str = "INFO") -> None:
    """Run a worker in this process until it is stopped (``trainboard worker``)."""
    device = presence.parse_device(device)
    name = name or presence.default_name(device)
    presence.set_current(presence.make_presence(device, name))
    current_app().worker_main(worker_argv(device, name=name, loglevel=loglevel))
