"""Team mode: users, passwords, sessions, ownership and brute-force back-off.

Team mode is on when ``TRAINBOARD_TEAM`` is ``1``/``true``/``yes``; the single-user default has
no login. There is no default account and no default password: the first user is created with
``trainboard user add NAME --admin``. Passwords are hashed with argon2id (argon2-cffi).

AuthError
 ├── InvalidCredentials   wrong name or password (one message for both: no user enumeration)
 ├── TooManyAttempts      the account is in back-off after failed attempts (retry_after seconds)
 ├── UserExists           a user of that name already exists
 ├── WeakPassword         the password is too short
 └── NotAllowed           the user may not change that run or dataset (not the owner, not admin)
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from typing import Any

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import Refused
from jobs.store import people

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# A real hash to verify against when the user doesn't exist, so both paths cost the same time.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,31}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes any length; a cap keeps a login request small
FREE_ATTEMPTS = 3  # failures before back-off starts
# Logins whose browser address is unknown (no address, or one only the proxy knows and no
# TRAINBOARD_TRUSTED_PROXY names that proxy) back off per browser session; a session is cheap
# to open, so all of them together also share a rate: this many attempts per minute.
UNKNOWN_WINDOW_S = 60.0


def unknown_rate() -> int:
    return max(1, int(os.environ.get("TRAINBOARD_LOGIN_UNKNOWN_PER_MIN", "30")))


MAX_BACKOFF_S = 300.0


class AuthError(Refused):
    """Base of every team-mode error."""


class InvalidCredentials(AuthError):
    """The name or the password is wrong."""


class TooManyAttempts(AuthError):
    """Too many failed logins: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed attempts: try again in {max(1, round(retry_after))} s")


class UserExists(AuthError):
    """A user of that name already exists."""


class WeakPassword(AuthError):
    """The password does not meet the minimum length."""


class NotAllowed(AuthError):
    """Only the owner or an admin may do this."""


def team_mode() -> bool:
    return os.environ.get("TRAINBOARD_TEAM", "").strip().lower() in ("1", "true", "yes", "on")


def session_ttl_s() -> float:
    return float(os.environ.get("TRAINBOARD_SESSION_HOURS", "12")) * 3600


def backoff_s(failed_attempts: int) -> float:
    """Seconds an account waits after its n-th consecutive failure: none for the first three,
    then 1, 2, 4 … doubling, capped at five minutes."""
    if failed_attempts <= FREE_ATTEMPTS:
        return 0.0
    return min(MAX_BACKOFF_S, 2.0 ** (failed_attempts - FREE_ATTEMPTS - 1))


