"""Workers on other hosts: the remote transport that replaces the local store for a run.

A worker started with ``TRAINBOARD_SERVER`` (the dashboard's address) and
``TRAINBOARD_WORKER_TOKEN`` shares nothing with the server but the network (and the broker,
Redis, which only carries run ids). Its run processes write every record into an append-only
spool in the worker's own data directory (``spool.py``), and the worker posts it to the
server's ingest (``server.py``, started by ``trainboard up``) over HTTP through the same proxy
as the dashboard. The server writes idempotently and acknowledges a high-water mark per
(run, attempt) (``ingest.py``); tokens are in ``tokens.py``; datasets and checkpoints travel
content-addressed (``files.py``). docs/operations.md, "Workers on other hosts", says why HTTP.
"""

from __future__ import annotations

import os

API = "/api/worker"


def server_url() -> str | None:
    """The server this worker reports to (``TRAINBOARD_SERVER``), without a trailing slash."""
    url = os.environ.get("TRAINBOARD_SERVER", "").strip().rstrip("/")
    return url or None


def enabled() -> bool:
    """Whether this process is a remote worker (or one of its run processes)."""
    return bool(server_url() and os.environ.get("TRAINBOARD_WORKER_TOKEN", "").strip())
