"""Every way a run gets queued or stopped: submit, cancel, an A/B pair, "the same with a change".

A run is validated once, here, into a :class:`RunRequest` (the resolved, JSON-ready config);
then it is recorded in the database (status ``queued``) and only then sent to the broker as its
id alone (``jobs.queue.sends``). If the broker can't be reached the run stays queued with a
visible note, and the reaper sends it as soon as the broker answers: a submit is never lost.
The runner later re-checks only the stored resolved spec.

Before a run is recorded it must fit the server's quotas (``jobs.runs.quotas``: epochs, ensemble
size, seed range, a parameter and memory budget, queued runs per user). A run that is over can
be deleted with its files (:func:`delete_run`), and a failed, cancelled or lost run with a
checkpoint can be resumed from it under the same id (:func:`resume`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.errors import ConfigError
from engine.limits import CHECKPOINT
from engine.messages import Message
from engine.tips import NOT_AB, TIP_OFF
from engine.vocab import ACTIVE
from jobs.errors import DatasetNotFound, QuotaExceeded, RunActive
from jobs.queue.celery_app import DEVICE_CLASSES
from jobs.queue.checkpoints import checkpoint_epoch
from jobs.queue.sends import send_run
from jobs.runs import quotas
from jobs.runs.format import flatten
from jobs.runs.names import TextRefused, clean_text
from jobs.store import registry
from jobs.store.db import connect, data_home, run_dir

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


def data_facts(
    preset: str,
    dataset: str,
    target: str | None,
    info: dict[str, Any] | None,
    facts: dict[str, Any] | None = None,
) -> Any:
    """The dataset facts a preset derives settings from (``auto``, or one with settings that
    follow the data, e.g. T3's batch; None for the other presets): ``facts`` a run already
    recorded (``Config.auto``), else the stored report ``info`` (the dashboard never loads data
    to queue a run), else by loading the file or builtin (the command line)."""
    from engine.auto import DataFacts
    from engine.config import get_preset

    if not get_preset(preset).follows_data:
        return None
    if facts:
        return DataFacts.from_dict(facts)
    if info and "rows" in info and "task" in info:
        return DataFacts.from_report(info)
    from engine.data.loaders import load_dataset  # the data layer (torch): CLI only
    from engine.errors import DataError

    try:
        return DataFacts.from_raw(load_dataset(dataset, target=target))
    except DataError as e:  # refused before anything is queued, not failed on the worker
        raise ConfigError(str(e), {"data.dataset": str(e)}) from e


def validate(
    preset: str,
    dataset: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    info: dict[str, Any] | None = None,
    queue: str = "cpu",
    facts: dict[str, Any] | None = None,
) -> RunRequest:
    """Resolve preset → dataset/target → overrides, then check the server's quotas (``info``:
    the dataset's stored report, for the size estimate). Raises ``engine.errors.ConfigError``
    (with ``.fields``: each offending field and what is wrong) when the config is invalid or
    asks for more than the server allows."""
    from engine.config import resolve_config  # the engine's config only; no torch

    config = resolve_config(
        preset,
        dataset=dataset,
        target=target,
        overrides=overrides,
        facts=data_facts(preset, dataset, target, info, facts),
    )
    spec = config.to_dict()
    quotas.check_spec(spec, info, queue=queue)
    return RunRequest(preset=preset, spec=spec)


# --- what a member may set, and the one dataset a run may read ---------------------------------

# The data a run reads comes only from the dataset a member picked (its stored file, target and
# task: engine.config.LOCKED_FIELDS), never from a setting typed in the browser.
DATA_LOCKED = Message("guard.data_locked")


@functools.cache  # the config's fields are fixed for the life of the process
def member_fields() -> frozenset[str]:
    """The exact dotted names a member's overrides may set (the "More settings" box, the A/B
    path, "queue with this change"): ``engine.config.settable_fields``, every leaf of the config
    except the data's identity and the bookkeeping fields. An allowlist, so a whole section
    (``data``), another spelling (``Data.Dataset``, `` data.dataset``) or any future way of
    naming a path is refused by name instead of being merged (docs/team-mode.md, threat
    model)."""
    from engine.config import settable_fields

    return frozenset(settable_fields())


def _squash(key: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", key)).lower()


def member_override_errors(overrides: dict[str, Any]) -> dict[str, str]:
    """Each override key a member may not set, with why (empty: all allowed)."""
    allowed = member_fields()
    sections = {f.split(".")[0] for f in allowed}
    allowed_squashed = {_squash(f) for f in allowed}
    errors: dict[str, str] = {}
    for key in overrides:
        if isinstance(key, str) and key in allowed:
            continue
        text = key if isinstance(key, str) else repr(key)
        squashed = _squash(text)
        if squashed.startswith("data") and squashed not in allowed_squashed:
            why = DATA_LOCKED
        elif squashed in {"preset", "auto"}:
            why = Message("guard.set_by_preset")
        elif squashed in sections:
            first = min(f for f in allowed if f.startswith(squashed + "."))
            why = Message("guard.whole_section", field=first)
        else:
            why = Message("guard.unknown_setting")
        errors[text[:200]] = why
    return errors


def check_dataset(
    db: sqlite_utils.Database, spec: dict[str, Any], dataset_id: int | None
) -> dict[str, Any]:
    """The registered dataset a resolved spec reads, after checking that the spec's data fields
    are exactly that dataset's stored file and target; a spec that names no target gets the
    dataset's own (so the stored spec says which column it trains on). With no ``dataset_id``
    (the command line, library callers) the source must already be registered; a bundled
    sample is registered on first use. Raises ``ConfigError`` on ``data.dataset``."""
    data = spec["data"]
    source, target = data["dataset"], data.get("target")
    if dataset_id is None:
        rows = [
            r
            for r in registry.list_datasets(db)
            if r["path"] == source and (target is None or r["target"] == target)
        ]
        if not rows and source.startswith("builtin:"):
            from jobs.datasets import (
                ingest as datasets,  # registers a bundled sample (loads it: the CLI only)
            )

            rows = [datasets.register_builtin(db, source)]
        if not rows:
            msg = Message("guard.not_registered", source=_short(source))
            raise ConfigError(msg, {"data.dataset": msg})
        dataset_id = rows[-1]["id"]  # the oldest row of that file and target
    try:
        ds = registry.get_dataset(db, dataset_id)
    except DatasetNotFound as e:
        msg = Message("guard.dataset_gone", id=dataset_id)
        raise ConfigError(msg, {"data.dataset": msg}) from e
    if target is None:
        data["target"] = target = ds["target"]
    task = data.get("task", "auto")
    if not registry.reads_dataset(data, ds) or task not in ("auto", ds.get("task") or task):
        raise ConfigError(DATA_LOCKED, {"data.dataset": DATA_LOCKED})
    return ds


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class QueueFull(ConfigError):
    """The owner already has as many queued runs as one person may (``jobs.runs.quotas``)."""


def queue_quota(db: sqlite_utils.Database, owner: str, need: int = 1) -> str | None:
    """Why ``owner`` can't queue ``need`` more runs now, or None when they can."""
    q = quotas.Quotas.from_env()
    if registry.count_queued(db, owner) + need > q.max_queued_per_user:
        return registry.queued_quota_message(owner, q.max_queued_per_user)
    return None


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
    ab_arm: str | None = None,
) -> Submitted:
    """Record an already validated run and send it (no second validation). ``ab_arm``: "A" or
    "B" for a run of an A/B group."""
    if queue not in DEVICE_CLASSES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(DEVICE_CLASSES)}")
    db = db or connect()
    if name is not None:  # the one normaliser (jobs.runs.names): refused beyond 200, never cut
        try:
            name = clean_text(name, what="run name") or None
        except TextRefused as e:
            raise ConfigError(str(e), {"name": str(e)}) from e
    q = quotas.Quotas.from_env()
    # Every new run passes here (the form, A/B, "queue with this change", the CLI): the run
    # reads exactly one registered dataset, whatever its overrides said.
    ds = check_dataset(db, request.spec, dataset_id)
    dataset_id = ds["id"]
    # The same checks as validate, now with the stored dataset and the workers' devices.
    quotas.check_spec(request.spec, ds.get("report"), queue=queue, db=db, quotas=q)
    try:
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
            max_queued=q.max_queued_per_user,
            ab_arm=ab_arm,
        )
    except QuotaExceeded as e:
        raise QueueFull(str(e), {"queue": str(e)}) from e
    if send_run(db, run_id):
        return Submitted(run_id, sent=True)
    return Submitted(run_id, sent=False, note=BROKER_DOWN_NOTE)


