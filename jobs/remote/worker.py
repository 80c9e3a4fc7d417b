"""A remote worker's side: the Celery task's body, and the thread that posts the spool.

``supervise(run_id)`` replaces ``jobs.queue.tasks.supervise`` when ``jobs.remote.enabled()``:
it claims through the server (the same fair order), fetches the dataset and any shipped
checkpoint, starts the run's process exactly as a local worker does (``jobs.queue.spare``),
heartbeats through the server, and does not let go of the run until its last record (the
outcome) is acknowledged. :class:`Flusher` (one thread per worker process) posts spooled chunks
in order, ships checkpoints and models after the records of their epoch, and reports the
worker's presence with its spool backlog and sync lag; while the server is unreachable it backs
off and retries, and the runs keep training into the spool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from engine.limits import BUNDLE_FILES, CHECKPOINT, MODEL
from jobs.remote import files, wire
from jobs.remote.client import Client, Rejected, Unreachable
from jobs.remote.spool import Spool

log = logging.getLogger(__name__)

SHIPPED = (CHECKPOINT, MODEL, *BUNDLE_FILES)  # the bundle too: Run detail's zip and Predict


def _home() -> Path:
    from jobs.store.db import data_home

    return data_home()


class Flusher:
    """Posts the spool to the server from one background thread (see the module docstring)."""

    def __init__(
        self,
        client: Client,
        home: Path,
        *,
        interval: float = 0.2,
        presence: Any = None,
        presence_every: float = 5.0,
    ) -> None:
        self.client = client
        self.home = Path(home)
        self.interval = interval
        self.presence = presence
        self.presence_every = presence_every
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.runs: dict[int, Path] = {}  # runs whose files are watched: id -> folder
        self.last_error: str | None = None
        self.last_ok: float = time.time()
        self._thread: threading.Thread | None = None
        self._next_presence = 0.0

    def start(self) -> Flusher:
        self._thread = threading.Thread(target=self._run, name="trainboard-spool", daemon=True)
        self._thread.start()
        return self

    def close(self, final_status: str | None = None) -> None:
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if final_status and self.presence is not None:
            spool = Spool(self.home)
            try:  # best effort: the server marks a silent worker as gone anyway
                _, points, lag = spool.backlog()
                report = {**self.presence(), "status": final_status}
                self.client.post("/presence", {**report, "backlog": points, "lag_s": lag})
            except (Unreachable, Rejected):
                pass
            finally:
                spool.close()

    def watch(self, run_id: int, folder: Path) -> None:
        self.runs[run_id] = folder

    def _run(self) -> None:
        spool = Spool(self.home)
        backoff = self.interval
        chunks, points, age = spool.backlog()
        if chunks:  # left by a worker that stopped or was killed before the server had them
            log.warning(
                "the spool holds %s points (%s chunks, the oldest %.0f s old) from before this "
                "start: sending them",
                points,
                chunks,
                age,
            )
        try:
            while not self.stop.is_set():
                try:
                    busy = self.once(spool)
                    backoff = self.interval
                    self.last_error = None
                    self.last_ok = time.time()
                except (Unreachable, Rejected) as e:
                    busy = False
                    if self.last_error != str(e):
                        log.warning("server unreachable or refusing, spooling: %s", e)
                    self.last_error = str(e)
                    backoff = min(backoff * 2, 5.0)
                except Exception:
                    log.exception("posting the spool failed; retrying")
                    busy, backoff = False, min(backoff * 2, 5.0)
                if not busy:
                    self.wake.wait(backoff)
                    self.wake.clear()
        finally:
            spool.close()

    def once(self, spool: Spool) -> bool:
        """One pass; returns whether there may be more to post right away."""
        # Open the files before posting the records: everything their epoch logged was
        # spooled before they were written, so it is on the server before they are.
        snapshots = self._snapshot(spool)
        try:
            busy = self._post(spool, snapshots)
            for run_id, name, f, st in snapshots:
                if not f.closed:
                    self._ship(spool, run_id, name, f, st)
        finally:
            for _, _, f, _ in snapshots:
                f.close()
        now = time.monotonic()
        if self.presence is not None and now >= self._next_presence:
            self._next_presence = now + self.presence_every
            _, points, lag = spool.backlog()
            self.client.post("/presence", {**self.presence(), "backlog": points, "lag_s": lag})
        return busy

    def _snapshot(self, spool: Spool, only: int | None = None) -> list:
        out = []
        for run_id, folder in list(self.runs.items()):
            if only is not None and run_id != only:
                continue
            for name in SHIPPED:
                path = folder / name
                try:
                    f = path.open("rb")
                except FileNotFoundError:
                    continue
                st = os.fstat(f.fileno())
                shipped = spool.shipped(run_id, name)
                if shipped is not None and shipped[:2] == (st.st_size, st.st_mtime_ns):
                    f.close()
                    continue
                out.append((run_id, name, f, st))
        return out

    def _ship(self, spool: Spool, run_id: int, name: str, f, st) -> None:
        sha = files.ship(self.client, run_id, name, f, st.st_size)
        spool.set_shipped(run_id, name, st.st_size, st.st_mtime_ns, sha)
        f.close()

    def _post(self, spool: Spool, snapshots: list) -> bool:
        pending = spool.pending(wire.MAX_BODY // 2)
        if not pending:
            return False
        batch: list[bytes] = []
        for run, _attempt, _first, _last, outcome, body in pending:
            if outcome:
                # The run is over: its files go up before its outcome, so a finished run's
                # model is downloadable the moment it shows as finished.
                if batch:
                    break
                for s in self._snapshot(spool, only=run):
                    self._ship(spool, *s[:2], s[2], s[3])
                batch.append(body)
                break
            batch.append(body)
        answer = self.client.request("POST", "/records", data=wire.frame(batch), timeout=60).json()
        for run, attempt, hwm in answer.get("acks", []):
            spool.ack(run, attempt, hwm)
        for run, attempt, code, why in answer.get("refused", []):
            if code == 403:
                n = spool.drop(run, attempt)
                log.warning(
                    "server refuses run %s attempt %s (%s): %s chunks dropped", run, attempt, why, n
                )
            else:
                log.warning("server refuses run %s attempt %s: %s", run, attempt, why)
                return False
        for run in answer.get("cancel", []):
            spool.set_cancel(run)
        return True


# --- the task ------------------------------------------------------------------------------

_flusher: Flusher | None = None


def flusher() -> Flusher:
    """This worker process's flusher (started on first use)."""
    global _flusher
    if _flusher is None:
        _flusher = Flusher(Client.from_env(), _home(), presence=_presence_report).start()
    return _flusher