def check_password(password: str) -> None:
    """A password worth hashing: 10 to 1024 characters, not only spaces, not one character
    repeated, and at least 5 different characters. Raises WeakPassword saying which rule."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"password: at least {MIN_PASSWORD} characters, please")
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"password: at most {MAX_PASSWORD} characters, please")
    if not password.strip():
        raise WeakPassword("password: not only spaces, please")
    if len(set(password)) < 5:
        raise WeakPassword("password: use at least 5 different characters")


def add_user(
    db: sqlite_utils.Database, name: str, password: str, *, admin: bool = False
) -> dict[str, Any]:
    if not NAME_RE.match(name):
        raise AuthError(
            f"user name {name!r}: use 2–32 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        )
    check_password(password)
    if db["users"].count_where("name = ?", [name]):
        raise UserExists(f"user {name!r} already exists")
    db["users"].insert(
        {
            "name": name,
            "password_hash": _HASHER.hash(password),
            "is_admin": int(admin),
            "created_at": time.time(),
            "failed_attempts": 0,
            "locked_until": 0.0,
        }
    )
    return get_user(db, name)


def get_user(db: sqlite_utils.Database, name: str) -> dict[str, Any]:
    rows = db["users"].rows_where(
        "name = ?", [name], select="id, name, is_admin, created_at, failed_attempts, locked_until"
    )
    user = next(rows, None)
    if user is None:
        raise AuthError(f"no user named {name!r}")
    return user


def list_users(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return list(db["users"].rows_where(select="id, name, is_admin, created_at", order_by="name"))


def remove_user(db: sqlite_utils.Database, name: str) -> None:
    get_user(db, name)
    people.delete_user(db, name)


def set_password(db: sqlite_utils.Database, name: str, password: str) -> None:
    check_password(password)
    get_user(db, name)
    people.set_password_hash(db, name, _HASHER.hash(password))  # and logs everyone out


def login(
    db: sqlite_utils.Database,
    name: str,
    password: str,
    *,
    client: str = "local",
    address_known: bool = True,
    now: float | None = None,
) -> str:
    """Check the password and open a session; returns its token.

    Failures are counted per (name, client) — the browser's address — so someone guessing from
    one place never locks the real user out of another. The attempt is counted *before* the
    password is checked, in one write transaction: parallel guesses can't slip past the counter,
    and while a key is in back-off no password is checked at all (no argon2 memory spent).
    An unknown name goes through exactly the same steps and messages as a known one.
    ``address_known=False``: ``client`` is a browser session, not an address, and the attempt
    also counts against the shared rate of such logins (:func:`unknown_rate` a minute), so
    opening new sessions can't multiply guesses, and no one bucket holds everybody.

    Raises TooManyAttempts during back-off and InvalidCredentials for a wrong name or password."""
    now = time.time() if now is None else now
    if len(password) > MAX_PASSWORD or len(name) > 64:
        raise InvalidCredentials("wrong user name or password")
    key = f"{name.strip().lower()}\x00{client[:64]}"
    if not address_known:
        _count_window(db, "\x00unknown-address", now)
    _count_attempt(db, key, now)
    rows = list(db["users"].rows_where("name = ?", [name]))
    ok = _verify(rows[0]["password_hash"] if rows else _DUMMY_HASH, password)
    if not (rows and ok):
        raise InvalidCredentials("wrong user name or password")
    user = rows[0]
    token = secrets.token_urlsafe(32)
    rehash = _HASHER.check_needs_rehash(user["password_hash"])
    people.open_session(
        db,
        name=name,
        token_hash=_token_hash(token),
        now=now,
        expires_at=now + session_ttl_s(),
        attempt_key=key,
        new_password_hash=_HASHER.hash(password) if rehash else None,
    )
    return token


def _count_attempt(db: sqlite_utils.Database, key: str, now: float) -> None:
    """Count one attempt for ``key`` (reset on success); TooManyAttempts while it is locked.
    The count is one write transaction (``jobs.store.people.count_attempt``): parallel guesses
    queue up behind each other, and a raised TooManyAttempts stores nothing."""

    def step(row: tuple[int, float] | None) -> tuple[int, float]:
        if row and row[1] > now:
            raise TooManyAttempts(row[1] - now)
        failed = (row[0] if row else 0) + 1
        return failed, now + backoff_s(failed)

    people.count_attempt(db, key, step)


def _count_window(db: sqlite_utils.Database, key: str, now: float) -> None:
    """Count one attempt in ``key``'s current minute; TooManyAttempts past :func:`unknown_rate`.
    (``failed`` counts the attempts of the window that started at ``locked_until`` - 60 s.)"""

    def step(row: tuple[int, float] | None) -> tuple[int, float]:
        count, ends = (row[0], row[1]) if row and row[1] > now else (0, now + UNKNOWN_WINDOW_S)
        if count >= unknown_rate():
            raise TooManyAttempts(ends - now)
        return count + 1, ends

    people.count_attempt(db, key, step)


def _token_hash(token: str) -> str:
    """Sessions are stored by the SHA-256 of their token: a copy of the database opens none."""
    return hashlib.sha256(token.encode()).hexdigest()


def _verify(hash_: str, password: str) -> bool:
    try:
        return _HASHER.verify(hash_, password)
    except (VerificationError, InvalidHashError):
        return False


def session_user(
    db: sqlite_utils.Database, token: str | None, *, now: float | None = None
) -> dict[str, Any] | None:
    """The logged-in user for a session token, or None if the token is unknown or expired."""
    if not token:
        return None
    now = time.time() if now is None else now
    user = people.session_user(db, _token_hash(token))
    if user is None:
        return None
    if user["expires_at"] <= now:
        logout(db, token)
        return None
    return user


def logout(db: sqlite_utils.Database, token: str) -> None:
    db["sessions"].delete_where("token = ?", [_token_hash(token)])


def may_modify(user: dict[str, Any] | None, owner: str | None) -> bool:
    """Owner or admin. With no user (single-user mode) everything is allowed."""
    if user is None:
        return True
    return bool(user.get("is_admin")) or user.get("name") == owner


def require_modify(user: dict[str, Any] | None, owner: str | None, what: str) -> None:
    if not may_modify(user, owner):
        raise NotAllowed(f"only {owner!r} or an admin can change {what}")
