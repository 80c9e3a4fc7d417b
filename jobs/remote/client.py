"""The worker's HTTP client for the ingest (``requests``, one session per thread).

Every call has a timeout; a refused or unreachable server raises :class:`Unreachable` (keep
spooling and retry later) or :class:`Rejected` (the server answered no: a revoked token, a run
that is no longer this worker's).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests

from jobs.remote import API, server_url


class Unreachable(Exception):
    """The server did not answer (down, network cut, proxy error): retry later."""


class Rejected(Exception):
    """The server answered with a refusal (4xx)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(f"{status}: {why}")
        self.status = status


class Client:
    def __init__(self, base: str, token: str, *, timeout: float = 10.0) -> None:
        self.base = base.rstrip("/") + API
        self.timeout = timeout
        self._token = token
        self._local = threading.local()

    @classmethod
    def from_env(cls) -> Client:
        base, token = server_url(), os.environ.get("TRAINBOARD_WORKER_TOKEN", "").strip()
        if not base or not token:
            raise RuntimeError("TRAINBOARD_SERVER and TRAINBOARD_WORKER_TOKEN must both be set")
        return cls(base, token)

    @property
    def session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
            s.headers["Authorization"] = f"Bearer {self._token}"
        return s

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        # TRAINBOARD_CA_BUNDLE: the server's own CA (a self-signed proxy certificate). Passed
        # with each request: a session's verify loses to REQUESTS_CA_BUNDLE in the environment.
        ca = os.environ.get("TRAINBOARD_CA_BUNDLE")
        if ca:
            kw.setdefault("verify", ca)
        try:
            r = self.session.request(method, self.base + path, **kw)
        except requests.RequestException as e:
            raise Unreachable(str(e)) from e
        if r.status_code >= 500 or r.status_code in (429, 408):
            raise Unreachable(f"{r.status_code}: {r.text[:200]}")
        if r.status_code >= 400 and r.status_code != 409:
            try:
                why = r.json().get("error", r.text)
            except ValueError:
                why = r.text[:200]
            raise Rejected(r.status_code, why)
        return r

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, json=payload).json()