def _presence_report() -> dict[str, Any]:
    from jobs.queue import presence

    me = presence.current()
    gpu_name, gpu_mem = presence.gpu_info(me.device) if me._gpu is None else me._gpu
    me._gpu = (gpu_name, gpu_mem)
    return {
        "name": me.name,
        "host": me.host,
        "device": me.device,
        "gpu_name": gpu_name,
        "gpu_mem_total": gpu_mem,
        "queue": ",".join(me.queues),
        "current_run": me.current_run,
        "started_at": me.started_at,
        "status": "stopping" if me.shutting_down.is_set() else "online",
    }


def claim_with_retry(client: Client, run_id: int, slot: str, device: str, stop) -> dict | None:
    """Claim through the server, waiting out an outage (up to 10 minutes; then the message is
    dropped and the server's reaper sends the run again)."""
    deadline = time.monotonic() + 600
    delay = 0.5
    while True:
        try:
            return client.post("/claim", {"run_id": run_id, "slot": slot, "device": device})
        except Unreachable as e:
            if time.monotonic() > deadline or stop.is_set():
                log.warning("could not reach the server to claim run %s: %s", run_id, e)
                return None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def prepare_files(client: Client, home: Path, handout: dict[str, Any]) -> dict[str, Any]:
    """Fetch the run's dataset into the cache and its shipped checkpoint into its folder;
    returns the handout with the dataset's path on this worker."""
    from jobs.store.db import run_dir

    ds = handout.get("dataset")
    spec = handout["spec"]
    if ds and ds.get("sha256") and not str(ds.get("path", "")).startswith("builtin:"):
        server_path = ds["path"]
        local = files.fetch_dataset(
            client, home, ds["sha256"], Path(server_path).suffix, ds.get("size_bytes")
        )
        ds = {**ds, "path": str(local)}
        data = dict(spec.get("data") or {})
        if data.get("dataset") == server_path:
            data["dataset"] = str(local)
        spec = {**spec, "data": data}
    folder = run_dir(handout["run_id"], home)
    for name, f in (handout.get("files") or {}).items():
        if name == CHECKPOINT:
            files.fetch_run_file(client, folder, handout["run_id"], name, f["sha256"])
    return {**handout, "dataset": ds, "spec": spec}


