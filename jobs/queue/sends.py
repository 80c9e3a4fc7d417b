"""Sending a run id to the broker, and the ``queue_sends`` bookkeeping: the one owner of that table.

A run is created in the database first (status ``queued``) and only then sent, as its id alone.
Every send is recorded in ``queue_sends`` (when, how often, the last error). The reaper
(``jobs.queue.reaper``) uses it to send a run the broker refused at submit, and to re-send a
queued run whose message vanished (a broker restarted without persistence, a lost queue file).
It is its own small table (migration 2 in ``jobs.store.db``) because it is the queue's
bookkeeping, not part of a run's record; its statements are in ``jobs.store.sends``, and this
module is their only caller.
"""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils
from celery import Celery
from kombu.exceptions import OperationalError

from jobs.queue.celery_app import TRAIN_TASK, current_app
from jobs.store import registry, sends


def broker_errors(app: Celery) -> tuple[type[BaseException], ...]:
    """What a send raises when the broker is unreachable, for this app's transport."""
    conn = app.connection_for_write()  # not connected: only its transport's error classes
    try:
        return (OperationalError, OSError, *conn.connection_errors, *conn.channel_errors)
    finally:
        conn.release()


def send_run(db: sqlite_utils.Database, run_id: int, app: Celery | None = None) -> bool:
    """Send ``train(run_id)`` to the run's queue; record the outcome; True when it got through.

    Never raises for a broker outage: the failure is recorded and the reaper tries again.
    """
    app = app or current_app()
    run = registry.get_run(db, run_id)
    s = app.trainboard_settings
    now = time.time()
    try:
        # One retry, at once: a pooled connection may be stale after a broker restart, and
        # kombu reconnects on the retry. A broker that is really down fails fast either way.
        app.send_task(
            TRAIN_TASK,
            args=[run_id],
            queue=s.queue_name(run["queue"]),
            ignore_result=True,
            retry=True,
            retry_policy={
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.2,
            },
        )
    except broker_errors(app) as e:
        sends.record_failure(db, run_id, f"broker unreachable: {e}", now)
        return False
    sends.record_sent(db, run_id, now)
    return True


def send_info(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """The run's send record (``sent_at``, ``sends``, ``last_error``), None if never tried."""
    return next(db["queue_sends"].rows_where("run_id = ?", [run_id]), None)


def resend_candidates(
    db: sqlite_utils.Database, *, created_before: float, sent_before: float
) -> list[dict[str, Any]]:
    """Queued runs older than ``created_before`` that were never sent, whose last send failed,
    or that were sent before ``sent_before`` (their message may have vanished)."""
    return sends.resend_candidates(db, created_before=created_before, sent_before=sent_before)


def claim_send(
    db: sqlite_utils.Database, run_id: int, seen_try_at: float | None, now: float
) -> bool:
    """Compare-and-set on ``last_try_at``: True for exactly one of several racing reapers."""
    return sends.claim_send(db, run_id, seen_try_at, now)
