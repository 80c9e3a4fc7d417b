"""The one door from the dashboard (``app/``) and the CLI (``jobs/cli/``) into Trainboard.

Pages import this module and nothing else of ``jobs`` or ``engine`` (a test enforces it). It
fails one way: it raises :class:`Refused` (``engine.errors``), which carries the message's
``code`` and ``params`` and, for a form, the ``fields`` at fault; ``ConfigError``,
``DataError``, ``StoreError`` (``RunNotFound`` …) and ``auth.AuthError`` are its kinds. It
gives them: the vocabulary (run statuses, event kinds, tip titles), presets with their
explanations, form validation that returns per-field errors as data, submit / cancel / A/B /
"queue with this change", datasets, logins, and the read models. Nothing here imports torch:
the Streamlit process draws its charts without it (a test checks that too).
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import sqlite_utils

from engine.auto import DataFacts
from engine.config import (
    Preset,
    PresetSetting,
    get_preset,
    list_presets,
    parse_override,
    preset_for,
    resolve_config,
)
from engine.config import explain as _explain
from engine.errors import ConfigError, DataError, Refused
from engine.limits import CHECKPOINT, EXTENSIONS, MODEL  # noqa: F401 (EXTENSIONS: app/)
from engine.messages import CATALOGUE, Message, is_message_json, render  # noqa: F401 (for app/)
from engine.tips import TIPS
from engine.vocab import (
    ACTIVE,
    LANGUAGES,
    STATUS_COLORS,
    STATUS_WORDS,
    TERMINAL,
    EventKind,
    RunStatus,
    SweepStatus,
    TrialState,
)
from jobs.errors import DatasetNotFound, RunNotFound, StoreError
from jobs.people import auth
from jobs.runs import submit, views
from jobs.runs.format import csv_safe
from jobs.runs.names import MAX_TEXT, TextRefused, clean_text, invisible
from jobs.store import reader, registry
from jobs.store.db import connect
from jobs.store.reader import SeriesData

__all__ = [
    "ACTIVE",
    "CHECKPOINT",
    "MODEL",
    "RUN_STATUSES",
    "STATUS_COLORS",
    "STATUS_WORDS",
    "TERMINAL",
    "TIPS",
    "DataError",
    "DatasetNotFound",
    "EventKind",
    "Preset",
    "PresetSetting",
    "Refused",
    "RunNotFound",
    "RunStatus",
    "SweepStatus",
    "TrialState",
    "SeriesData",
    "StoreError",
    "MAX_TEXT",
    "TextRefused",
    "Validation",
    "auth",
    "clean_text",
    "csv_safe",
    "invisible",
    "connect",
]

RUN_STATUSES = views.RUN_STATUSES

# --- read models (jobs.runs.views, jobs.store.reader) ----------------------------------------------

run_rows = views.run_rows
run_filters = views.run_filters
home_summary = views.home_summary
run_detail = views.run_detail
findings = views.findings
compare_summary = views.compare_summary
paused_trials = views.paused_trials  # runs that are sweep trials waiting at a rung
config_diff = views.config_diff
per_class_recall = views.per_class_recall
export_metrics_csv = views.export_metrics_csv
get_run = registry.get_run
list_datasets = registry.list_datasets
get_dataset = registry.get_dataset
metric_keys = reader.keys
series = reader.series
events = reader.events


def dataset_files(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every dataset grouped by its file, each file's targets as versions (jobs.runs.views)."""
    return views.dataset_files(registry.list_datasets(db))


# --- presets ----------------------------------------------------------------------------------


def presets(dataset: dict[str, Any] | None = None) -> list[Preset]:
    """Every preset, the default (auto) first (cached by the engine on each file's mtime). With
    a stored ``dataset``, the auto preset's card lists the settings it derives from that data,
    each with its tip and reason."""
    facts = _facts(dataset)
    return [preset_for(p.name, facts) if facts else p for p in list_presets()]


def _facts(dataset: dict[str, Any] | None) -> DataFacts | None:
    """The auto preset's facts about a stored dataset, from its report (no data is loaded)."""
    report = (dataset or {}).get("report") or {}
    if "rows" not in report or "task" not in report:
        return None
    return DataFacts.from_report(report)