def submit(
    preset: str,
    dataset: str,
    *,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    info: dict[str, Any] | None = None,
    facts: dict[str, Any] | None = None,
    **record_options: Any,
) -> Submitted:
    """Validate the config, record the run, send it. ``record_options`` are :func:`record`'s
    (queue, owner, name, dataset_id, group_id, max_attempts, db). Raises
    ``engine.errors.ConfigError`` (with the field and the allowed values) before anything is
    queued if the config is invalid."""
    queue = record_options.get("queue", "cpu")
    if queue not in DEVICE_CLASSES:
        raise ValueError(f"unknown queue {queue!r}; allowed: {', '.join(DEVICE_CLASSES)}")
    request = validate(
        preset, dataset, target=target, overrides=overrides, info=info, queue=queue, facts=facts
    )
    return record(request, **record_options)


def cancel(run_id: int, db: sqlite_utils.Database | None = None) -> str:
    """Cancel a run: a queued run is cancelled at once; a running one is asked to stop and
    saves a checkpoint first (within about a second or two). Returns the status afterwards:
    ``cancelled``, or ``running`` while the stop is under way."""
    return registry.request_cancel(db or connect(), run_id)


# --- derived submissions ---------------------------------------------------------------------


def spec_overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a resolved spec as dotted overrides (to resubmit it exactly)."""
    flat = flatten(spec)
    flat.pop("preset", None)
    # The auto preset's dataset facts are not settings; they go back in as ``facts``.
    return {k: v for k, v in flat.items() if not k.startswith("auto.") and k != "auto"}


def tip_off_overrides(preset: str, tip: str) -> dict[str, Any]:
    """Overrides that switch ``tip`` off in ``preset``: the fields the preset sets for that tip
    go back to the engine's defaults, plus the tip's own off switch from
    :data:`engine.tips.TIP_OFF`."""
    from engine.config import Config, get_preset

    p = get_preset(preset)
    defaults = flatten(Config().to_dict())
    off = {s.field: defaults.get(s.field) for s in p.settings if s.tip == tip}
    off.update(TIP_OFF.get(tip, {}))
    return off


def _tip_order(tip: str) -> int:
    return int(tip[1:]) if tip[1:].isdigit() else 999


def ab_tips(preset: str, facts: Any = None) -> list[str]:
    """Every tip an A/B pair can switch off in ``preset``, in tip order: each tip with a clear
    off switch (:data:`engine.tips.TIP_OFF`) and each tip the preset sets (off = its fields back
    to the engine's defaults), where that "off" (:func:`tip_off_overrides`) changes at least one
    setting of the preset. A tip whose "off" would change nothing is left out, and so are the
    tips of :data:`engine.tips.NOT_AB`. ``facts``: the dataset's (``engine.auto.DataFacts``),
    so the auto preset's derived settings count (its dropout and ensemble on a small table)."""
    from engine.config import preset_for, resolve_config

    base = flatten(resolve_config(preset, facts=facts).to_dict())
    settings = preset_for(preset, facts).settings
    candidates = (set(TIP_OFF) | {s.tip for s in settings if s.tip}) - NOT_AB
    out = []
    for tip in sorted(candidates, key=_tip_order):
        off = tip_off_overrides(preset, tip)
        if any(base.get(k) != v for k, v in off.items()):
            out.append(tip)
    return out


# An A/B group runs each seed in both arms (issue 23 §2): 5 by default, enough for a verdict on
# a clear difference; at most 10, so a whole group (20 runs) fits one member's default quota of
# queued runs. More pairs are another group on the next seeds (docs/dashboard.md).
AB_SEEDS = 5
MAX_AB_SEEDS = 10


@dataclass(frozen=True)
class AbGroup:
    """An A/B group as queued: its id and, per seed, (seed, run of arm A, run of arm B)."""

    group_id: str
    pairs: tuple[tuple[int, int, int], ...]

    @property
    def run_ids(self) -> list[int]:
        return [run for _seed, a, b in self.pairs for run in (a, b)]


def ab_seeds_error(seeds: object) -> Message | None:
    """Why ``seeds`` is not a number of seeds an A/B group may run, or None."""
    ok = isinstance(seeds, int) and not isinstance(seeds, bool) and 1 <= seeds <= MAX_AB_SEEDS
    return None if ok else Message("ab.seeds", limit=MAX_AB_SEEDS)


def submit_ab_group(
    preset: str,
    dataset: str,
    *,
    tip: str | None = None,
    change: dict[str, Any] | None = None,
    seeds: int = AB_SEEDS,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    dataset_id: int | None = None,
    owner: str = "local",
    queue: str = "cpu",
    info: dict[str, Any] | None = None,
    db: sqlite_utils.Database | None = None,
) -> AbGroup:
    """Queue an A/B group over paired seeds: arm A is the run as configured, arm B the same
    with ``tip`` switched off (:func:`tip_off_overrides`) or with ``change`` (any settings) on
    top; each of ``seeds`` seeds (from the run's ``train.seed`` on) runs in both arms.

    ``train.seed`` drives the split, the batch order and the initial weights, so seed s of A
    and seed s of B differ only in the change under test (``engine/abtest.py``). All 2N
    configs are validated and the quota checked before anything is queued (the group is queued
    whole or not at all); the runs are recorded A, B seed by seed, so finished pairs come early
    and the workers share them. Raises ``ConfigError`` with per-field errors."""
    if (tip is None) == (change is None):
        raise ValueError("name either a tip to switch off or a change, not both")
    if why := ab_seeds_error(seeds):
        raise ConfigError(why, {"seeds": why})
    if isinstance(overrides, list):
        from engine.config import parse_override

        overrides = dict(parse_override(o) for o in overrides)
    base = dict(overrides or {})
    # The dataset's facts once (the command line may have to load the file), not 2N times.
    facts = data_facts(preset, dataset, target, info)
    if tip is not None and tip not in (allowed := ab_tips(preset, facts)):
        why = Message("ab.unknown_tip", tip=tip, preset=preset, allowed=", ".join(allowed) or "—")
        raise ConfigError(why, {"tip": why})
    b_change = tip_off_overrides(preset, tip) if tip is not None else dict(change or {})
    if "train.seed" in b_change:  # the seed is what pairs the arms; it can't be what differs
        why = Message("ab.seed_in_change")
        raise ConfigError(why, {"train.seed": why})
    first = base.get("train.seed", 0)
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        first = 0  # validate() names the bad value below
    common = {"target": target, "info": info, "queue": queue, "facts": facts and facts.to_dict()}
    requests = []
    for seed in range(first, first + seeds):
        a = validate(preset, dataset, overrides={**base, "train.seed": seed}, **common)
        b = validate(preset, dataset, overrides={**base, **b_change, "train.seed": seed}, **common)
        requests.append((seed, a, b))
    db = db or connect()
    if why := queue_quota(db, owner, need=2 * seeds):
        raise QueueFull(why, {"queue": why})
    group = f"ab-{uuid.uuid4().hex[:8]}"
    if tip is not None:
        names = (f"A/B {tip} on", f"A/B {tip} off")
    else:
        what = ", ".join(f"{k}={v}" for k, v in b_change.items()) or "no change"
        names = (f"A/B {what[:100]}: A", f"A/B {what[:100]}: B")
    keep = {"queue": queue, "owner": owner, "dataset_id": dataset_id, "group_id": group, "db": db}
    pairs = []
    for seed, a, b in requests:
        # one seed keeps the names pairs always had ("A/B T7 on"), which migration 6 reads
        tail = f" · seed {seed}" if seeds > 1 else ""
        ra = record(a, name=names[0] + tail, ab_arm="A", **keep)
        rb = record(b, name=names[1] + tail, ab_arm="B", **keep)
        pairs.append((seed, ra.run_id, rb.run_id))
    return AbGroup(group, tuple(pairs))


def submit_ab_pair(
    preset: str,
    dataset: str,
    tip: str,
    **options: Any,
) -> tuple[int, int, str]:
    """One seed of :func:`submit_ab_group`: (run with the tip, run without it, group id)."""
    g = submit_ab_group(preset, dataset, tip=tip, seeds=1, **options)
    ((_seed, a, b),) = g.pairs
    return a, b, g.group_id


def submit_with_change(
    db: sqlite_utils.Database, run_id: int, change: dict[str, Any], *, owner: str | None = None
) -> int:
    """Queue a copy of run ``run_id`` with ``change`` applied on top of its resolved config."""
    run = registry.get_run(db, run_id)
    spec = run["spec"]
    overrides = {**spec_overrides(spec), **change}
    # The same dataset facts as the original run (the auto preset's), never a reload of the file;
    # the dataset's report, where it still exists, for the quota's size estimate.
    info = None
    if run.get("dataset_id") is not None:
        with contextlib.suppress(DatasetNotFound):
            info = registry.get_dataset(db, run["dataset_id"]).get("report")
    what = ", ".join(f"{k}={v}" for k, v in change.items())
    sub = submit(
        spec.get("preset") or run.get("preset") or "sutskever",
        spec["data"]["dataset"],
        target=spec["data"].get("target"),
        overrides=overrides,
        info=info,
        facts=spec.get("auto"),
        queue=run.get("queue") or "cpu",
        owner=owner or run.get("owner") or "local",
        name=f"run {run_id} + {what}"[:120],
        dataset_id=run.get("dataset_id"),
        group_id=run.get("group_id"),
        db=db,
    )
    return sub.run_id


# --- delete and resume -------------------------------------------------------------------------

# What a resume may change: how long the run goes on. Anything else would no longer match the
# checkpoint's weights and optimizer state.
RESUME_FIELDS = ("train.epochs", "train.early_stop_patience")


def delete_run(db: sqlite_utils.Database, run_id: int, home: Path | str | None = None) -> None:
    """Delete a run that is over with its metrics, events and files (checkpoints, model,
    logs). Raises ``RunActive`` while it is queued, running or lost.

    The folder is moved aside first and removed last: the database may give a later run the
    same id, and that run must never find (and resume from) this one's checkpoint."""
    run = registry.get_run(db, run_id)
    if run["status"] in ACTIVE:
        raise RunActive(Message("run.delete_active", id=run_id, status=run["status"]))
    folder = run_dir(run_id, home)
    trash = folder.with_name(f".deleted-{run_id}-{uuid.uuid4().hex[:8]}")
    moved = False
    if folder.exists():
        os.replace(folder, trash)
        moved = True
    try:
        registry.delete_run(db, run_id)
    except BaseException:
        if moved:
            os.replace(trash, folder)
        raise
    if moved:
        shutil.rmtree(trash, ignore_errors=True)


def _reopenable(paused: bool) -> tuple[str, ...]:
    return (*registry.REOPENABLE, "finished") if paused else registry.REOPENABLE


@dataclass(frozen=True)
class ResumePoint:
    """Whether a run can be resumed, and from where (for a button and its caption)."""

    possible: bool
    reason: Message  # why not, or what a resume continues
    epoch: int | None = None  # the epoch the checkpoint holds (None: unknown or none)


def resume_point(
    db: sqlite_utils.Database, run_id: int, home: Path | str | None = None, *, paused: bool = False
) -> ResumePoint:
    """``paused``: the run is a sweep trial that finished at a rung, and goes on (jobs.sweeps)."""
    run = registry.get_run(db, run_id)
    if run["status"] not in _reopenable(paused):
        return ResumePoint(False, Message("resume.not_over", id=run_id, status=run["status"]))
    path = run_dir(run_id, home) / CHECKPOINT
    if not path.exists():
        return ResumePoint(False, Message("resume.no_checkpoint", id=run_id))
    dataset = (run["spec"] or {}).get("data", {}).get("dataset", "")
    if dataset and not dataset.startswith("builtin:") and not Path(dataset).exists():
        return ResumePoint(False, Message("resume.dataset_deleted", id=run_id))
    epoch = checkpoint_epoch(path)
    if epoch:
        return ResumePoint(True, Message("resume.after_epoch_of", id=run_id, epoch=epoch), epoch)
    return ResumePoint(True, Message("resume.from_checkpoint", id=run_id), epoch)


def resume(
    db: sqlite_utils.Database,
    run_id: int,
    overrides: dict[str, Any] | list[str] | None = None,
    home: Path | str | None = None,
    *,
    paused: bool = False,
) -> Submitted:
    """Queue a failed, cancelled or lost run again under the same id: the next worker resumes
    it from its checkpoint, exactly as after a worker crash (no step is trained twice; points of
    an unfinished epoch are replaced when it is redone). ``overrides``: only ``RESUME_FIELDS``
    (e.g. ``train.epochs=50`` to go on longer). ``paused``: a sweep trial that finished at a
    rung, promoted to the next (its checkpoint holds the rung's last epoch). Raises
    ``ConfigError`` saying why not."""
    from engine.config import Config, apply_overrides, parse_override

    point = resume_point(db, run_id, home if home is not None else data_home(), paused=paused)
    if not point.possible:
        raise ConfigError(point.reason, {"run": point.reason})
    run = registry.get_run(db, run_id)
    spec = run["spec"]
    if overrides:
        if isinstance(overrides, list):
            changes = dict(parse_override(o) for o in overrides)
        else:
            changes = {k.strip(): v for k, v in overrides.items()}
        bad = [k for k in changes if k not in RESUME_FIELDS]
        if bad:
            msg = Message("resume.fields", fields=", ".join(RESUME_FIELDS))
            raise ConfigError(msg, {k: msg for k in bad})
        spec = apply_overrides(Config.from_dict(spec), changes).to_dict()
        epochs = spec["train"]["epochs"]
        if point.epoch is not None and epochs <= point.epoch:
            msg = Message("resume.epochs", epochs=point.epoch)
            raise ConfigError(msg, {"train.epochs": msg})
    q = quotas.Quotas.from_env()
    ds = check_dataset(db, spec, run.get("dataset_id"))  # the run reads only its dataset
    quotas.check_spec(spec, ds.get("report"), queue=run.get("queue") or "cpu", db=db, quotas=q)
    try:
        registry.reopen_run(
            db, run_id, spec=spec, max_queued=q.max_queued_per_user, statuses=_reopenable(paused)
        )
    except QuotaExceeded as e:
        raise QueueFull(str(e), {"queue": str(e)}) from e
    if send_run(db, run_id):
        return Submitted(run_id, sent=True)
    return Submitted(run_id, sent=False, note=BROKER_DOWN_NOTE)
