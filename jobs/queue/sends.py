"""Sending a run id to the broker, and the ``queue_sends`` bookkeeping: the one owner of that table.

A run is created in the database first (status ``queued``) and only then sent, as its id alone.
Every send is recorded in ``queue_sends`` (when, how often, the last error). The reaper
(``jobs.queue.reaper``) uses it to send a run the broker refused at submit, and to re-send a
queued run whose message vanished (a broker restarted without persistence, a lost queue file).
It is its own small table (migration 2 in ``jobs.store.db``) because it is the queue's
bookkeeping, not part of a run's record.
"""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils
from celery import Celery
from kombu.exceptions import OperationalError

from jobs.queue.celery_app import TRAIN_TASK, current_app
from jobs.store import registry


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
        db.execute(
            "INSERT INTO queue_sends (run_id, last_error, last_try_at) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id) DO UPDATE SET last_error = excluded.last_error, "
            "last_try_at = excluded.last_try_at",
            [run_id, f"broker unreachable: {e}", now],
        )
        return False
    db.execute(
        "INSERT INTO queue_sends (run_id, sent_at, sends, last_error, last_try_at) "
        "VALUES (?, ?, 1, NULL, ?) ON CONFLICT (run_id) DO UPDATE SET "
        "sent_at = excluded.sent_at, sends = sends + 1, last_error = NULL, "
        "last_try_at = excluded.last_try_at",
        [run_id, now, now],
    )
    return True


def send_info(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """The run's send record (``sent_at``, ``sends``, ``last_error``), None if never tried."""
    rows = list(db.query("SELECT * FROM queue_sends WHERE run_id = ?", [run_id]))
    return rows[0] if rows else None


def resend_candidates(
    db: sqlite_utils.Database, *, created_before: float, sent_before: float
) -> list[dict[str, Any]]:
    """Queued runs older than ``created_before`` that were never sent, whose last send failed,
    or that were sent before ``sent_before`` (their message may have vanished)."""
    return list(
        db.query(
            "SELECT r.id, r.queue, q.sent_at, q.last_error, q.last_try_at FROM runs r "
            "LEFT JOIN queue_sends q ON q.run_id = r.id "
            "WHERE r.status = 'queued' AND r.created_at < ? "
            "AND (q.sent_at IS NULL OR q.last_error IS NOT NULL OR q.sent_at < ?) ORDER BY r.id",
            [created_before, sent_before],
        )
    )


def claim_send(
    db: sqlite_utils.Database, run_id: int, seen_try_at: float | None, now: float
) -> bool:
    """Compare-and-set on ``last_try_at``: True for exactly one of several racing reapers."""
    cur = db.execute(
        "INSERT INTO queue_sends (run_id, last_try_at) VALUES (?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET last_try_at = excluded.last_try_at "
        "WHERE coalesce(last_try_at, -1) = coalesce(?, -1)",
        [run_id, now, seen_try_at],
    )
    return cur.rowcount == 1
