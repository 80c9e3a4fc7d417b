"""Worker tokens: ``trainboard token create --worker NAME`` / ``list`` / ``revoke NAME``.

A token is ``tbw_`` and 32 random bytes (``secrets.token_urlsafe``); only its SHA-256 is stored
(``jobs.store.db``, migration 8, says why not scrypt). A token names one worker: that worker's processes
(``NAME``, or ``NAME/SLOT`` for several slots on one host) may touch only the runs handed to
them. Revoking refuses the token at once and hands the worker's running runs back to the queue.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

import sqlite_utils

from jobs.store import remote as store

PREFIX = "tbw_"
# A worker name becomes part of run and worker rows and log lines: keep it plain and short.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,62}$")
# A token is PREFIX + 43 characters; anything much longer is not one of ours (bounded before
# it is hashed or looked up).
MAX_TOKEN_LEN = 128


class TokenError(ValueError):
    """A token command was given a bad or unknown worker name."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise TokenError(
            f"worker name {name!r} must be 1-63 letters, digits, '_', '.', '@' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def create(db: sqlite_utils.Database, name: str) -> str:
    """A new token for worker ``name`` (replacing any earlier one of that name); returns the
    token, which is shown once and never stored."""
    check_name(name)
    token = PREFIX + secrets.token_urlsafe(32)
    store.save_token(db, name, _hash(token), time.time())
    return token


def list_tokens(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every token's worker name and dates (never the token or its hash)."""
    return store.list_tokens(db)


def holds(worker: str, holder: str | None) -> bool:
    """Whether a run held by ``holder`` (a worker row's name) belongs to token ``worker``."""
    return bool(holder) and (holder == worker or holder.startswith(worker + "/"))


def revoke(db: sqlite_utils.Database, name: str) -> list[int]:
    """Refuse ``name``'s token from now on and hand its running runs back to the queue (they
    resume from their last shipped checkpoint on another worker). Returns those runs' ids."""
    from jobs.store import registry

    if not store.revoke_token(db, name, time.time()):
        raise TokenError(f"no active token for worker {name!r}")
    running = [run_id for run_id, holder in registry.running_holders(db) if holds(name, holder)]
    from jobs.errors import IllegalTransition
    from jobs.queue.sends import send_run

    handed_back = []
    for run_id in running:
        try:
            registry.release_run(db, run_id)
        except IllegalTransition:  # it ended a moment ago: nothing to hand back
            continue
        send_run(db, run_id)  # kept queued (and re-sent by the reaper) if the broker is down
        handed_back.append(run_id)
    return handed_back


def authenticate(db: sqlite_utils.Database, token: str | None) -> str | None:
    """The worker name a presented token belongs to, or None (unknown, revoked, malformed)."""
    if not token or len(token) > MAX_TOKEN_LEN or not token.startswith(PREFIX):
        return None
    row = store.token_owner(db, _hash(token))
    if row is None:
        return None
    name, last_used = row
    now = time.time()
    if last_used is None or now - last_used > 60:  # a write a minute, not one per request
        store.touch_token(db, name, now)
    return name
