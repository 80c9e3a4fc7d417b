"""What the UI and the CLI call: submit a run, cancel it, see the queue.

A run is created in the database first (status ``queued``) and only then sent to the broker,
as its id alone. If the broker can't be reached the run stays queued with a visible note, and
the reaper sends it as soon as the broker answers again: a submit is never silently lost.

Every send is recorded in ``queue_sends`` (when, how often, the last error). The reaper uses it
to re-send a queued run whose message vanished (a broker restarted without persistence, a lost
queue file). It lives in its own small table (migration 2 in ``jobs.db``) because it is the
queue's bookkeeping, not part of a run's record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils
from celery import Celery
from kombu.exceptions import OperationalError

from jobs import registry
from jobs.celery_app import DEVICE_CLASSES, TRAIN_TASK, current_app
from jobs.db import connect


class BrokerUnavailable(Exception):
    """The broker could not be reached; the run is queued and will be sent when it answers."""


@dataclass(frozen=True)
class Submitted:
    run_id: int
    sent: bool
    note: str | None = None  # set when the run waits for the broker


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
            TRAIN_TASK, args=[run_id], queue=s.queue_name(run["queue"]), ignore_result=True,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2,
                          "interval_max": 0.2},
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


def submit(
    preset: str,
    dataset: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    queue: str = "cpu",
    owner: str = "local",
    name: str | None = None,
    dataset_id: int | None = None,
    group_id: str | None = None,
    max_attempts: int = 3,
    db: sqlite_utils.Database | None = None,
) -> Submitted:
    """Validate the config, record the run, send it. Raises ``engine.errors.ConfigError`` (with
    the field and the allowed values) before anything is queued if the config is invalid."""
    from engine.config import resolve_config  # the engine's config only; no torch

    if queue not in DEVICE_CLASSES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(DEVICE_CLASSES)}")
    config = resolve_config(preset, dataset=dataset, target=target, overrides=overrides)
    db = db or connect()
    run_id = registry.create_run(
        db, spec=config.to_dict(), preset=preset, dataset_id=dataset_id, owner=owner,
        name=name, queue=queue, group_id=group_id, max_attempts=max_attempts,
    )  # fmt: skip
    if send_run(db, run_id):
        return Submitted(run_id, sent=True)
    return Submitted(
        run_id, sent=False,
        note="the broker is unreachable; the run stays queued and is sent as soon as it is back",
    )


def cancel(run_id: int, db: sqlite_utils.Database | None = None) -> str:
    """Cancel a run: a queued run is cancelled at once; a running one is asked to stop and
    saves a checkpoint first (within about a second or two). Returns the status afterwards:
    ``cancelled``, or ``running`` while the stop is under way."""
    return registry.request_cancel(db or connect(), run_id)


def queue_status(db: sqlite_utils.Database | None = None) -> dict[str, Any]:
    """Counts of runs by status, the workers seen lately, and runs waiting for the broker."""
    db = db or connect()
    counts = registry.status_counts(db)
    unsent = [
        {"run_id": r[0], "last_error": r[1]}
        for r in db.execute(
            "SELECT r.id, q.last_error FROM runs r LEFT JOIN queue_sends q ON q.run_id = r.id "
            "WHERE r.status = 'queued' AND (q.sent_at IS NULL OR q.last_error IS NOT NULL) "
            "ORDER BY r.id"
        ).fetchall()
    ]
    return {
        "counts": counts,
        "workers": registry.list_workers(db, alive_within_s=30),
        "waiting_for_broker": unsent,
    }
