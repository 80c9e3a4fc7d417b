"""Every way a run gets queued or stopped: submit, cancel, an A/B pair, "the same with a change".

A run is validated once, here, into a :class:`RunRequest` (the resolved, JSON-ready config);
then it is recorded in the database (status ``queued``) and only then sent to the broker as its
id alone (``jobs.queue.sends``). If the broker can't be reached the run stays queued with a
visible note, and the reaper sends it as soon as the broker answers: a submit is never lost.
The runner later re-checks only the stored resolved spec.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from jobs.format import flatten
from jobs.queue.celery_app import DEVICE_CLASSES
from jobs.queue.sends import send_run
from jobs.store import registry
from jobs.store.db import connect

BROKER_DOWN_NOTE = (
    "the broker is unreachable; the run stays queued and is sent as soon as it is back"
)


@dataclass(frozen=True)
class Submitted:
    run_id: int
    sent: bool
    note: str | None = None  # set when the run waits for the broker


@dataclass(frozen=True)
class RunRequest:
    """A validated run, ready to record: the preset it came from and the resolved config."""

    preset: str
    spec: dict[str, Any]

    @property
    def dataset(self) -> str:
        return self.spec["data"]["dataset"]


def validate(
    preset: str,
    dataset: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> RunRequest:
    """Resolve preset → dataset/target → overrides. Raises ``engine.errors.ConfigError`` (with
    ``.fields``: each offending field and what is wrong) when the config is invalid."""
    from engine.config import resolve_config  # the engine's config only; no torch

    config = resolve_config(preset, dataset=dataset, target=target, overrides=overrides)
    return RunRequest(preset=preset, spec=config.to_dict())


def record(
    request: RunRequest,
    *,
    queue: str = "cpu",
    owner: str = "local",
    name: str | None = None,
    dataset_id: int | None = None,
    group_id: str | None = None,
    max_attempts: int = 3,
    db: sqlite_utils.Database | None = None,
) -> Submitted:
    """Record an already validated run and send it (no second validation)."""
    if queue not in DEVICE_CLASSES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(DEVICE_CLASSES)}")
    db = db or connect()
    run_id = registry.create_run(
        db,
        spec=request.spec,
        preset=request.preset,
        dataset_id=dataset_id,
        owner=owner,
        name=name,
        queue=queue,
        group_id=group_id,
        max_attempts=max_attempts,
    )
    if send_run(db, run_id):
        return Submitted(run_id, sent=True)
    return Submitted(run_id, sent=False, note=BROKER_DOWN_NOTE)


def submit(
    preset: str,
    dataset: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    **record_options: Any,
) -> Submitted:
    """Validate the config, record the run, send it. ``record_options`` are :func:`record`'s
    (queue, owner, name, dataset_id, group_id, max_attempts, db). Raises
    ``engine.errors.ConfigError`` (with the field and the allowed values) before anything is
    queued if the config is invalid."""
    queue = record_options.get("queue", "cpu")
    if queue not in DEVICE_CLASSES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(DEVICE_CLASSES)}")
    return record(validate(preset, dataset, target=target, overrides=overrides), **record_options)


def cancel(run_id: int, db: sqlite_utils.Database | None = None) -> str:
    """Cancel a run: a queued run is cancelled at once; a running one is asked to stop and
    saves a checkpoint first (within about a second or two). Returns the status afterwards:
    ``cancelled``, or ``running`` while the stop is under way."""
    return registry.request_cancel(db or connect(), run_id)


# --- derived submissions ---------------------------------------------------------------------

# What "switching a tip off" means for an A/B pair, where the preset's own values alone would
# not say it (a preset that sets a tip's field to its default would otherwise change nothing).
TIP_OFF: dict[str, dict[str, Any]] = {
    "T2": {"data.standardize": False, "data.log1p": "off"},
    "T7": {"schedule.enabled": False, "train.early_stop_patience": None},
    "T4": {"optim.loss_reduction": "sum"},
    "T9": {"train.clip_norm": None},
    "T11": {"model.forget_bias": 0.0},
    "T12": {
        "augment.shift": 0,
        "augment.flip": False,
        "augment.rotate_deg": 0.0,
        "augment.noise_std": 0.0,
    },
    "T13": {"model.dropout": 0.0},
    "T14": {"ensemble.members": 1},
    "T8": {"model.init": "default"},
    "T10": {"train.preflight": False, "train.overfit_one_batch": False},
}


def spec_overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a resolved spec as dotted overrides (to resubmit it exactly)."""
    flat = flatten(spec)
    flat.pop("preset", None)
    return flat


def tip_off_overrides(preset: str, tip: str) -> dict[str, Any]:
    """Overrides that switch ``tip`` off in ``preset``: the fields the preset sets for that tip
    go back to the engine's defaults, plus the tip's own off switch from :data:`TIP_OFF`."""
    from engine.config import Config, get_preset

    p = get_preset(preset)
    defaults = flatten(Config().to_dict())
    off = {s.field: defaults.get(s.field) for s in p.settings if s.tip == tip}
    off.update(TIP_OFF.get(tip, {}))
    return off


def ab_tips(preset: str) -> list[str]:
    """Tips of a preset that can be switched off for an A/B pair: those with a clear "off"
    (:data:`TIP_OFF`) whose switch changes at least one setting of the preset."""
    from engine.config import resolve_config

    base = flatten(resolve_config(preset).to_dict())
    out = []
    for tip in sorted(TIP_OFF, key=lambda t: int(t[1:])):
        off = tip_off_overrides(preset, tip)
        if any(base.get(k) != v for k, v in off.items()):
            out.append(tip)
    return out


def submit_ab_pair(
    preset: str,
    dataset: str,
    tip: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | None = None,
    dataset_id: int | None = None,
    owner: str = "local",
    queue: str = "cpu",
    db: sqlite_utils.Database | None = None,
) -> tuple[int, int, str]:
    """Queue the same run twice, once as is and once with ``tip`` switched off, in one group.
    Returns (run with the tip, run without it, group id). Validates both before queueing."""
    base = dict(overrides or {})
    off = {**base, **tip_off_overrides(preset, tip)}
    # Validate both configs first: the pair is queued whole or not at all.
    with_tip = validate(preset, dataset, target=target, overrides=base)
    without = validate(preset, dataset, target=target, overrides=off)
    group = f"ab-{uuid.uuid4().hex[:8]}"
    common = {"queue": queue, "owner": owner, "dataset_id": dataset_id, "group_id": group, "db": db}
    a = record(with_tip, name=f"A/B {tip} on", **common)
    b = record(without, name=f"A/B {tip} off", **common)
    return a.run_id, b.run_id, group


def submit_with_change(
    db: sqlite_utils.Database, run_id: int, change: dict[str, Any], *, owner: str | None = None
) -> int:
    """Queue a copy of run ``run_id`` with ``change`` applied on top of its resolved config."""
    run = registry.get_run(db, run_id)
    spec = run["spec"]
    overrides = {**spec_overrides(spec), **change}
    what = ", ".join(f"{k}={v}" for k, v in change.items())
    sub = submit(
        spec.get("preset") or run.get("preset") or "sutskever",
        spec["data"]["dataset"],
        target=spec["data"].get("target"),
        overrides=overrides,
        queue=run.get("queue") or "cpu",
        owner=owner or run.get("owner") or "local",
        name=f"run {run_id} + {what}"[:120],
        dataset_id=run.get("dataset_id"),
        group_id=run.get("group_id"),
        db=db,
    )
    return sub.run_id
