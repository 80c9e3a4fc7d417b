"""People's tables: ``users``, ``sessions``, ``login_attempts`` and ``user_settings``.

The writes that must be one transaction (a new password ends every session; a login clears its
attempts and opens a session; an attempt is counted under the write lock; a saved setting trims
the per-browser ones) live here. The rules around them (who may log in, the back-off, which
settings exist) are ``jobs.people.auth``'s and ``jobs.service``'s; simple reads and single-row
deletes there use sqlite-utils' table API. Every transaction is ``BEGIN IMMEDIATE``
(docs/store.md: the write lock before any read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlite_utils


@contextmanager
def _immediate(db: sqlite_utils.Database) -> Iterator[None]:
    """One write transaction that holds the write lock from its first statement."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def delete_user(db: sqlite_utils.Database, name: str) -> None:
    """Remove the user ``name`` and their sessions, together."""
    with _immediate(db):
        db.execute("DELETE FROM sessions WHERE user = ?", [name])
        db.execute("DELETE FROM users WHERE name = ?", [name])


def set_password_hash(db: sqlite_utils.Database, name: str, password_hash: str) -> None:
    """A new password for ``name``: its back-off is cleared and every session of theirs ends,
    in the same transaction (a stolen session can't outlive the password change)."""
    with _immediate(db):
        db.execute(
            "UPDATE users SET password_hash = ?, failed_attempts = 0, locked_until = 0 "
            "WHERE name = ?",
            [password_hash, name],
        )
        db.execute("DELETE FROM sessions WHERE user = ?", [name])


def count_attempt(
    db: sqlite_utils.Database,
    key: str,
    step: Callable[[tuple[int, float] | None], tuple[int, float]],
) -> None:
    """One counted login attempt for ``key``, under the write lock, so concurrent attempts
    queue up here and none slips past the counter: ``step`` gets the key's (failed,
    locked_until) or None and returns the pair to store. Whatever ``step`` raises (the caller's
    "too many attempts") propagates with nothing stored."""
    with _immediate(db):
        row = db.execute(
            "SELECT failed, locked_until FROM login_attempts WHERE key = ?", [key]
        ).fetchone()
        failed, until = step(tuple(row) if row else None)
        db.execute(
            "INSERT INTO login_attempts (key, failed, locked_until) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET failed = excluded.failed, "
            "locked_until = excluded.locked_until",
            [key, failed, until],
        )


def open_session(
    db: sqlite_utils.Database,
    *,
    name: str,
    token_hash: str,
    now: float,
    expires_at: float,
    attempt_key: str,
    new_password_hash: str | None = None,
) -> None:
    """A successful login, in one transaction: clear ``attempt_key``'s failures, store the
    rehashed password when the hasher's parameters changed, open the session, and drop the
    sessions that have expired (so the table never grows with old logins)."""
    with _immediate(db):
        db.execute("DELETE FROM login_attempts WHERE key = ?", [attempt_key])
        if new_password_hash is not None:
            db.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?", [new_password_hash, name]
            )
        db.execute(
            "INSERT INTO sessions (token, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
            [token_hash, name, now, expires_at],
        )
        db.execute("DELETE FROM sessions WHERE expires_at < ?", [now])


def session_user(db: sqlite_utils.Database, token_hash: str) -> dict[str, Any] | None:
    """The session stored under ``token_hash`` with its user (id, name, is_admin, expires_at),
    expired or not; None when there is none."""
    rows = db.query(
        "SELECT u.id, u.name, u.is_admin, s.expires_at FROM sessions s "
        "JOIN users u ON u.name = s.user WHERE s.token = ?",
        [token_hash],
    )
    return next(iter(rows), None)


def save_setting(
    db: sqlite_utils.Database, user: str, key: str, value: str, *, keep_browsers: int
) -> None:
    """Store ``user``'s ``key`` = ``value``, and keep only the newest ``keep_browsers`` settings
    saved per browser (users named "name@browser"), in one transaction: anyone may bring a new
    browser, so fresh cookies can't grow the table without bound."""
    with _immediate(db):
        db.execute(
            "INSERT INTO user_settings (user, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (user, key) DO UPDATE SET value = excluded.value",
            [user, key, value],
        )
        db.execute(
            "DELETE FROM user_settings WHERE rowid IN (SELECT rowid FROM user_settings "
            "WHERE instr(user, '@') > 0 ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
            [keep_browsers],
        )
