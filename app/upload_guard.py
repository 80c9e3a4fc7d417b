"""Guards in front of Streamlit's own HTTP routes (issue 12, findings 4 and 11).

Streamlit keeps every file a browser PUTs to ``/_stcore/upload_file/<session>/<file>`` in
memory, for any live session, logged in or not, with no limit per session: five 150 MB PUTs
from the login page grew the server by 750 MB. Streamlit has no setting for either, so this
ASGI middleware (installed through ``st.App(middleware=…)`` in ``app/server.py``, the entry
``trainboard up`` runs) answers an upload *before its body is read* when:

- the session is not logged in (team mode): 403, nothing is read or stored;
- the request does not say its length (no ``Content-Length``, or chunked): 411, since the
  budget below has to be checked before the first byte is accepted;
- the session is unknown or disconnected: 400 (Streamlit checks this too, but later: a client
  that reconnected its session in between would skip everything below);
- the session's stored uploads, plus those in flight, plus this one would pass the
  per-session budget, or, in team mode, all of that member's sessions together would: 413;
- all sessions together would pass the server's budget: 503.

It also answers ``/_stcore/metrics`` with 404 in team mode: those figures are not for visitors
who have not logged in (the proxy in compose.yaml does the same; this covers a server run
without it).

The session's login is read the way the pages read it: the token the login page put in that
session's ``st.session_state``, checked against the sessions table, so a removed user or a
logged-out session is refused at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from typing import Any

from app.session import TOKEN_KEY
from jobs import service

auth = service.auth


# Streamlit's own framing allowance for the multipart envelope around one file.
MULTIPART_MARGIN = 64 * 1024


def budgets() -> tuple[int, int]:
    """(per session, all sessions) in bytes. By default a session may hold its current upload and
    the next one (a replaced file is sent before the old one is deleted), and the server eight
    such uploads at once. One upload's limit is Streamlit's ``server.maxUploadSize``, which
    ``trainboard up`` sets to Trainboard's own (TRAINBOARD_MAX_UPLOAD_MB)."""
    from streamlit import config

    one = int(config.get_option("server.maxUploadSize")) * 2**20 + MULTIPART_MARGIN
    return _mb_env("TRAINBOARD_SESSION_UPLOAD_MB", 2 * one), _mb_env(
        "TRAINBOARD_TOTAL_UPLOAD_MB", 8 * one
    )


def _mb_env(name: str, default_bytes: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(float(raw) * 2**20) if raw else default_bytes


_UPLOAD = re.compile(r"/_stcore/upload_file/([^/]+)/([^/]+)/?$")
_METRICS = re.compile(r"/_stcore/metrics/?$")


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


async def _answer(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                # The body is never read: the client must not reuse this connection for it.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _stored(mgr: Any) -> dict[str, dict[str, int]]:
    """Bytes held per session and file by Streamlit's in-memory upload manager."""
    storage = getattr(mgr, "file_storage", None) or {}
    return {
        sid: {fid: len(rec.data) for fid, rec in list(files.items())}
        for sid, files in list(storage.items())
    }


class UploadGuard:
    """Pure ASGI middleware (no body buffering of its own)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}  # session id -> bytes reserved by running PUTs
        self._owner: dict[str, str] = {}  # session id -> whose budget it counts against

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if auth.team_mode() and _METRICS.search(path):
            await _answer(send, 404, "Not found")
            return
        match = _UPLOAD.search(path)
        if match is None or scope.get("method") != "PUT":
            await self.app(scope, receive, send)
            return
        session_id = match.group(1)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        length = headers.get("content-length", "")
        if "transfer-encoding" in headers or not length.isdigit():
            await _answer(send, 411, "An upload must say its length (Content-Length).")
            return
        refusal = await asyncio.to_thread(self._admit, session_id, match.group(2), int(length))
        if refusal is not None:
            await _answer(send, *refusal)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                left = self._in_flight.get(session_id, 0) - int(length)
                if left > 0:
                    self._in_flight[session_id] = left
                else:
                    self._in_flight.pop(session_id, None)

    def _admit(self, session_id: str, file_id: str, length: int) -> tuple[int, str] | None:
        """None to let the upload through (its bytes reserved), or (status, message)."""
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return 503, "The dashboard is starting; try again in a moment."
        runtime = Runtime.instance()
        app_session = runtime.get_app_session(session_id)
        if app_session is None:
            # Refused here, not left to Streamlit's own check: that one runs later, and a client
            # that reconnects its session in between would skip the login check and the budgets
            # (a hostile probe kept 3 GB this way).
            return 400, "Unknown or disconnected session: reload the page."
        if auth.team_mode():
            state = app_session.session_state
            # SessionState is not a Mapping: it has no .get()
            token = state[TOKEN_KEY] if TOKEN_KEY in state else None  # noqa: SIM401
            db = service.connect()
            try:
                user = auth.session_user(db, token)
            finally:
                db.close()
            if user is None:
                return 403, "Log in before uploading a file."
            who = f"user:{user['name']}"
        else:
            who = f"session:{session_id}"  # one person: each session has its own budget
        per_session, everyone_cap = budgets()
        with self._lock:
            stored = _stored(runtime.uploaded_file_mgr)

            def held(sid: str) -> int:
                files = stored.get(sid, {})
                return sum(n for f, n in files.items() if f != file_id) + self._in_flight.get(
                    sid, 0
                )

            # Whose each session is (pruned to the sessions that still hold something): in team
            # mode one member's tabs share one budget, so opening sessions does not multiply it.
            self._owner = {
                sid: name
                for sid, name in self._owner.items()
                if sid in stored or sid in self._in_flight
            }
            self._owner[session_id] = who
            theirs = sum(held(sid) for sid, name in self._owner.items() if name == who)
            if theirs + length > per_session:
                return 413, (
                    f"Your uploads in this dashboard already hold {_mb(theirs)}; the limit is "
                    f"{_mb(per_session)}. Remove a file from the uploader first."
                )
            everyone = sum(sum(f.values()) for f in stored.values()) + sum(self._in_flight.values())
            if everyone + length > everyone_cap:
                return 503, "The server is busy with other uploads; try again in a minute."
            self._in_flight[session_id] = self._in_flight.get(session_id, 0) + length
        return None