def supervise(run_id: int, *, explain_exit) -> str:
    """The task body on a remote worker (see the module docstring); ``explain_exit`` is
    ``jobs.queue.tasks.exit_reason`` (passed in: the task module imports this one)."""
    from celery.exceptions import Reject

    from jobs.queue import presence, spare
    from jobs.queue.celery_app import settings
    from jobs.queue.runner import EXIT_RELEASED, runner_log
    from jobs.queue.watch import Beat, watch
    from jobs.store.db import run_dir

    s = settings()
    me = presence.current()
    if me.shutting_down.is_set():
        raise Reject(f"worker {me.name} is shutting down", requeue=True)
    fl = flusher()
    client = fl.client
    home = _home()
    try:
        got = claim_with_retry(client, run_id, me.name, me.device, me.shutting_down)
    except Rejected as e:
        log.warning("server refused the claim of run %s: %s", run_id, e)
        return "refused"
    if got is None:
        return "server unreachable"
    if "skipped" in got:
        return f"skipped: {got['skipped']}"
    run_id, attempt = got["run_id"], got["attempt"]
    spool = Spool(home)
    me.current_run = run_id
    try:
        try:
            handout = prepare_files(client, home, got)
        except (files.FetchError, Unreachable, Rejected) as e:
            handout = got
            spool.start_run(run_id, attempt, handout)
            _spool_outcome(
                spool, run_id, attempt, "failed", f"could not fetch the run's files: {e}"
            )
            return _drain(fl, spool, client, run_id, attempt, me.name)
        spool.start_run(run_id, attempt, handout)
        folder = run_dir(run_id, home)
        folder.mkdir(parents=True, exist_ok=True)
        fl.watch(run_id, folder)
        try:
            child = spare.start_runner(run_id)
        except OSError as e:
            _spool_outcome(
                spool, run_id, attempt, "failed", f"could not start the run's process: {e}"
            )
            return _drain(fl, spool, client, run_id, attempt, me.name)
        last: dict[str, Any] = {}  # the newest heartbeat's answer (None: unreachable)

        def beat() -> Beat:
            last["beat"] = answer = _beat(client, spool, run_id, attempt, me.name)
            # Taken from us (lost, revoked and handed back): stop at once. Unreachable: keep
            # training; the records wait in the spool.
            return Beat.LOST if answer is not None and not answer["held"] else Beat.HELD

        def cancelled() -> bool:
            answer = last.get("beat")
            if answer is not None and answer["cancel"]:
                spool.set_cancel(run_id)
                return True
            return False

        watched = watch(
            child,
            heartbeat_s=s.heartbeat_s,
            beat=beat,
            cancelled=cancelled,
            shutting_down=me.shutting_down,
        )
        if watched.code is None:
            return "lost"
        code, released = watched.code, watched.released
        if not _has_outcome(spool, run_id, attempt, client, me.name):
            if released and code == EXIT_RELEASED:
                _spool_outcome(spool, run_id, attempt, "released", None)
            elif spool.cancel_requested(run_id):
                _spool_outcome(spool, run_id, attempt, "cancelled", None)
            else:
                _spool_outcome(
                    spool,
                    run_id,
                    attempt,
                    "failed",
                    explain_exit(code, runner_log(run_id), run_id=run_id) + _unsent(spool, run_id),
                )
        return _drain(fl, spool, client, run_id, attempt, me.name)
    finally:
        me.current_run = None
        spool.close()


def _beat(client, spool, run_id, attempt, slot) -> dict | None:
    try:
        return client.post(
            "/heartbeat",
            {
                "run_id": run_id,
                "attempt": attempt,
                "slot": slot,
                "progress": spool.progress(run_id),
            },
        )
    except Unreachable:
        return None  # keep training; the records wait in the spool
    except Rejected as e:
        if e.status == 401:  # the token was revoked: the server handed the run back
            return {"held": False, "cancel": False, "status": "revoked"}
        raise


def _has_outcome(spool: Spool, run_id: int, attempt: int, client, slot) -> bool:
    if spool.has_outcome(run_id, attempt):
        return True
    # Already posted and acknowledged? Then the server has moved on from "running".
    beat = _beat(client, spool, run_id, attempt, slot)
    return beat is not None and not beat["held"] and beat["status"] != "running"


def _unsent(spool: Spool, run_id: int) -> str:
    """What a run's process that died took with it, as far as this worker can tell."""
    _, points, _ = spool.backlog(run_id)
    return (
        f" The spool on this worker still holds {points} of its points (they are sent); only "
        "what it logged in its last 0.25 s, not yet spooled, is lost."
    )


def _spool_outcome(spool: Spool, run_id: int, attempt: int, status: str, error: str | None) -> None:
    seq = spool.next_seq(run_id, attempt)
    outcome = {"status": status, "error": error, "error_msg": None, "summary": None}
    chunk = wire.Chunk(run_id, attempt, seq, seq, outcome=outcome)
    spool.append(run_id, attempt, seq, seq, 0, wire.encode(chunk), outcome=True)


def _drain(fl: Flusher, spool: Spool, client, run_id: int, attempt: int, slot: str) -> str:
    """Hold the run (heartbeating) until the server has every record of this attempt: a run
    whose outcome is still in the spool must not look abandoned to the reaper."""
    from jobs.queue.celery_app import settings

    s = settings()
    while spool.backlog(run_id)[0]:
        fl.wake.set()
        beat = _beat(client, spool, run_id, attempt, slot)
        if beat is not None and beat["status"] == "revoked":
            log.warning("token revoked: run %s's last records stay in the spool", run_id)
            return "revoked"
        time.sleep(min(s.heartbeat_s, 1.0))
    fl.runs.pop(run_id, None)
    return "reported"
