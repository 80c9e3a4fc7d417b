"""What one run, and one person, may ask of a shared server: checked when a run is queued.

- queued runs per user (``TRAINBOARD_MAX_QUEUED_PER_USER``, default 20), counted in the same
  statement that records the run (``jobs.store.registry.create_run``);
- epochs and ensemble members (``TRAINBOARD_MAX_EPOCHS``, ``TRAINBOARD_MAX_ENSEMBLE``) and the
  seed's range (0 … 2³²−1, what the engine's generators take);
- a parameter budget (``TRAINBOARD_MAX_PARAMS``) and a memory budget
  (``TRAINBOARD_MAX_RUN_MEMORY_GB``), estimated from the model settings and the dataset's
  input shape before anything is queued, and checked against the largest device of the
  workers that could take the run (a GPU's memory for the ``gpu`` queue, this machine's memory
  otherwise).

While runs run (team mode), two more (issue 18, #6):

- running runs per member (``TRAINBOARD_MAX_RUNNING_PER_USER``, default half the live worker
  slots, at least 1), enforced in the statement that claims a run
  (``jobs.store.registry.claim_run``), so N long runs from one member never hold every slot;
- wall time per run (``TRAINBOARD_MAX_RUN_HOURS``, default 24, per attempt): the run's process
  stops it with a checkpoint and a clear status, and it can be resumed (``jobs.queue.runner``).

The estimate is arithmetic on the config (no torch): the layer sizes ``engine.models`` builds,
from their one home, ``engine.shapes``. Every refusal is a ``ConfigError`` keyed by the field
to change, so the New run form shows it beside that field and nothing is queued.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.messages import Message
from engine.shapes import AUTO_KIND, layer_sizes

MAX_SEED = 2**32 - 1
GIB = 1 << 30


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(float(raw))
    except ValueError as e:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from e
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {raw!r}")
    return value


def max_running_per_user(db: Any) -> int | None:
    """How many runs one member may have running at once; None (no cap) outside team mode,
    where every run is the one local user's."""
    from jobs.people.auth import team_mode
    from jobs.store import registry

    if not team_mode():
        return None
    raw = os.environ.get("TRAINBOARD_MAX_RUNNING_PER_USER", "").strip()
    if raw:
        return _env_int("TRAINBOARD_MAX_RUNNING_PER_USER", 1)
    slots = sum(w.get("status") not in ("stopped", "offline") for w in registry.list_workers(db))
    return max(1, slots // 2)


def max_run_seconds() -> float:
    """A run's wall-time limit per attempt (TRAINBOARD_MAX_RUN_HOURS, default 24)."""
    raw = os.environ.get("TRAINBOARD_MAX_RUN_HOURS", "").strip()
    hours = float(raw) if raw else 24.0
    if hours <= 0:
        raise ValueError(f"TRAINBOARD_MAX_RUN_HOURS must be above 0, got {raw!r}")
    return hours * 3600


def time_limit_message(seconds: float) -> Message:
    return Message("guard.time_limit", hours=seconds / 3600)


@dataclass(frozen=True)
class Quotas:
    """The server's limits, from the environment (read on each call: no restart needed for
    the CLI; the dashboard reads them when it starts a check)."""

    max_queued_per_user: int = 20
    max_epochs: int = 1000
    max_members: int = 16
    max_params: int = 200_000_000  # all ensemble members together
    max_memory_bytes: int = 32 * GIB

    @classmethod
    def from_env(cls) -> Quotas:
        d = cls()
        return cls(
            max_queued_per_user=_env_int("TRAINBOARD_MAX_QUEUED_PER_USER", d.max_queued_per_user),
            max_epochs=_env_int("TRAINBOARD_MAX_EPOCHS", d.max_epochs),
            max_members=_env_int("TRAINBOARD_MAX_ENSEMBLE", d.max_members),
            max_params=_env_int("TRAINBOARD_MAX_PARAMS", d.max_params),
            max_memory_bytes=int(
                float(os.environ.get("TRAINBOARD_MAX_RUN_MEMORY_GB") or d.max_memory_bytes / GIB)
                * GIB
            ),
        )


@dataclass(frozen=True)
class Estimate:
    """A run's size before it runs: parameters (all members) and training memory in bytes."""

    params: int
    memory_bytes: int
    kind: str
    exact_input: bool  # False: the dataset's input shape is unknown; a lower bound


def _kind(model: dict[str, Any], modality: str) -> str:
    kind = model.get("kind", "auto")
    if kind != "auto":
        return kind
    return AUTO_KIND.get(modality, "mlp")


def _input(info: dict[str, Any] | None) -> tuple[str, tuple[int, ...], int, int, bool]:
    """(modality, input shape, outputs, rows, exact) from a dataset report; a lower bound when
    the report predates the shape (or there is none: a file given on the command line)."""
    info = info or {}
    modality = info.get("modality") or "tabular"
    outputs = int(info.get("outputs") or len(info.get("classes") or []) or 1)
    rows = int(info.get("rows") or 0)
    shape = info.get("input_shape")
    if shape:
        return modality, tuple(int(n) for n in shape), outputs, rows, True
    if modality == "image":
        return modality, (1, 1, 1), outputs, rows, False
    if modality == "sequence":
        return modality, (1, 1), outputs, rows, False
    return modality, (max(int(info.get("columns") or 2) - 1, 1),), outputs, rows, False


def estimate(spec: dict[str, Any], info: dict[str, Any] | None = None) -> Estimate:
    """Parameters and training memory of the run ``spec`` on the dataset described by
    ``info`` (its stored report): weights, gradients, optimizer state and the best weights per
    parameter, the data (moved to the device whole) and one batch's activations."""
    modality, shape, outputs, rows, exact = _input(info)
    kind = _kind(spec.get("model", {}), modality)
    per_member, acts = layer_sizes(spec.get("model", {}), kind, shape, outputs)
    members = int(spec.get("ensemble", {}).get("members", 1))
    params = per_member * members
    optim = spec.get("optim", {})
    states = 2 if optim.get("name") in ("adam", "adamw") else int(optim.get("momentum", 0.9) > 0)
    train = spec.get("train", {})
    batch = int(train.get("batch_size", 128))
    max_rows = spec.get("data", {}).get("max_rows")
    rows = min(rows, int(max_rows)) if max_rows else rows
    data_bytes = rows * math.prod(shape) * 4
    memory = 4 * params * (3 + states) + data_bytes + 2 * 4 * batch * acts * members
    return Estimate(params=params, memory_bytes=memory, kind=kind, exact_input=exact)


def _size(n: float) -> str:
    return f"{n / GIB:.3g} GiB" if n >= GIB else f"{n / 2**20:.3g} MiB"


def device_memory(db: Any, queue: str) -> tuple[int | None, str]:
    """The most memory a worker that could take a ``queue`` run has, and what it is: the
    largest GPU among live workers for ``gpu`` runs, this machine's memory otherwise."""
    if queue == "gpu" and db is not None:
        from jobs.store import registry

        mib = registry.largest_gpu_mib(db)
        if mib:
            return mib * 2**20, Message("quota.what.gpu")
        return None, ""
    try:
        pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return pages, Message("quota.what.server")
    except (ValueError, OSError, AttributeError):
        return None, ""


def check_spec(
    spec: dict[str, Any],
    info: dict[str, Any] | None = None,
    *,
    queue: str = "cpu",
    db: Any = None,
    quotas: Quotas | None = None,
) -> Estimate:
    """Raise ConfigError (each offending field and what is allowed) when ``spec`` asks for
    more than the server allows; the size estimate otherwise."""
    q = quotas or Quotas.from_env()
    errors: dict[str, Message] = {}
    train = spec.get("train", {})
    seed = train.get("seed", 0)
    if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        errors["train.seed"] = Message("quota.seed", limit=MAX_SEED)
    if int(train.get("epochs", 1)) > q.max_epochs:
        errors["train.epochs"] = Message(
            "quota.epochs", limit=q.max_epochs, asked=int(train.get("epochs"))
        )
    members = int(spec.get("ensemble", {}).get("members", 1))
    if members > q.max_members:
        errors["ensemble.members"] = Message("quota.members", limit=q.max_members, asked=members)
    est = estimate(spec, info)
    field = {"cnn": "model.channels", "lstm": "model.rnn_hidden", "gru": "model.rnn_hidden"}.get(
        est.kind, "model.hidden"
    )
    if est.params > q.max_params:
        errors[field] = Message(
            "quota.params_members" if members > 1 else "quota.params",
            params=est.params,
            members=members,
            limit=q.max_params,
        )
    elif est.memory_bytes > q.max_memory_bytes:
        errors["train.batch_size"] = Message(
            "quota.memory", need=_size(est.memory_bytes), limit=_size(q.max_memory_bytes)
        )
    else:
        device, what = device_memory(db, queue)
        if device is not None and est.memory_bytes > device:
            errors["train.batch_size"] = Message(
                "quota.device", need=_size(est.memory_bytes), what=what, device=_size(device)
            )
    if errors:
        raise ConfigError("; ".join(f"{k}: {v}" for k, v in errors.items()), errors)
    return est


__all__ = ["MAX_SEED", "Estimate", "Quotas", "check_spec", "device_memory", "estimate"]
