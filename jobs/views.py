"""Read models for the dashboard: what each page shows, computed from the store in one place.

The app never writes SQL and never imports Celery; it calls these functions (and
``jobs.submit`` / ``jobs.datasets``). Everything here is read-only except the small helpers at
the end that submit runs derived from other runs (a doctor's suggested change, an A/B pair).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from pathlib import Path
from typing import Any

import sqlite_utils

from jobs import registry
from jobs.db import RUN_STATUSES, run_dir
from jobs.errors import DatasetNotFound

ACTIVE = ("queued", "running", "lost")


# --- run table ------------------------------------------------------------------------------


def _duration(run: dict[str, Any], now: float | None = None) -> float | None:
    start = run.get("started_at")
    if start is None:
        return None
    end = run.get("finished_at") or (now or time.time())
    return max(0.0, end - start)


def _best(run: dict[str, Any]) -> tuple[str | None, float | None]:
    s = run.get("summary") or {}
    return s.get("metric"), s.get("best_val_metric")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_metric(metric: str | None, value: float | None) -> str:
    if metric is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == "acc":
        return f"acc {value:.1%}"
    return f"{metric} {value:.4g}"


def _dataset_names(db: sqlite_utils.Database) -> dict[int, str]:
    return {d["id"]: d["name"] for d in registry.list_datasets(db)}


def run_row(run: dict[str, Any], dataset_names: dict[int, str] | None = None) -> dict[str, Any]:
    """One row of the run table: what a person scanning the list wants to see."""
    spec = run.get("spec") or {}
    metric, best = _best(run)
    ds_name = None
    if dataset_names is not None and run.get("dataset_id") is not None:
        ds_name = dataset_names.get(run["dataset_id"])
    if ds_name is None:
        ds_name = Path(str((spec.get("data") or {}).get("dataset", "—"))).name
    progress = run.get("progress")
    if run["status"] == "finished":
        progress = 1.0
    return {
        "id": run["id"],
        "name": run.get("name") or f"run {run['id']}",
        "status": run["status"],
        "progress": float(progress or 0.0),
        "dataset": ds_name,
        "preset": run.get("preset") or "—",
        "best": format_metric(metric, best),
        "best_value": best,
        "metric": metric,
        "duration": format_duration(_duration(run)),
        "seconds": _duration(run),
        "owner": run.get("owner") or "local",
        "device": run.get("device") or "—",
        "created_at": run.get("created_at"),
        "group_id": run.get("group_id"),
        "error": run.get("error"),
    }


def run_rows(
    db: sqlite_utils.Database, *, limit: int = 50, offset: int = 0, **filters: Any
) -> tuple[list[dict[str, Any]], int]:
    """A page of run-table rows matching the filters, and the total count for paging.
    ``filters`` are :func:`jobs.registry.list_runs`'s (status, owner, dataset_id, preset,
    group_id); an empty status list means any status."""
    filters["status"] = filters.get("status") or None
    runs = registry.list_runs(db, **filters, limit=limit, offset=offset)
    names = _dataset_names(db)
    return [run_row(r, names) for r in runs], registry.count_runs(db, **filters)


def run_filters(db: sqlite_utils.Database) -> dict[str, list[Any]]:
    """The values the run filters offer: statuses, presets, owners and datasets in use."""
    rows = db.execute(
        "SELECT DISTINCT preset, owner, dataset_id FROM runs"
    ).fetchall()  # read-only; a handful of distinct values
    names = _dataset_names(db)
    return {
        "status": list(RUN_STATUSES),
        "preset": sorted({r[0] for r in rows if r[0]}),
        "owner": sorted({r[1] for r in rows if r[1]}),
        "dataset": sorted(
            {(r[2], names.get(r[2], str(r[2]))) for r in rows if r[2] is not None},
            key=lambda t: t[1],
        ),
    }


# --- home -----------------------------------------------------------------------------------


def home_summary(db: sqlite_utils.Database, recent: int = 5) -> dict[str, Any]:
    """Workers online, run counts by status (the queue), and the latest runs."""
    counts = registry.status_counts(db)
    workers = []
    for w in registry.list_workers(db, alive_within_s=60):
        if w.get("status") in ("stopped", "offline"):
            state = "stopped"
        else:
            state = "busy" if w.get("current_run") is not None else "idle"
        seen = w.get("last_seen")
        workers.append({
            "name": w["name"],
            "device": w.get("device") or "cpu",
            "gpu": w.get("gpu_name") or "—",
            "state": state,
            "run": w.get("current_run"),
            "seen": f"{format_duration(time.time() - seen)} ago" if seen else "—",
        })  # fmt: skip
    rows, total = run_rows(db, limit=recent)
    return {
        "workers": workers,
        "online": sum(w["state"] != "stopped" for w in workers),
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "counts": counts,
        "total_runs": total,
        "recent": rows,
        "datasets": len(registry.list_datasets(db)),
    }


# --- run detail -----------------------------------------------------------------------------


def run_detail(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """The run with its table row, its dataset (if recorded) and its files."""
    run = registry.get_run(db, run_id)
    dataset = None
    if run.get("dataset_id") is not None:
        try:
            dataset = registry.get_dataset(db, run["dataset_id"])
        except DatasetNotFound:
            dataset = None
    folder = run_dir(run_id)
    files = {
        name: folder / name
        for name in ("model.pt", "checkpoint.pt")
        if (folder / name).is_file()
    }
    return {"run": run, "row": run_row(run, _dataset_names(db)), "dataset": dataset,
            "files": files, "dir": folder}  # fmt: skip


def export_metrics_csv(run_id: int) -> Path:
    """Write every stored point of the run to ``<run dir>/metrics.csv`` and return the path.
    Opens its own connection: the dashboard calls it from a download handler thread."""
    from jobs.db import connect
    from jobs.reader import export_metrics

    path = run_dir(run_id) / "metrics.csv"
    db = connect()
    try:
        export_metrics(db, run_id, path, "csv")
    finally:
        db.close()
    return path


def metric_keys(db: sqlite_utils.Database, run_id: int) -> list[str]:
    """Names of the metrics a run has logged, sorted: the same answer as ``jobs.reader.keys``.

    ``reader.keys`` filters ``metrics_ds`` on (run_id, level), which the primary key
    (run_id, key_id, level, bucket) can only narrow by run: on a 1,000,000-step run it walks
    every bucket of every level (~26 ms, a third of the run page's chart data). Probing each known
    key with the full key prefix takes a few index lookups instead. (Worth moving into the
    reader; kept here because ``jobs/reader.py`` belongs to the store.)"""
    from jobs.writer import SHIFTS

    rows = db.execute(
        "SELECT k.name FROM metric_keys k WHERE EXISTS (SELECT 1 FROM metrics_ds d "
        "WHERE d.run_id = ? AND d.key_id = k.id AND d.level = ?) ORDER BY k.name",
        [run_id, len(SHIFTS)],
    )
    return [r[0] for r in rows]


_FINDING_KINDS = ("doctor", "preflight", "diverged", "clip_burst")


def findings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Doctor findings of a run from its events: live warnings, failed pre-flight checks and
    dataset-report warnings, divergence. Passed checks are left out (they are in the log)."""
    out = []
    for e in events:
        if e["kind"] not in _FINDING_KINDS:
            continue
        d = e.get("data") or {}
        if e["kind"] == "preflight" and d.get("passed") is True:
            continue
        out.append({
            "event_id": e["id"],
            "step": e["step"],
            "kind": e["kind"],
            "tip": d.get("tip") or ("T9" if e["kind"] == "clip_burst" else "—"),
            "severity": d.get("severity") or ("error" if e["kind"] == "diverged" else "warning"),
            "rule": d.get("rule") or e["kind"],
            "message": e["message"],
            "suggestion": d.get("suggestion") or "",
        })  # fmt: skip
    return out


def _sig(x: float) -> float:
    """Three significant digits: a suggested LR of 0.0333, not 0.03333333."""
    return float(f"{x:.3g}")


_ASSIGN = re.compile(r"\b([a-z_]+\.[a-z_]+)\s*=\s*([A-Za-z0-9_.+\-]+)")


def suggested_change(finding: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """A concrete override for a finding's suggestion (``{"optim.lr": 0.03}``), or None when
    the advice has no single setting to change (e.g. "check the labels")."""
    optim = spec.get("optim") or {}
    lr = float(optim.get("lr", 0.1))
    model = spec.get("model") or {}
    rule = finding.get("rule")
    by_rule: dict[str, dict[str, Any]] = {
        "ratio_low": {"optim.lr": _sig(min(lr * 3, 10.0))},
        "ratio_high": {"optim.lr": _sig(lr / 3)},
        "loss_rising": {"optim.lr": _sig(lr / 10)},
        "plateau": {"schedule.enabled": True},
        "inputs_standardized": {"data.standardize": True},
        "activation_scale": {"model.init": "scaled", "model.init_scale": 1.0},
        "init_loss": {"model.init": "normal-0.02"}
        if model.get("init") != "normal-0.02"
        else {"model.init": "scaled", "model.init_scale": 0.1},
        "overfitting": {"model.dropout": 0.3}
        if float(model.get("dropout", 0.0)) < 0.3
        else {"augment.noise_std": 0.05},
        "exploding_gradient": {"train.clip_norm": 5.0}
        if (spec.get("train") or {}).get("clip_norm") is None
        else {"optim.lr": _sig(lr / 3)},
    }
    if rule in by_rule:
        return by_rule[rule]
    m = _ASSIGN.search(finding.get("suggestion") or "")
    if m:
        from engine.config import parse_override

        key, value = parse_override(f"{m.group(1)}={m.group(2)}")
        return {key: value}
    return None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def spec_overrides(spec: dict[str, Any]) -> dict[str, Any]:
    """Every setting of a resolved spec as dotted overrides (to resubmit it exactly)."""
    flat = flatten(spec)
    flat.pop("preset", None)
    return flat


# --- compare --------------------------------------------------------------------------------


def config_diff(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings on which the given runs differ: ``[{"setting", "run 3", "run 4", ...}]``."""
    flats = [(f"run {r['id']}", flatten(r.get("spec") or {})) for r in runs]
    if len(flats) < 2:
        return []
    fields = sorted(set().union(*(f.keys() for _, f in flats)))
    rows = []
    for field in fields:
        values = [f.get(field, "—") for _, f in flats]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            rows.append({"setting": field, **{name: _show(v) for (name, _), v in
                                             zip(flats, values, strict=True)}})  # fmt: skip
    return rows


def _show(v: Any) -> str:
    if isinstance(v, list | dict):
        return json.dumps(v)
    return "—" if v is None else str(v)


def compare_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Side-by-side outcome of several runs: status, best metric, epochs, LR cuts, time."""
    out = []
    for r in runs:
        s = r.get("summary") or {}
        out.append({
            "run": f"run {r['id']}",
            "name": r.get("name") or "",
            "status": r["status"],
            "best": format_metric(s.get("metric"), s.get("best_val_metric")),
            "best val loss": s.get("best_val_loss"),
            "epochs": s.get("epochs"),
            "LR cuts": s.get("lr_cuts"),
            "stop": (s.get("stop_reason") or "").replace("_", " "),
            "time": format_duration(_duration(r)),
        })  # fmt: skip
    return out


# --- derived submissions ---------------------------------------------------------------------

# What "switching a tip off" means for an A/B pair, where the preset's own values alone would
# not say it (a preset that sets a tip's field to its default would otherwise change nothing).
TIP_OFF: dict[str, dict[str, Any]] = {
    "T2": {"data.standardize": False, "data.log1p": "off"},
    "T7": {"schedule.enabled": False, "train.early_stop_patience": None},
    "T4": {"optim.loss_reduction": "sum"},
    "T9": {"train.clip_norm": None},
    "T11": {"model.forget_bias": 0.0},
    "T12": {"augment.shift": 0, "augment.flip": False, "augment.rotate_deg": 0.0,
            "augment.noise_std": 0.0},  # fmt: skip
    "T13": {"model.dropout": 0.0},
    "T14": {"ensemble.members": 1},
    "T8": {"model.init": "default"},
    "T10": {"train.preflight": False, "train.overfit_one_batch": False},
}


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
    from engine.config import resolve_config
    from jobs.submit import submit

    base = dict(overrides or {})
    off = {**base, **tip_off_overrides(preset, tip)}
    # Validate both configs first: the pair is queued whole or not at all.
    resolve_config(preset, dataset=dataset, target=target, overrides=base)
    resolve_config(preset, dataset=dataset, target=target, overrides=off)
    group = f"ab-{uuid.uuid4().hex[:8]}"
    a = submit(preset, dataset, target=target, overrides=base, queue=queue, owner=owner,
               name=f"A/B {tip} on", dataset_id=dataset_id, group_id=group, db=db)  # fmt: skip
    b = submit(preset, dataset, target=target, overrides=off, queue=queue, owner=owner,
               name=f"A/B {tip} off", dataset_id=dataset_id, group_id=group, db=db)  # fmt: skip
    return a.run_id, b.run_id, group


def submit_with_change(
    db: sqlite_utils.Database, run_id: int, change: dict[str, Any], *, owner: str | None = None
) -> int:
    """Queue a copy of run ``run_id`` with ``change`` applied on top of its resolved config."""
    from jobs.submit import submit

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
