"""Starting a worker, and what a worker does besides running tasks.

Pool: ``threads`` with a concurrency of one. The task itself does no training: it claims the
run, starts ``python -m jobs.runner`` (a fresh process per run, see ``jobs.runner``), watches it
and heartbeats. A thread pool keeps the worker's consumer responsive while a run goes on (so
``celery inspect ping`` answers, and a warm shutdown can tell the run to checkpoint), and the
worker process never imports torch, so CUDA is never initialised in a process that forks.
(The alternative, prefork with ``worker_max_tasks_per_child=1``, forks the worker, re-runs a
task whose child crashed through ``reject_on_worker_lost``, and cannot watch its own run.)

Besides tasks, each worker runs one background thread that
- writes the worker's row in the ``workers`` table (host, device, GPU, current run, last seen),
  so the UI sees who is alive without asking the broker;
- runs the reaper (``jobs.reaper.reap_once``) at start and then every ``reap_interval_s``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from celery import signals

from jobs import registry
from jobs.celery_app import current_app, settings
from jobs.db import connect

log = logging.getLogger(__name__)


def parse_device(device: str) -> str:
    """Validate ``cpu`` / ``cuda`` / ``cuda:N``; returns the canonical form."""
    if device == "cpu":
        return device
    if device == "cuda":
        return "cuda:0"
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N")


def device_class(device: str) -> str:
    return "cpu" if device == "cpu" else "gpu"


def queues_for(device: str) -> list[str]:
    """A GPU worker also drains the ``cpu`` queue (runs that need no GPU run anywhere);
    a CPU worker never takes ``gpu`` runs."""
    return ["gpu", "cpu"] if device_class(device) == "gpu" else ["cpu"]


def gpu_info(device: str) -> tuple[str | None, int | None]:
    """GPU name and memory (MiB) from nvidia-smi, without importing torch or touching CUDA."""
    if device == "cpu" or not shutil.which("nvidia-smi"):
        return None, None
    index = device.split(":", 1)[1]
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible and int(index) < len(visible):
        index = visible[int(index)]  # cuda:N counts only the visible GPUs; nvidia-smi sees all
    try:
        out = subprocess.run(
            ["nvidia-smi", "-i", index, "--query-gpu=name,memory.total",
             "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        name, mem = (p.strip() for p in out.splitlines()[0].split(","))
        return name, int(float(mem))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None, None


def visible_gpus() -> list[str]:
    """``cuda:N`` for every visible GPU: those in CUDA_VISIBLE_DEVICES when it is set, else
    those nvidia-smi lists (none without nvidia-smi)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        visible = [v for v in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if v.strip()]
        return [f"cuda:{i}" for i in range(len(visible))]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    n = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    return [f"cuda:{i}" for i in range(n)]


def default_name(device: str) -> str:
    return f"{device.replace(':', '')}@{socket.gethostname()}"


@dataclass
class Presence:
    """This worker process's identity and its row in the ``workers`` table."""

    name: str
    device: str
    queues: list[str]
    host: str = field(default_factory=socket.gethostname)
    started_at: float = field(default_factory=time.time)
    current_run: int | None = None
    shutting_down: threading.Event = field(default_factory=threading.Event)
    _gpu: tuple[str | None, int | None] | None = field(default=None, repr=False)

    def report(self, db=None, status: str = "online") -> None:
        gpu_name, gpu_mem = gpu_info(self.device) if self._gpu is None else self._gpu
        self._gpu = (gpu_name, gpu_mem)
        registry.upsert_worker(
            db or connect(),
            self.name,
            host=self.host,
            device=self.device,
            gpu_name=gpu_name,
            gpu_mem_total=gpu_mem,
            pid=os.getpid(),
            queue=",".join(self.queues),
            current_run=self.current_run,
            last_seen=time.time(),
            started_at=self.started_at,
            status=status,
        )


def presence_from_env() -> Presence:
    device = parse_device(os.environ.get("TRAINBOARD_WORKER_DEVICE", "cpu"))
    name = os.environ.get("TRAINBOARD_WORKER_NAME") or default_name(device)
    return Presence(name=name, device=device, queues=queues_for(device))


# One per worker process; the task reads it to know who it is.
PRESENCE = presence_from_env()


def _housekeeping() -> None:
    from jobs.reaper import reap_once  # the reaper imports submit, which imports the engine config

    s = settings()
    db = connect()  # this thread's own connection
    next_reap = 0.0
    while not PRESENCE.shutting_down.is_set():
        try:
            PRESENCE.report(db)
            if time.monotonic() >= next_reap:
                reap_once(db, current_app())
                next_reap = time.monotonic() + s.reap_interval_s
        except Exception:  # keep the thread alive through a locked DB or a broker outage
            log.exception("worker housekeeping failed; retrying")
        PRESENCE.shutting_down.wait(min(s.heartbeat_s, s.reap_interval_s))


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **_) -> None:
    from jobs.tasks import prepare_spare

    prepare_spare()
    threading.Thread(target=_housekeeping, name="trainboard-housekeeping", daemon=True).start()
    log.info("trainboard worker %s ready (device %s, queues %s)",
             PRESENCE.name, PRESENCE.device, ",".join(PRESENCE.queues))


@signals.worker_shutting_down.connect
def _on_shutting_down(**_) -> None:
    # The running task sees this and asks its run to checkpoint and stop (jobs.tasks).
    from jobs.tasks import discard_spare

    PRESENCE.shutting_down.set()
    discard_spare()


@signals.worker_shutdown.connect
def _on_shutdown(**_) -> None:
    try:
        PRESENCE.report(status="stopped")
    except Exception:
        log.exception("could not mark worker %s stopped", PRESENCE.name)


def worker_argv(device: str, *, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    s = settings()
    device = parse_device(device)
    queues = ",".join(s.queue_name(q) for q in queues_for(device))
    return [
        "worker",
        "--pool=threads",
        "--concurrency=1",
        f"--hostname={name or default_name(device)}",
        f"--queues={queues}",
        # Presence lives in the database; Celery's own gossip, mingle and event heartbeats
        # would only add broker traffic and seconds of start-up.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--loglevel={loglevel}",
    ]


def run_worker(device: str = "cpu", *, name: str | None = None, loglevel: str = "INFO") -> None:
    """Run a worker in this process until it is stopped (``trainboard worker``)."""
    device = parse_device(device)
    name = name or default_name(device)
    # PRESENCE is built at import from these variables; the runner processes inherit them too.
    os.environ["TRAINBOARD_WORKER_DEVICE"] = device
    os.environ["TRAINBOARD_WORKER_NAME"] = name
    global PRESENCE
    PRESENCE = presence_from_env()
    current_app().worker_main(worker_argv(device, name=name, loglevel=loglevel))
