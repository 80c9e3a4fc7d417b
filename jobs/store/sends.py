"""The ``queue_sends`` table: each send of a run to the broker (migration 2).

Its only caller is ``jobs.queue.sends``, which talks to the broker and decides what to record;
the statements live here because they need SQL the table API has no words for: a counter
incremented in place, a compare-and-set between racing reapers, and a join with ``runs``.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils


def record_failure(db: sqlite_utils.Database, run_id: int, error: str, now: float) -> None:
    """A send of ``run_id`` failed with ``error`` at ``now`` (an earlier success stays)."""
    db.execute(
        "INSERT INTO queue_sends (run_id, last_error, last_try_at) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET last_error = excluded.last_error, "
        "last_try_at = excluded.last_try_at",
        [run_id, error, now],
    )


def record_sent(db: sqlite_utils.Database, run_id: int, now: float) -> None:
    """A send of ``run_id`` got through at ``now``: one more send, and no error."""
    db.execute(
        "INSERT INTO queue_sends (run_id, sent_at, sends, last_error, last_try_at) "
        "VALUES (?, ?, 1, NULL, ?) ON CONFLICT (run_id) DO UPDATE SET "
        "sent_at = excluded.sent_at, sends = sends + 1, last_error = NULL, "
        "last_try_at = excluded.last_try_at",
        [run_id, now, now],
    )


def resend_candidates(
    db: sqlite_utils.Database, *, created_before: float, sent_before: float
) -> list[dict[str, Any]]:
    """Queued runs created before ``created_before`` that were never sent, whose last send
    failed, or that were last sent before ``sent_before``; with their send record."""
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
    """Compare-and-set on ``last_try_at``: of several callers that read ``seen_try_at``, the
    one whose write lands first gets True; the others find it changed and get False."""
    cur = db.execute(
        "INSERT INTO queue_sends (run_id, last_try_at) VALUES (?, ?) "
        "ON CONFLICT (run_id) DO UPDATE SET last_try_at = excluded.last_try_at "
        "WHERE coalesce(last_try_at, -1) = coalesce(?, -1)",
        [run_id, now, seen_try_at],
    )
    return cur.rowcount == 1
