"""The reaper: lost runs back to the queue, and queued runs back into the broker.

Every worker runs :func:`reap_once` when it starts (so a restarted worker picks up lost work at
once) and then every ``reap_interval_s`` (``jobs.queue.worker``). Several reapers may run at the same
time: every step is a guarded UPDATE (``jobs.store.registry``) or a compare-and-set on the send
record, so exactly one of them acts on a run and the others find nothing to do.

1. A running run whose heartbeat is older than ``stale_after_s`` is marked ``lost``.
2. A lost run goes back to ``queued`` while it has attempts left (else ``failed``, saying so)
   and is sent again; the next attempt resumes from the run's last checkpoint.
3. A queued run that was never sent (the broker was down at submit), or whose message vanished
   (sent over ``resend_after_s`` ago and its queue in the broker is now empty: a broker restarted
   without persistence, a lost queue file), is sent again. A duplicate message is harmless: the
   task claims the run with a guarded UPDATE, and the loser does nothing.
4. Every sweep with work left takes a step (``jobs.sweeps.controller``, under its own lease).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import sqlite_utils
from celery import Celery

from jobs.errors import IllegalTransition
from jobs.queue.celery_app import current_app
from jobs.queue.sends import broker_errors, claim_send, resend_candidates, send_run
from jobs.store import registry

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    lost: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)
    gave_up: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    broker_down: bool = False


def queue_size(app: Celery, queue: str) -> int:
    """Messages waiting in ``queue`` (not counting ones a worker holds)."""
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)
        ok = conn.default_channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        return ok.message_count


def reap_once(db: sqlite_utils.Database, app: Celery | None = None) -> ReapReport:
    app = app or current_app()
    s = app.trainboard_settings
    report = ReapReport()

    for run in registry.stale_runs(db, s.stale_after_s):
        try:
            registry.mark_lost(
                db,
                run["id"],
                f"no heartbeat for {s.stale_after_s:g} s from worker {run['worker']} "
                f"(attempt {run['attempt']} of {run['max_attempts']})",
            )
        except IllegalTransition:
            continue  # it finished, or another reaper got there first
        report.lost.append(run["id"])
        log.warning("run %s lost (worker %s stopped heartbeating)", run["id"], run["worker"])

    for run in registry.list_runs(db, status="lost", limit=1000):
        try:
            after = registry.requeue_run(db, run["id"])
        except IllegalTransition:
            continue
        if after["status"] == "queued":
            report.requeued.append(run["id"])
            if send_run(db, run["id"], app):
                report.sent.append(run["id"])
        else:
            report.gave_up.append(run["id"])

    _resend_queued(db, app, report)
    _step_sweeps(db)
    return report


def _step_sweeps(db: sqlite_utils.Database) -> None:
    """Every sweep with work left takes a step (``jobs.sweeps.controller``): after a restart, a
    pause or a resume, or when a trial's own step found the lease taken. Here, so that every
    process that reaps (the workers beside the store, the ingest of remote workers) keeps the
    sweeps going; Optuna is imported only once a sweep exists. Never fails the reaper."""
    from jobs.store.sweeps import active_sweep_ids

    try:
        if active_sweep_ids(db):
            from jobs.sweeps.controller import step_all

            step_all(db)
    except Exception:  # the next pass steps them again
        log.exception("stepping the sweeps failed")


def _resend_queued(db: sqlite_utils.Database, app: Celery, report: ReapReport) -> None:
    s = app.trainboard_settings
    now = time.time()
    # A just-created run is being sent by its submitter: leave it a moment.
    young = now - max(5.0, 2 * s.send_timeout_s)
    rows = resend_candidates(db, created_before=young, sent_before=now - s.resend_after_s)
    empty: dict[str, bool] = {}
    for row in rows:
        needs_send = row["sent_at"] is None or row["last_error"] is not None
        if not needs_send:
            # Sent long ago and still queued: only re-send when its queue holds nothing, so a
            # long backlog is not flooded with copies.
            qname = s.queue_name(row["queue"])
            if qname not in empty:
                try:
                    empty[qname] = queue_size(app, qname) == 0
                except broker_errors(app) as e:
                    log.warning("broker unreachable while checking queue %s: %s", qname, e)
                    report.broker_down = True
                    return
            if not empty[qname]:
                continue
        if not claim_send(db, row["id"], row["last_try_at"], now):
            continue  # another reaper is sending it
        if send_run(db, row["id"], app):
            report.sent.append(row["id"])
            log.info("run %s (re)sent to the broker", row["id"])
        else:
            report.broker_down = True
            return  # no point trying the others until the broker answers
