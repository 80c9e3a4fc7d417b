"""The ingest: the HTTP endpoints remote workers talk to, started by ``trainboard up``.

``python -m jobs.remote.server --port 8502`` (uvicorn + Starlette, both already installed with
Streamlit). Its own process, so a burst of records never competes with the dashboard's pages
for the GIL; the proxy sends ``/api/worker/`` here (deploy/nginx). Every endpoint but ``health``
wants ``Authorization: Bearer <worker token>``; cookies are never read, so a member's login
session cannot act as a worker. Request bodies are read with a cap before anything is parsed.

The ingest also runs the reaper (lost runs, unsent messages) for servers whose only workers are
remote; it waits ``TRAINBOARD_STALE_AFTER_S`` after its start before the first pass, so runs
whose heartbeats could not arrive while the server was down are not marked lost at once.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from engine.limits import BUNDLE_FILES, CHECKPOINT, MODEL
from jobs.remote import API, ingest, tokens, wire
from jobs.store import registry
from jobs.store import remote as store_remote
from jobs.store.db import connect, data_home, run_dir

log = logging.getLogger("trainboard.ingest")

SHIPPABLE = (CHECKPOINT, MODEL, *BUNDLE_FILES)  # the files a worker may put into a run's folder
MAX_JSON = 1 * 2**20
MAX_BLOB_PUT = 16 * 2**20  # one chunk of a file upload
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def max_ship_bytes() -> int:
    """The largest checkpoint or model a worker may upload (TRAINBOARD_MAX_SHIP_MB, 16 GiB)."""
    return int(float(os.environ.get("TRAINBOARD_MAX_SHIP_MB", "16384")) * 2**20)


_local = threading.local()
_ingest = ingest.Ingest()


def _db():
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = connect()
    return db


def blobs_dir() -> Path:
    return data_home() / "blobs"


class HttpError(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HttpError(413, f"request body over {limit} bytes")
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise HttpError(413, f"request body over {limit} bytes")
        parts.append(part)
    return b"".join(parts)


async def _json(request: Request) -> dict[str, Any]:
    import json

    try:
        data = json.loads(await _body(request, MAX_JSON) or b"{}")
    except ValueError as e:
        raise HttpError(400, f"body is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise HttpError(400, "body must be a JSON object")
    return data


def _int(data: dict[str, Any], name: str) -> int:
    v = data.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise HttpError(400, f"{name} must be a non-negative integer")
    return v


def _worker(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    name = tokens.authenticate(_db(), token.strip()) if scheme.lower() == "bearer" else None
    if name is None:
        raise HttpError(401, "a valid worker token is required")
    return name


def endpoint(fn):
    """Errors become JSON answers with their status; the DB work runs on a worker thread."""

    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except HttpError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except ingest.Refused as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except wire.WireError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    return handler


def _sync(fn, *args, **kwargs):
    return anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


# --- endpoints -----------------------------------------------------------------------------


@endpoint
async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


@endpoint
async def whoami(request: Request) -> Response:
    return JSONResponse({"name": await _sync(_worker, request)})


@endpoint
async def claim(request: Request) -> Response:
    data = await _json(request)

    def work():
        worker = _worker(request)
        return ingest.claim(
            _db(),
            worker,
            _int(data, "run_id"),
            slot=str(data.get("slot") or worker),
            device=str(data.get("device") or "cpu")[:64],
        )

    return JSONResponse(await _sync(work))


@endpoint
async def heartbeat(request: Request) -> Response:
    data = await _json(request)

    def work():
        worker = _worker(request)
        progress = data.get("progress")
        return ingest.heartbeat(
            _db(),
            worker,
            _int(data, "run_id"),
            slot=str(data.get("slot") or worker),
            attempt=_int(data, "attempt"),
            progress=float(progress) if isinstance(progress, int | float) else None,
        )

    return JSONResponse(await _sync(work))


@endpoint
async def presence(request: Request) -> Response:
    data = await _json(request)

    def work():
        ingest.presence(_db(), _worker(request), data)
        return {"ok": True}

    return JSONResponse(await _sync(work))


@endpoint
async def records(request: Request) -> Response:
    worker = await _sync(_worker, request)  # before reading a byte of the body
    body = await _body(request, wire.MAX_BODY)

    def work():
        chunks = wire.unframe(body)
        out = _ingest.apply(_db(), worker, chunks)
        out["cancel"] = registry.cancels_among(_db(), (a[0] for a in out["acks"]))
        return out

    return JSONResponse(await _sync(work))


def _dataset_file(worker: str, sha: str) -> Path:
    for holder, path in registry.running_dataset_files(_db(), sha):
        if tokens.holds(worker, holder) and path and Path(path).is_file():
            return Path(path)
    raise HttpError(404, "no running run of this worker reads a dataset with that hash")


@endpoint
async def dataset(request: Request) -> Response:
    sha = request.path_params["sha"]
    if not SHA_RE.match(sha):
        raise HttpError(400, "not a SHA-256")
    path = await _sync(lambda: _dataset_file(_worker(request), sha))
    # FileResponse streams the file in chunks and answers Range requests (a resumed download).
    return FileResponse(path, media_type="application/octet-stream")


def _part(sha: str) -> Path:
    return blobs_dir() / "tmp" / f"{sha}.part"


@endpoint
async def blob_offset(request: Request) -> Response:
    sha = request.path_params["sha"]
    if not SHA_RE.match(sha):
        raise HttpError(400, "not a SHA-256")
    await _sync(lambda: _worker(request))
    done = (blobs_dir() / sha).is_file()
    part = _part(sha)
    have = (
        (blobs_dir() / sha).stat().st_size
        if done
        else (part.stat().st_size if part.exists() else 0)
    )
    return JSONResponse({"have": have, "complete": done})


@endpoint
async def blob_put(request: Request) -> Response:
    """Append one chunk at ``offset`` to a file being uploaded; the last one (``offset`` + its
    length == ``size``) checks the content hash and moves the file into the blob store."""
    sha = request.path_params["sha"]
    if not SHA_RE.match(sha):
        raise HttpError(400, "not a SHA-256")
    try:
        offset, size = int(request.query_params["offset"]), int(request.query_params["size"])
    except (KeyError, ValueError) as e:
        raise HttpError(400, "offset and size are required integers") from e
    if not 0 <= offset <= size <= max_ship_bytes():
        raise HttpError(413, f"a shipped file is at most {max_ship_bytes()} bytes")
    await _sync(lambda: _worker(request))
    part = _part(sha)
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if (blobs_dir() / sha).is_file():
        return JSONResponse({"have": size, "complete": True})
    if offset != have:
        return JSONResponse({"have": have, "complete": False}, status_code=409)
    with part.open("ab") as f:
        async for piece in request.stream():
            if f.tell() + len(piece) > min(size, offset + MAX_BLOB_PUT):
                raise HttpError(413, "chunk runs past the declared size or the chunk limit")
            f.write(piece)
        have = f.tell()
    if have < size:
        return JSONResponse({"have": have, "complete": False})

    def finish():
        digest = hashlib.sha256()
        with part.open("rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        if digest.hexdigest() != sha:
            part.unlink()
            raise HttpError(422, "the uploaded bytes do not have the declared hash; start over")
        os.replace(part, blobs_dir() / sha)

    await _sync(finish)
    return JSONResponse({"have": size, "complete": True})


@endpoint
async def ship(request: Request) -> Response:
    """Put an uploaded blob into the run's folder under its name (atomically)."""
    run_id = int(request.path_params["run_id"])
    data = await _json(request)
    name, sha = data.get("name"), str(data.get("sha256") or "")
    if name not in SHIPPABLE or not SHA_RE.match(sha):
        raise HttpError(400, f"name must be one of {', '.join(SHIPPABLE)}, with its SHA-256")

    def work():
        db = _db()
        ingest.run_held_by(db, _worker(request), run_id)
        blob = blobs_dir() / sha
        if not blob.is_file():
            raise HttpError(409, "upload the file first")
        dest = run_dir(run_id) / name  # name is one of SHIPPABLE: no path of the worker's own
        dest.parent.mkdir(parents=True, exist_ok=True)  # bundle/ for the bundle's files
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.link(blob, tmp)
        os.replace(tmp, dest)
        size = dest.stat().st_size
        store_remote.save_run_file(db, run_id, name, sha, size, time.time())
        # The run's folder holds its own link; the store keeps no second copy.
        blob.unlink(missing_ok=True)
        return {"ok": True}

    return JSONResponse(await _sync(work))


