"""Who this worker process is (name, device, queues), and its row in the ``workers`` table.

Also the device helpers a worker needs without importing torch or touching CUDA: parsing
``cpu`` / ``cuda:N``, the queues a device drains, and GPU name and memory from ``nvidia-smi``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from jobs.store import registry
from jobs.store.db import connect


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
    visible = [
        v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()
    ]
    if visible and int(index) < len(visible):
        index = visible[int(index)]  # cuda:N counts only the visible GPUs; nvidia-smi sees all
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "-i",
                index,
                "--query-gpu=name,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return parse_gpu_query(out)


def parse_gpu_query(text: str) -> tuple[str | None, int | None]:
    """``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`` → (name, MiB).
    The first GPU's line counts; a memory of ``[N/A]`` (some MIG and vGPU setups) keeps the name."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    name, comma, mem = line.rpartition(",")  # a GPU name never holds a comma; split at the last
    if not comma or not name.strip():
        return None, None
    try:
        mib = int(float(mem))
    except ValueError:
        mib = None
    return name.strip(), mib


def count_gpus(text: str) -> int:
    """GPUs in ``nvidia-smi -L`` output (``GPU 0: …`` lines; MIG slices below them don't count)."""
    return sum(1 for line in text.splitlines() if line.startswith("GPU "))


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
    return [f"cuda:{i}" for i in range(count_gpus(out.stdout))]


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


# What the dashboard and the worker processes themselves need of a CPU box while runs train:
# about half a core (Streamlit reruns a live page every 2 s; the workers only heartbeat).
DASHBOARD_CORES = 0.5


def cpu_slots(cores: int, slots: int | None = None) -> tuple[int, int]:
    """How many CPU worker slots ``trainboard up`` starts on a box with ``cores`` cores, and how
    many cores each owns (its runs' thread budget, ``TRAINBOARD_CORES``): as many one-core slots
    as fit beside the dashboard's share, so runs never oversubscribe the cores (measured in
    docs/operations.md, "Threads"). ``slots`` (``--cpu-slots``) overrides the count; the cores
    left after the dashboard's share are then split evenly between them."""
    usable = max(1, int(cores - DASHBOARD_CORES))
    if slots is None:
        slots = usable
    if slots < 1:
        raise ValueError(f"--cpu-slots must be at least 1, got {slots}")
    return slots, max(1, usable // slots)


def slot_name(device: str, slot: int, slots: int) -> str:
    """``cpu@host`` for a single slot, ``cpu1@host``, ``cpu2@host``… for several."""
    base = default_name(device)
    if slots <= 1:
        return base
    label, _, host = base.partition("@")
    return f"{label}{slot}@{host}"


def make_presence(device: str = "cpu", name: str | None = None) -> Presence:
    device = parse_device(device)
    return Presence(name=name or default_name(device), device=device, queues=queues_for(device))


# One per worker process: set once by ``jobs.queue.worker.run_worker`` before the worker starts
# consuming; the task and the spare runner read it to know who they are.
_current: Presence | None = None


def current() -> Presence:
    """This process's worker identity (a CPU worker named after the host until one is set)."""
    global _current
    if _current is None:
        _current = make_presence()
    return _current


def set_current(presence: Presence) -> None:
    global _current
    _current = presence