def preset(name: str) -> Preset:
    return get_preset(name)


def explain(spec: dict[str, Any]) -> list[PresetSetting]:
    """The tip-annotated settings of a stored run's preset, with the values in force; [] when
    the spec no longer validates (a run recorded by an older version)."""
    from engine.config import Config

    try:
        return _explain(Config.from_dict(spec))
    except ConfigError:
        return []


def form_defaults(preset_name: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """The resolved config of ``preset_name`` on a dataset, as a tree, to fill a form with."""
    return resolve_config(
        preset_name, dataset=dataset["path"], target=dataset["target"], facts=_facts(dataset)
    ).to_dict()


# --- validation and submit --------------------------------------------------------------------


@dataclass
class Validation:
    """A form that passed: the run ready to queue. A form that fails raises :class:`Refused`
    (a ``ConfigError``) whose ``fields`` say what is wrong with each field."""

    request: submit.RunRequest | None = None

    @property
    def ok(self) -> bool:
        return self.request is not None


def _refuse(errors: dict[str, str]) -> ConfigError:
    """The door's refusal of a form: every field at fault, with why."""
    if len(errors) == 1:  # one field: its message is the refusal's (its code and params)
        return ConfigError(next(iter(errors.values())), fields=errors)
    return ConfigError("; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)


def parse_lines(text: str) -> dict[str, Any]:
    """``field=value`` lines (blank lines and ``#`` comments skipped) → overrides; raises
    :class:`Refused` whose ``fields`` name every line's field at fault."""
    overrides: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        try:
            key, value = parse_override(line)
        except ConfigError as e:
            errors.update(e.fields)
        else:
            overrides[key] = value
    if errors:
        raise _refuse(errors)
    return overrides


# What a member may set: an allowlist of exact field names (``submit.member_fields``), so a
# whole section, another spelling or a prefix can't point the worker at another file; after
# resolving, the spec's data must still be the chosen dataset's (``_same_data``), and every
# record checks it against the store once more (``submit.check_dataset``).
member_fields = submit.member_fields
DATA_LOCKED = submit.DATA_LOCKED


def _refused(overrides: dict[str, Any]) -> dict[str, str]:
    return submit.member_override_errors(overrides)


def _same_data(request: submit.RunRequest, dataset: dict[str, Any]) -> dict[str, str]:
    if not registry.reads_dataset(request.spec["data"], dataset):
        return {"data.dataset": DATA_LOCKED}
    return {}


def validate_run(
    preset_name: str, dataset: dict[str, Any], overrides: dict[str, Any]
) -> Validation:
    """Validate a run of ``preset_name`` on a stored dataset with the form's overrides, once;
    raises :class:`Refused` (``fields``: what is wrong with each field) if it can't run."""
    if errors := _refused(overrides):
        raise _refuse(errors)
    try:
        request = submit.validate(
            preset_name,
            dataset["path"],
            target=dataset["target"],
            overrides=overrides,
            info=dataset.get("report"),  # the dataset's shape, for the size budget (quotas)
        )
    except ConfigError as e:
        raise _refuse(e.fields) from e  # one field's refusal keeps that field's code
    if errors := _same_data(request, dataset):
        raise _refuse(errors)
    return Validation(request=request)


def queue_run(
    db: sqlite_utils.Database,
    validation: Validation,
    *,
    dataset_id: int,
    owner: str,
    name: str | None = None,
) -> submit.Submitted:
    """Record and send a validated run (no second validation)."""
    if not validation.ok or validation.request is None:
        raise ValueError("queue_run needs a successful validation")
    return submit.record(validation.request, dataset_id=dataset_id, owner=owner, name=name, db=db)


def queue_ab_pair(
    db: sqlite_utils.Database,
    preset_name: str,
    dataset: dict[str, Any],
    tip: str,
    overrides: dict[str, Any],
    *,
    owner: str,
) -> tuple[int, int, str]:
    """Queue the pair (with ``tip`` / without it): (run with, run without, group). Raises
    :class:`Refused` (``fields``: what is wrong) if either is invalid; nothing is queued."""
    if errors := _refused(overrides):
        raise _refuse(errors)
    return submit.submit_ab_pair(
        preset_name,
        dataset["path"],
        tip,
        target=dataset["target"],
        overrides=overrides,
        dataset_id=dataset["id"],
        owner=owner,
        info=dataset.get("report"),
        db=db,
    )


def queue_with_change(
    db: sqlite_utils.Database, run_id: int, change: dict[str, Any], *, owner: str
) -> int:
    """Queue a copy of a run with the doctor's change; the new run's id. Raises
    :class:`Refused` saying why not."""
    if errors := _refused(change):
        raise _refuse(errors)
    return submit.submit_with_change(db, run_id, change, owner=owner)


# The tips an A/B pair can switch off in a preset (each one's "off": submit.tip_off_overrides).
def ab_tips(preset: str, dataset: dict[str, Any] | None = None) -> list[str]:
    """The tips an A/B pair can switch off in ``preset`` on ``dataset`` (the auto preset's
    derived settings, e.g. its dropout and ensemble on a small table, included)."""
    return submit.ab_tips(preset, _facts(dataset))


# --- A/B over paired seeds (issue 23 §2): queue a group, read it back ----------------------------

AB_SEEDS = submit.AB_SEEDS
MAX_AB_SEEDS = submit.MAX_AB_SEEDS
ab_groups = views.ab_groups
ab_report = views.ab_report
ab_metric_keys = views.ab_metric_keys
ab_bands = views.ab_bands
format_metric = views.format_metric  # the report's numbers, as the Runs table writes them


def queue_ab_group(
    db: sqlite_utils.Database,
    preset_name: str,
    dataset: dict[str, Any],
    overrides: dict[str, Any],
    *,
    owner: str,
    tip: str | None = None,
    change: dict[str, Any] | None = None,
    seeds: int = submit.AB_SEEDS,
) -> submit.AbGroup:
    """Queue an A/B group over ``seeds`` paired seeds on a stored dataset: arm B switches
    ``tip`` off, or applies ``change``. Raises :class:`Refused` (``fields``: what is wrong)
    if any of its runs is invalid or the group does not fit the quota; nothing is queued."""
    if errors := _refused({**overrides, **(change or {})}):
        raise _refuse(errors)
    return submit.submit_ab_group(
        preset_name,
        dataset["path"],
        tip=tip,
        change=change,
        seeds=seeds,
        target=dataset["target"],
        overrides=overrides,
        dataset_id=dataset["id"],
        owner=owner,
        info=dataset.get("report"),
        db=db,
    )


def submit_ab(
    preset_name: str,
    source: str,
    *,
    tip: str | None,
    change: dict[str, Any] | None,
    seeds: int,
    target: str | None,
    overrides: dict[str, Any] | list[str] | None,
    queue: str,
    dataset_id: int | None,
    info: dict[str, Any] | None,
) -> submit.AbGroup:
    """The CLI's ``ab``: an A/B group of a builtin or a stored dataset. Raises
    ``ConfigError`` before anything is queued."""
    return submit.submit_ab_group(
        preset_name,
        source,
        tip=tip,
        change=change,
        seeds=seeds,
        target=target,
        overrides=overrides,
        queue=queue,
        dataset_id=dataset_id,
        info=info,
    )


def cancel_run(db: sqlite_utils.Database, run_id: int, user: dict[str, Any] | None) -> str:
    """Cancel if ``user`` may; returns the status afterwards. Raises ``auth.NotAllowed`` or
    ``StoreError`` with a message for the user."""
    auth.require_modify(user, get_run(db, run_id)["owner"], f"run {run_id}")
    return submit.cancel(run_id, db=db)


# --- datasets ---------------------------------------------------------------------------------


def upload_dataset(
    db: sqlite_utils.Database, fileobj: BinaryIO, filename: str, *, owner: str
) -> dict[str, Any]:
    """Check and store an upload; raises ``DataError`` naming the problem (nothing is kept)."""
    from jobs.datasets import (
        ingest as datasets,  # the loaders import the engine's data layer (torch): only on upload
    )

    return datasets.ingest(db, fileobj, filename, owner=owner)


def builtin_samples() -> dict[str, str]:
    from jobs.datasets.ingest import builtin_samples as samples

    return samples()


def add_builtin(db: sqlite_utils.Database, source: str, *, owner: str) -> dict[str, Any]:
    from jobs.datasets import ingest as datasets

    return datasets.register_builtin(db, source, owner=owner)


def retarget_dataset(
    db: sqlite_utils.Database, dataset_id: int, target: str, *, owner: str | None = None
) -> dict[str, Any]:
    """The same file with another target; the new dataset belongs to ``owner`` (whoever asked;
    pass it, or the dataset's own owner keeps it)."""
    from jobs.datasets import ingest as datasets

    return datasets.retarget(db, dataset_id, target, owner=owner)


# --- delete, resume and quotas (issue 12) ------------------------------------------------------


def delete_run(db: sqlite_utils.Database, run_id: int, user: dict[str, Any] | None) -> None:
    """Delete a run that is over, with its metrics, events and files, if ``user`` may (its
    owner or an admin). Raises ``auth.NotAllowed``, or ``StoreError`` (``RunActive``: cancel it
    first) with a message for the user."""
    auth.require_modify(user, get_run(db, run_id)["owner"], f"run {run_id}")
    submit.delete_run(db, run_id)


def delete_dataset(db: sqlite_utils.Database, dataset_id: int, user: dict[str, Any] | None) -> None:
    """Delete a dataset and its file (once no other target of it remains), if ``user`` may.
    Raises ``auth.NotAllowed``, or ``StoreError`` (``DatasetInUse``: a queued or running run
    uses it) with a message for the user. Runs that are over keep their charts."""
    from jobs.datasets import ingest as datasets

    auth.require_modify(user, get_dataset(db, dataset_id)["owner"], f"dataset {dataset_id}")
    datasets.remove(db, dataset_id)


def resume_point(db: sqlite_utils.Database, run_id: int) -> submit.ResumePoint:
    """Whether run ``run_id`` can be resumed (``.possible``), and a caption (``.reason``): what
    it continues from, or why not. ``.epoch``: the epoch its checkpoint holds."""
    return submit.resume_point(db, run_id)


def resume_run(
    db: sqlite_utils.Database,
    run_id: int,
    user: dict[str, Any] | None,
    *,
    epochs: int | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
) -> submit.Submitted:
    """Queue a failed, cancelled or lost run again from its checkpoint (same id, no step
    trained twice), if ``user`` may; ``epochs``: a new length (or ``overrides``, the CLI's
    ``--set`` lines). Raises ``auth.NotAllowed``, or ``ConfigError`` whose ``.fields`` say why
    not (no checkpoint, quota, epochs)."""
    auth.require_modify(user, get_run(db, run_id)["owner"], f"run {run_id}")
    if epochs is not None:
        overrides = {"train.epochs": int(epochs)}
    return submit.resume(db, run_id, overrides)


def queue_quota(db: sqlite_utils.Database, owner: str, need: int = 1) -> str | None:
    """Why ``owner`` can't queue ``need`` more runs now (their queued-run quota), or None.
    ``queue_run`` refuses the same way (``submit.QueueFull``, a ``ConfigError``)."""
    return submit.queue_quota(db, owner, need)


def run_size(validation: Validation, dataset: dict[str, Any]) -> dict[str, Any]:
    """A validated run's estimated size, for the form: parameters, training memory (bytes)
    and the server's budgets (``jobs.runs.quotas``)."""
    from jobs.runs import quotas

    if validation.request is None:
        raise ValueError("run_size needs a successful validation")
    est = quotas.estimate(validation.request.spec, dataset.get("report"))
    q = quotas.Quotas.from_env()
    return {
        "params": est.params,
        "memory_bytes": est.memory_bytes,
        "max_params": q.max_params,
        "max_memory_bytes": q.max_memory_bytes,
        "exact": est.exact_input,
    }


# --- the command line (jobs/cli/) ------------------------------------------------------------
# The CLI comes through this door as the pages do (user=None: the server's operator may change
# anything). What only the CLI needs is imported when called, so `trainboard --help` and
# `trainboard train` load no Celery and no upload checker.


def check_source(source: str) -> None:
    """Refuse a typo'd builtin or a missing path before anything is queued (``DataError``)."""
    from engine.data.loaders import check_source as check

    check(source)


def server_settings() -> Any:
    """The queue's settings: the data home, the broker URL or the embedded broker's folder."""
    from jobs.queue.celery_app import settings

    return settings()


def prepare_home() -> list[str]:
    """Create and migrate the database once, before ``up``'s children race for it, and remove
    upload files left by a process that died while checking them (returned)."""
    from jobs.datasets.ingest import sweep_tmp

    connect().close()
    return sweep_tmp()


def worker_devices(requested: list[str] | None) -> list[str]:
    """The devices ``up`` starts workers for: those asked for (checked), else every visible
    GPU, else the CPU. Raises ``ValueError`` naming an unknown device."""
    from jobs.queue.worker import parse_device, visible_gpus

    if requested:
        return [parse_device(d) for d in requested]
    return visible_gpus() or ["cpu"]


def cpu_slots(wanted: int | None) -> tuple[int, int]:
    """(slots, cores per slot) for this machine's CPU workers (``jobs.queue.presence``)."""
    from engine.threads import cores_available
    from jobs.queue.presence import cpu_slots as slots

    return slots(cores_available(), wanted)


def slot_name(device: str, i: int, n: int) -> str:
    from jobs.queue.presence import slot_name as name

    return name(device, i, n)


def max_upload_bytes() -> int:
    """The largest upload the server takes (``jobs.datasets.ingest``)."""
    from jobs.datasets.ingest import MAX_UPLOAD_BYTES

    return MAX_UPLOAD_BYTES


def run_worker(device: str, *, name: str | None, loglevel: str) -> None:
    """Run a Celery worker for ``device`` in this process until it is stopped."""
    from jobs.queue.worker import run_worker as run

    if name is None and remote_worker():
        name = remote_worker_name()  # the token names this worker on the server
    run(device, name=name, loglevel=loglevel)


def add_file(
    db: sqlite_utils.Database,
    path: Path,
    *,
    target: str | None = None,
    name: str | None = None,
    owner: str = "local",
) -> dict[str, Any]:
    """A file on this machine, checked exactly as an upload is and stored as a dataset (the
    same file and target: the existing row). Raises ``DataError`` naming the problem."""
    from jobs.datasets import ingest as datasets

    try:
        with path.open("rb") as f:
            return datasets.ingest(db, f, name or path.name, target=target, owner=owner)
    except OSError as e:
        raise DataError(f"{path.name}: {e.strerror or e}") from e


def submit_run(
    preset_name: str,
    source: str,
    *,
    target: str | None,
    overrides: dict[str, Any] | list[str] | None,
    queue: str,
    name: str | None,
    dataset_id: int | None,
    info: dict[str, Any] | None,
) -> submit.Submitted:
    """Validate, record and send a run of a builtin or a stored dataset (the CLI's ``submit``).
    Raises ``ConfigError`` before anything is queued."""
    return submit.submit(
        preset_name,
        source,
        target=target,
        overrides=overrides,
        queue=queue,
        name=name,
        dataset_id=dataset_id,
        info=info,
    )


# --- the LR range test (issue 23; engine/lr_find.py) --------------------------------------------


def _lr_find_request(request: submit.RunRequest) -> submit.RunRequest:
    return submit.RunRequest(preset=request.preset, spec={**request.spec, "lr_find": True})


def _lr_find_name(request: submit.RunRequest) -> str:
    return f"LR range test ({request.preset})"


def queue_lr_find(
    db: sqlite_utils.Database,
    validation: Validation,
    *,
    dataset_id: int,
    owner: str,
) -> submit.Submitted:
    """Queue the LR range test of a validated run (New run's "Find a learning rate"): the same
    spec with ``lr_find`` on, recorded and sent as a run is (its quotas, its queue, its row in
    Runs); a worker runs ``engine.lr_find.run_lr_find`` on it instead of training."""
    if not validation.ok or validation.request is None:
        raise ValueError("queue_lr_find needs a successful validation")
    request = _lr_find_request(validation.request)
    name = _lr_find_name(request)
    return submit.record(request, dataset_id=dataset_id, owner=owner, name=name, db=db)


def submit_lr_find(
    preset_name: str,
    source: str,
    *,
    target: str | None,
    overrides: dict[str, Any] | list[str] | None,
    queue: str,
    dataset_id: int | None,
    info: dict[str, Any] | None,
) -> submit.Submitted:
    """Validate the run ``trainboard lr-find`` describes, then queue its LR range test (the
    CLI's path; the form's is :func:`queue_lr_find`). Raises ``ConfigError`` before anything
    is queued."""
    request = submit.validate(
        preset_name, source, target=target, overrides=overrides, info=info, queue=queue
    )
    request = _lr_find_request(request)
    return submit.record(request, queue=queue, dataset_id=dataset_id, name=_lr_find_name(request))


def lr_find_result(run: dict[str, Any]) -> Any:
    """A finished LR range test's result (``engine.lr_find.LRFindResult``: curves, the three
    rules, the suggestion or the reasons why there is none), or None while it has none."""
    from engine.lr_find import LRFindResult  # torch-free: the rules and the result only

    found = (run.get("summary") or {}).get("lr_find")
    return LRFindResult.from_dict(found) if found else None


def queue_has_worker(db: sqlite_utils.Database, queue: str) -> bool:
    """Whether a live worker takes ``queue`` (seen within 30 s)."""
    workers = registry.list_workers(db, alive_within_s=30)
    return any(w["status"] != "stopped" and queue in (w["queue"] or "").split(",") for w in workers)


def list_runs(
    db: sqlite_utils.Database, *, status: list[str] | None = None, limit: int = 30
) -> list[dict[str, Any]]:
    """The newest runs, optionally of some statuses (``ValueError`` names an unknown one)."""
    return registry.list_runs(db, status=status, limit=limit)


def send_info(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """How a queued run's sends to the broker went (its last error, when one failed)."""
    from jobs.queue.sends import send_info as info

    return info(db, run_id)


# --- per-user settings and the dashboard's translations ---------------------------------------

# What a user may keep between visits, each with the values allowed (checked at the door).
USER_SETTINGS: dict[str, tuple[str, ...]] = {"language": tuple(LANGUAGES)}
MAX_BROWSER_SETTINGS = 20_000  # settings remembered per browser ("user@browser"), newest kept


def user_setting(db: sqlite_utils.Database, user: str, key: str) -> str | None:
    """``user``'s saved ``key`` (a team member's name, or "local" in single-user mode); None
    when never saved."""
    rows = db["user_settings"].rows_where("user = ? AND key = ?", [user, key], select="value")
    return next((r["value"] for r in rows), None)


def set_user_setting(db: sqlite_utils.Database, user: str, key: str, value: str) -> None:
    """Remember ``key`` = ``value`` for ``user``; the allowed values are in USER_SETTINGS."""
    if value not in USER_SETTINGS.get(key, ()):
        allowed = ", ".join(f"{k}: {'/'.join(v)}" for k, v in USER_SETTINGS.items())
        raise ValueError(f"no setting {key}={value!r}; allowed: {allowed}")
    # Picks are kept per browser (app/i18n.py), and anyone may bring a new browser: keep the
    # newest MAX_BROWSER_SETTINGS, so fresh cookies can't grow the table without bound.
    from jobs.store import people

    people.save_setting(db, user, key, value, keep_browsers=MAX_BROWSER_SETTINGS)


def compile_catalog(po_path: Path) -> gettext.GNUTranslations:
    """A gettext catalogue compiled in memory from its ``.po`` file (Babel's compiler, as
    ``pybabel compile`` does): the dashboard never reads a ``.mo`` that could be stale. Fuzzy
    entries are left out, as ``pybabel compile`` leaves them out."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with open(po_path, "rb") as f:
        catalog = read_po(f)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


# --- workers on other hosts (jobs.remote) ---------------------------------------------------


def create_worker_token(db: sqlite_utils.Database, name: str) -> str:
    """A new token for a remote worker (shown once; only its hash is stored)."""
    from jobs.remote import tokens

    return tokens.create(db, name)


def list_worker_tokens(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    from jobs.remote import tokens

    return tokens.list_tokens(db)


def revoke_worker_token(db: sqlite_utils.Database, name: str) -> list[int]:
    """Refuse the worker's token from now on; returns the runs handed back to the queue."""
    from jobs.remote import tokens

    return tokens.revoke(db, name)


def remote_worker() -> bool:
    """Whether this process is a worker on another host (TRAINBOARD_SERVER and a token)."""
    from jobs import remote

    return remote.enabled()


def remote_worker_name() -> str:
    """The worker name the server knows this host's token by."""
    import time

    from jobs.remote.client import Client, Rejected, Unreachable

    client = Client.from_env()
    for wait in (1, 2, 4, 8, 15, 30, 0):  # a server that is starting too: about a minute
        try:
            return client.request("GET", "/whoami").json()["name"]
        except Rejected as e:
            raise SystemExit(f"the server refuses this worker's token: {e}") from e
        except Unreachable as e:
            if not wait:
                raise SystemExit(f"the server at TRAINBOARD_SERVER does not answer: {e}") from e
            time.sleep(wait)
    raise AssertionError("unreachable")


def ingest_command(port: int, address: str, *, reaper: bool) -> list[str]:
    """How ``up`` starts the ingest remote workers post to (``jobs.remote.server``)."""
    import sys

    cmd = [sys.executable, "-m", "jobs.remote.server", "--port", str(port), "--address", address]
    return cmd if reaper else [*cmd, "--no-reaper"]


def export_run_points(db: sqlite_utils.Database, run_id: int, out: BinaryIO | Any) -> int:
    """A run's metric points as CSV (key, step, value) into the text stream ``out``, cells made
    safe for spreadsheets; the same for runs trained here or on another host."""
    registry.get_run(db, run_id)  # RunNotFound for an unknown id
    return reader.write_points_csv(db, run_id, out)


# --- sweeps (issue 23 §3; jobs/sweeps/) ---------------------------------------------------------


def submit_sweep(
    preset_name: str,
    source: str,
    *,
    space: list[str],
    trials: int,
    parallel: int,
    min_epochs: int,
    eta: int,
    max_epochs: int | None,
    target: str | None,
    overrides: dict[str, Any] | list[str] | None,
    queue: str = "cpu",
    dataset_id: int | None = None,
    info: dict[str, Any] | None = None,
    owner: str = "local",
    name: str | None = None,
    db: sqlite_utils.Database | None = None,
) -> int:
    """Create a sweep and queue its first trials (the CLI's ``sweep``, the Sweeps page's
    form): every corner of the space is validated as a single run is, and the trials go
    through the queue and its quotas. Returns the sweep's id; raises ``ConfigError`` (with
    ``fields``) before anything is queued."""
    from jobs.sweeps import controller

    if overrides and not isinstance(overrides, list) and (errors := _refused(overrides)):
        raise _refuse(errors)
    return controller.create_sweep(
        preset_name,
        source,
        space=space,
        trials=trials,
        parallel=parallel,
        min_epochs=min_epochs,
        eta=eta,
        max_epochs=max_epochs,
        target=target,
        overrides=overrides,
        info=info,
        dataset_id=dataset_id,
        owner=owner,
        queue=queue,
        name=name,
        db=db,
    )


def list_sweeps(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Every sweep, newest first, with its trials counted by state."""
    from jobs.sweeps import views as sweep_views

    return sweep_views.sweep_rows(db)


def sweep_report(db: sqlite_utils.Database, sweep_id: int) -> dict[str, Any]:
    """One sweep's trials, chart points and hours saved (``jobs.sweeps.views``)."""
    from jobs.sweeps import views as sweep_views

    return sweep_views.sweep_report(db, sweep_id)


def sweep_importance(db: sqlite_utils.Database, sweep_id: int) -> dict[str, float] | None:
    """Optuna's parameter importance once enough trials completed, else None."""
    from jobs.sweeps import views as sweep_views

    return sweep_views.importance(db, sweep_id)


def control_sweep(
    db: sqlite_utils.Database, sweep_id: int, action: str, user: dict[str, Any] | None
) -> None:
    """``pause``, ``resume`` or ``cancel`` a sweep, if ``user`` may change it. Raises
    ``Refused`` (``sweep.cannot_*`` when it is not in a state for that, ``sweep.not_found``)."""
    from jobs.store.sweeps import get_sweep
    from jobs.sweeps import controller

    actions = {"pause": controller.pause, "resume": controller.resume, "cancel": controller.cancel}
    if action not in actions:
        raise ValueError(f"unknown sweep action {action!r}; allowed: {', '.join(actions)}")
    sweep = get_sweep(db, sweep_id)
    auth.require_modify(user, sweep["owner"], f"sweep {sweep_id}")
    actions[action](db, sweep_id)


# --- a run's model: its bundle, predictions, ONNX (issue 21; jobs.runs.predict) ---------------


def bundle_folder(run: str | int | Path) -> Path:
    """RUN as the CLI takes it (a run id, a run directory or a bundle directory) → the bundle
    folder; DataError when there is none."""
    from jobs.runs import predict

    return predict.bundle_folder(run)


def _may_use(db: sqlite_utils.Database, run: str | int | Path, user: dict[str, Any] | None) -> None:
    """Team mode: a member predicts with, exports or downloads only their own runs (an admin
    with any). A folder given by path (the CLI on the server) has no owner to check."""
    if user is None or not str(run).isdigit():
        return
    owner = get_run(db, int(str(run)))["owner"]
    if not auth.may_modify(user, owner):
        raise auth.NotAllowed(Message("predict.not_yours", run=int(str(run)), owner=owner))


def predict_file(
    db: sqlite_utils.Database,
    run: str | int | Path,
    source: Path,
    *,
    filename: str | None = None,
    out: Path | None = None,
    user: dict[str, Any] | None = None,
) -> Any:
    """Score the table ``source`` with the run's bundle (``jobs.runs.predict.predict``):
    its problems as messages, the first rows, the score on its target column; the whole file
    with the predictions added goes to ``out`` (nothing is written when it is refused)."""
    from jobs.runs import predict

    _may_use(db, run, user)
    folder = predict.bundle_folder(run)
    return predict.predict(folder, source, filename or source.name, out)


def run_bundle(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """What Run detail says about a run's bundle: its parity check (ok, rows, max_diff, why)
    and its folder when it is offered; None for a run that made none."""
    from jobs.runs import predict

    run = get_run(db, run_id)
    state = predict.bundle_state(run.get("summary"))
    if state is None:
        return None
    folder = predict.run_dir(run_id) / predict.BUNDLE
    state["folder"] = folder if state.get("ok") and (folder / "model.ts").is_file() else None
    if state.get("ok") and state["folder"] is None:
        # made where the run trained (a worker on another host keeps it there) or deleted
        state["why"] = Message("bundle.not_here")
    return state


def bundle_zip(db: sqlite_utils.Database, run_id: int, user: dict[str, Any] | None = None) -> bytes:
    """The run's bundle as one .zip (Run detail's download)."""
    from jobs.runs import predict

    _may_use(db, run_id, user)
    return predict.bundle_zip(predict.bundle_folder(run_id))


def export_onnx(
    db: sqlite_utils.Database, run: str | int | Path, user: dict[str, Any] | None = None
) -> dict[str, Any]:
    """model.onnx into the run's bundle, checked against model.ts (engine.bundle_onnx)."""
    from jobs.runs import predict

    _may_use(db, run, user)
    return predict.export_onnx(predict.bundle_folder(run))