@endpoint
async def run_file(request: Request) -> Response:
    """A file shipped earlier into a run's folder (a resume on another worker downloads its
    checkpoint), for the worker that holds the run now."""
    run_id, name = int(request.path_params["run_id"]), request.path_params["name"]
    if name not in SHIPPABLE:
        raise HttpError(404, "no such file")
    await _sync(lambda: ingest.run_held_by(_db(), _worker(request), run_id))
    path = run_dir(run_id) / name
    if not path.is_file():
        raise HttpError(404, "no such file")
    return FileResponse(path, media_type="application/octet-stream")


routes = [
    Route(f"{API}/health", health),
    Route(f"{API}/whoami", whoami),
    Route(f"{API}/claim", claim, methods=["POST"]),
    Route(f"{API}/heartbeat", heartbeat, methods=["POST"]),
    Route(f"{API}/presence", presence, methods=["POST"]),
    Route(f"{API}/records", records, methods=["POST"]),
    Route(f"{API}/datasets/{{sha}}", dataset, methods=["GET", "HEAD"]),
    Route(f"{API}/blobs/{{sha}}", blob_offset, methods=["GET"]),
    Route(f"{API}/blobs/{{sha}}", blob_put, methods=["PUT"]),
    Route(f"{API}/runs/{{run_id:int}}/files", ship, methods=["POST"]),
    Route(f"{API}/runs/{{run_id:int}}/files/{{name}}", run_file, methods=["GET", "HEAD"]),
]


def make_app() -> Starlette:
    return Starlette(routes=routes)


def sweep_parts(max_age_s: float = 24 * 3600) -> list[Path]:
    """Uploads left half done for more than a day (their worker died or gave up): a worker that
    comes back to one later starts it over."""
    gone = []
    folder = blobs_dir() / "tmp"
    if folder.is_dir():
        for part in folder.glob("*.part"):
            if time.time() - part.stat().st_mtime > max_age_s:
                part.unlink(missing_ok=True)
                gone.append(part)
    return gone


def _reaper(stop: threading.Event) -> None:
    from jobs.queue.celery_app import current_app, settings
    from jobs.queue.reaper import reap_once

    s = settings()
    if stop.wait(s.stale_after_s):  # the grace after a (re)start: see the module docstring
        return
    db = connect()
    while not stop.is_set():
        try:
            reap_once(db, current_app())
        except Exception:
            log.exception("reaper pass failed; retrying")
        stop.wait(s.reap_interval_s)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m jobs.remote.server")
    parser.add_argument("--port", type=int, default=8502)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--no-reaper", action="store_true", help="local workers reap already")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    connect().close()
    sweep_parts()
    stop = threading.Event()
    if not args.no_reaper:
        threading.Thread(target=_reaper, args=(stop,), daemon=True, name="reaper").start()
    try:
        uvicorn.run(
            make_app(),
            host=args.address,
            port=args.port,
            log_level="warning",
            # a slow client may not hold a connection open forever
            timeout_keep_alive=30,
            proxy_headers=True,
        )
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
