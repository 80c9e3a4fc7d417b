"""Read models for the dashboard: what each page shows, computed from the store in one place.

Everything here is read-only; the pages reach it through ``jobs.service``. Writes (submit,
cancel, derived runs) live in ``jobs.runs.submit``; formatting in ``jobs.runs.format``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.limits import CHECKPOINT, MODEL
from engine.tips import ROOT_CAUSE_RANK
from engine.vocab import ACTIVE, EventKind
from jobs.errors import DatasetNotFound
from jobs.runs import quotas
from jobs.runs.format import (
    flatten,
    format_duration,
    format_metric,
    format_mib,
    metric_name,
    one_line,
    show_value,
)
from jobs.store import reader, registry
from jobs.store import sweeps as sweep_store
from jobs.store.db import RUN_STATUSES, run_dir

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


def _test(run: dict[str, Any]) -> float | None:
    """The held-out test score, once the run has finished (None before, or for older runs)."""
    return (run.get("summary") or {}).get("test_metric")


def test_scores(summary: dict[str, Any]) -> dict[str, str]:
    """The test split's scores beyond the run's metric, as people read them ("—" where a run
    has none: a regression has no balanced accuracy, a run from before they existed none at
    all): a classifier's balanced accuracy and macro-F1 (issue 20, §3), a regression's MAE and
    R² (its RMSE is the run's own test metric)."""
    return {
        "test_balanced": format_metric("acc", summary.get("test_balanced_accuracy")),
        "test_f1": format_metric("f1", summary.get("test_macro_f1")),
        "test_mae": format_metric("mae", summary.get("test_mae")),
        "test_r2": format_metric("r2", summary.get("test_r2")),
    }


def worst_class(summary: dict[str, Any]) -> str:
    """The test class found least often, with its recall ("cat 41.2%"), "—" without per-class
    scores. Classes without test rows are left out (their recall says nothing)."""
    scored = [c for c in summary.get("per_class") or [] if c.get("support")]
    if not scored:
        return "—"
    worst = min(scored, key=lambda c: c["recall"])
    return f"{one_line(worst['class'], 40)} {format_metric('acc', worst['recall'])}"


def _dataset_names(db: sqlite_utils.Database) -> dict[int, str]:
    return {d["id"]: d["name"] for d in registry.list_datasets(db)}


def run_row(
    run: dict[str, Any],
    dataset_names: dict[int, str] | None = None,
    paused: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of the run table: what a person scanning the list wants to see. ``paused``: the
    sweep and epochs when the run is a sweep trial waiting at a rung
    (:func:`jobs.store.sweeps.paused_trials`); its status then reads "paused", not "finished"."""
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
        "name": one_line(run.get("name") or f"run {run['id']}"),
        "status": run["status"],
        "progress": float(progress or 0.0),
        "dataset": one_line(ds_name),
        "preset": run.get("preset") or "—",
        # "best" is the best validation score (the epoch was picked on it, so it flatters);
        # "test" is the held-out test split, scored once at the end: the honest one.
        "best": format_metric(metric, best),
        "best_value": best,
        "test": format_metric(metric, _test(run)),
        "test_value": _test(run),
        **test_scores(run.get("summary") or {}),
        "metric": metric,
        "metric_name": metric_name(metric),
        "duration": format_duration(_duration(run)),
        "seconds": _duration(run),
        "owner": run.get("owner") or "local",
        "device": run.get("device") or "—",
        "created_at": run.get("created_at"),
        "group_id": run.get("group_id"),
        "error": run.get("error"),
        # A stop was asked for and the worker is still saving its checkpoint.
        "stopping": bool(run.get("cancel_requested")) and run["status"] in ACTIVE,
        # A sweep trial that finished at a rung and waits for a promotion: {sweep, epochs}.
        "sweep_paused": paused,
    }


def paused_trials(db: sqlite_utils.Database, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Of ``run_ids``, the sweep trials waiting at a rung: {run_id: {"sweep", "epochs"}}, for
    :func:`run_row`'s ``paused`` (Compare reads it for the runs it shows)."""
    return sweep_store.paused_trials(db, run_ids)


def run_rows(
    db: sqlite_utils.Database, *, limit: int = 50, offset: int = 0, **filters: Any
) -> tuple[list[dict[str, Any]], int]:
    """A page of run-table rows matching the filters, and the total count for paging.
    ``filters`` are :func:`jobs.store.registry.list_runs`'s (status, owner, dataset_id, preset,
    group_id); an empty status list means any status."""
    filters["status"] = filters.get("status") or None
    runs = registry.list_runs(db, **filters, limit=limit, offset=offset)
    names = _dataset_names(db)
    paused = sweep_store.paused_trials(db, [r["id"] for r in runs])
    rows = [run_row(r, names, paused.get(r["id"])) for r in runs]
    return rows, registry.count_runs(db, **filters)


def run_filters(db: sqlite_utils.Database) -> dict[str, list[Any]]:
    """The values the run filters offer: statuses, presets, owners and datasets in use."""
    rows = registry.filter_values(db)
    names = _filter_names(registry.list_datasets(db))
    return {
        "status": list(RUN_STATUSES),
        "preset": sorted({r[0] for r in rows if r[0]}),
        "owner": sorted({r[1] for r in rows if r[1]}),
        "dataset": sorted(
            {(r[2], names.get(r[2], str(r[2]))) for r in rows if r[2] is not None},
            key=lambda t: t[1],
        ),
    }


# --- datasets -------------------------------------------------------------------------------


def dataset_files(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The datasets grouped by file (issue 20, §8): one entry per stored file or bundled
    sample, ``{"id", "name", "versions"}``, its targets as ``versions`` (dataset rows, newest
    first); files in the order of their newest version. ``id`` is the first version's, so it
    stays put while targets are added.

    Each target stays its own row because a run names the row whose file *and* target it
    reads (``registry.reads_dataset``, checked again by the worker before it reads a byte):
    rewriting a row's target would make every queued run, resume and "queue with this
    change" of the old target fail that check."""
    files: dict[str, dict[str, Any]] = {}
    for d in datasets:  # newest first (registry.list_datasets)
        f = files.setdefault(d["path"] or f"#{d['id']}", {"versions": []})
        f["versions"].append(d)
    out = []
    for f in files.values():
        first = min(f["versions"], key=lambda d: d["id"])
        out.append({"id": first["id"], "name": first["name"], "versions": f["versions"]})
    return out


def _filter_names(datasets: list[dict[str, Any]]) -> dict[int, str]:
    """A dataset's name for the run filter, with its target where two share a name (a file
    given another target, issue 20, §8) and its id: "colours.csv · a · #4". Two equal labels
    would also be one value in the browser, which sends a choice back as its label."""
    count: dict[str, int] = {}
    for d in datasets:
        count[d["name"]] = count.get(d["name"], 0) + 1
    return {
        d["id"]: d["name"]
        if count[d["name"]] == 1
        else f"{d['name']} · {d['target'] or '—'} · #{d['id']}"
        for d in datasets
    }


# --- home -----------------------------------------------------------------------------------


def _holder(db: sqlite_utils.Database, run_id: int | None) -> str:
    """Whose run holds a worker's slot ("—" when idle)."""
    if run_id is None:
        return "—"
    try:
        return registry.get_run(db, run_id)["owner"] or "—"
    except LookupError:
        return "—"


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
        workers.append(
            {
                "name": w["name"],
                "device": w.get("device") or "cpu",
                "gpu": w.get("gpu_name") or "—",
                "memory": format_mib(w.get("gpu_mem_total")),
                "state": state,
                "run": f"#{w['current_run']}" if w.get("current_run") is not None else "—",
                "holder": _holder(db, w.get("current_run")),
                # seconds since its last heartbeat; the page writes "12 s ago" in its language
                "seen": time.time() - seen if seen else None,
                "host": w.get("host") or "—",
                # a worker on another host (jobs.remote): records in its spool not yet on the
                # server, and how old the oldest of them is; None for a local worker
                "backlog": w.get("spool_backlog") if w.get("remote") else None,
                "lag": round(w.get("sync_lag_s") or 0.0, 1) if w.get("remote") else None,
            }
        )
    rows, total = run_rows(db, limit=recent)
    return {
        "workers": workers,
        "online": sum(w["state"] != "stopped" for w in workers),
        "queued": counts.get("queued", 0),
        "running": counts.get("running", 0),
        "counts": counts,
        "active": sum(counts.get(s, 0) for s in ACTIVE),
        "total_runs": total,
        "recent": rows,
        "datasets": len(registry.list_datasets(db)),
        "running_cap": quotas.max_running_per_user(db),
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
    files = {name: folder / name for name in (MODEL, CHECKPOINT) if (folder / name).is_file()}
    row = run_row(run, _dataset_names(db), sweep_store.paused_trials(db, [run_id]).get(run_id))
    row["catching_up"] = catching_up(db, run)
    if not run.get("summary"):  # still going: the tiles follow the charts, not the summary
        row.update(_live_tiles(db, run))
    return {
        "run": run,
        "row": row,
        "dataset": dataset,
        "files": files,
        "dir": folder,
    }


def catching_up(db: sqlite_utils.Database, run: dict[str, Any]) -> bool:
    """Whether a running run's worker, on another host, still holds records the server has not
    got (its spool backlog, as its last presence report said): the charts are behind the run.
    A finished run never is: its outcome is its last record, sent after all the others."""
    if run["status"] != "running" or not run.get("worker"):
        return False
    w = next((w for w in registry.list_workers(db, None) if w["name"] == run["worker"]), None)
    return bool(w and w.get("remote") and (w.get("spool_backlog") or 0) > 0)


def _live_tiles(db: sqlite_utils.Database, run: dict[str, Any]) -> dict[str, Any]:
    """A running run's tiles from what the charts show (issue 20, §8): the best validation
    score so far, the epochs done (validation points), the LR cuts (events), the time left."""
    from jobs.store.reader import events, series

    run_id = run["id"]

    out: dict[str, Any] = {"live_epochs": None, "live_cuts": None}
    for metric, better in (("acc", max), ("rmse", min)):
        s = series(db, run_id, f"val/{metric}").get(f"val/{metric}")
        if s is not None and s.value:
            best = better(v for v in s.value if v == v)  # NaN-free
            out.update(
                best=format_metric(metric, best),
                best_value=best,
                metric=metric,
                metric_name=metric_name(metric),
                live_epochs=len(s.value),
            )
            break
    out["live_cuts"] = len(events(db, run_id, kinds=[EventKind.LR_CUT]))
    out.update(_eta(db, run))
    return out


# An ETA needs this many epochs trained since the run (re)started: the first one also pays for
# the pre-flight checks and warming up, so one epoch alone says little about the next ones.
ETA_MIN_EPOCHS = 2


def eta_seconds(
    *, elapsed_s: float, steps_done: int, steps_left: int, steps_per_epoch: int
) -> float | None:
    """Seconds left at the pace since the run (re)started: ``elapsed_s`` for ``steps_done``
    steps, ``steps_left`` to go. None (still estimating) before ETA_MIN_EPOCHS epochs."""
    if steps_per_epoch <= 0 or steps_done < ETA_MIN_EPOCHS * steps_per_epoch:
        return None
    return max(0.0, elapsed_s * max(0, steps_left) / steps_done)


def _eta(
    db: sqlite_utils.Database, run: dict[str, Any], now: float | None = None
) -> dict[str, Any]:
    """A running run's time left (issue 20, §8), from its stored points and events: the
    latest start (``run_start``, or ``resumed`` with its step) gives the clock and the step
    it began at; the newest training point gives the step reached; ``run_start`` gives the
    steps per epoch. ``eta_upper_bound``: the run may stop sooner (early stopping, the LR
    floor), so the ETA is the most it will take."""
    from jobs.store.reader import events, last_step

    run_id = run["id"]
    spec = run.get("spec") or {}
    train, sched = spec.get("train") or {}, spec.get("schedule") or {}
    out: dict[str, Any] = {
        "eta_s": None,
        "eta_upper_bound": train.get("early_stop_patience") is not None
        or (sched.get("enabled", True) and (sched.get("lr_floor") or 0) > 0),
    }
    starts = events(db, run_id, kinds=[EventKind.RUN_START, EventKind.RESUMED])
    spe = next(
        (e["data"].get("steps_per_epoch") for e in starts if e["kind"] == EventKind.RUN_START),
        None,
    )
    if run["status"] != "running" or not starts or not spe or not train.get("epochs"):
        return out
    began = starts[-1]
    step0 = int(began["data"].get("step") or 0) if began["kind"] == EventKind.RESUMED else 0
    reached = max(
        (s for s in (last_step(db, run_id, k) for k in ("train/loss", "val/loss")) if s),
        default=0,
    )
    out["eta_s"] = eta_seconds(
        elapsed_s=(now or time.time()) - began["created_at"],
        steps_done=reached - step0,
        steps_left=int(train["epochs"]) * int(spe) - reached,
        steps_per_epoch=int(spe),
    )
    return out


def export_metrics_csv(run_id: int) -> Path:
    """Write every stored point of the run to ``<run dir>/metrics.csv`` and return the path.
    Opens its own connection: the dashboard calls it from a download handler thread."""
    from jobs.store.db import connect
    from jobs.store.reader import export_metrics

    path = run_dir(run_id) / "metrics.csv"
    db = connect()
    try:
        export_metrics(db, run_id, path, "csv")
    finally:
        db.close()
    return path


_FINDING_KINDS = (EventKind.DOCTOR, EventKind.PREFLIGHT, EventKind.DIVERGED, EventKind.CLIP_BURST)


# A rule whose premise another finding explains: unscaled inputs (T2's pre-flight check) make
# the loss start far off, the updates lopsided and the gradients wild; a diverged run's loss
# and gradients explode. Those findings are shown under the one that explains them.
EXPLAINED_BY = {
    "inputs_standardized": {
        "init_loss", "activation_scale", "ratio_low", "ratio_high", "loss_rising",
        "overfitting", "exploding_gradient", "plateau", "class_never_predicted",
        "learned_nothing",
    },
    EventKind.DIVERGED: {"ratio_high", "loss_rising", "exploding_gradient", "learned_nothing"},
    "ratio_low": {"learned_nothing", "class_never_predicted"},
    "init_loss": {"learned_nothing", "class_never_predicted"},
}  # fmt: skip


def findings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Doctor findings of a run from its events, ranked by root cause: live warnings, failed
    pre-flight checks, dataset-report warnings, divergence. Passed checks are left out (they
    are in the log).

    A live rule that stays true is one finding, not one per report: its newest words, with
    ``count`` and its ``first_step`` / ``last_step``. ``explained_by``: the rule of an earlier
    finding that explains this one (None). ``start_here``: the first finding to act on (the
    highest-ranked one that is not a dataset-report line and not explained by another)."""
    merged: dict[tuple, dict[str, Any]] = {}
    for e in events:
        if e["kind"] not in _FINDING_KINDS:
            continue
        d = e.get("data") or {}
        if e["kind"] == EventKind.PREFLIGHT and d.get("passed") is True:
            continue
        rule = d.get("rule") or e["kind"]
        f = {
            "event_id": e["id"],
            "step": e["step"],
            "kind": e["kind"],
            "tip": d.get("tip") or ("T9" if e["kind"] == EventKind.CLIP_BURST else "—"),
            "severity": d.get("severity")
            or ("error" if e["kind"] == EventKind.DIVERGED else "warning"),
            "rule": rule,
            "message": e["message"],
            "suggestion": d.get("suggestion") or "",
            # The doctor's own structured change ({config field: value}); empty when the advice
            # has no single setting to change, or the run already has it.
            "change": dict(d.get("change") or {}),
        }
        # each dataset-report line is its own finding; a rule that repeats is one
        key = (e["kind"], rule, e["id"] if rule == "dataset_report" else None)
        first = merged.get(key)
        f["count"] = 1 if first is None else first["count"] + 1
        f["first_step"] = e["step"] if first is None else first["first_step"]
        f["last_step"] = e["step"]
        merged[key] = f
    out = list(merged.values())
    rules = {f["rule"] for f in out}
    for f in out:
        f["explained_by"] = next(
            (
                str(r)
                for r, explained in EXPLAINED_BY.items()
                if r in rules and f["rule"] in explained
            ),
            None,
        )
    out.sort(
        key=lambda f: (
            f["explained_by"] is not None,
            ROOT_CAUSE_RANK.get(f["tip"], 9),
            f["severity"] != "error",
            f["first_step"] or 0,
        )
    )
    start = next((f for f in out if _actionable(f) and f["explained_by"] is None), None)
    for f in out:
        f["start_here"] = f is start
    return out


def _actionable(finding: dict[str, Any]) -> bool:
    """Whether "Start here" may point at a finding: not a dataset-report line, and not a note
    that asks nothing of the reader (an info finding with no suggestion and no change, such as
    how the range test's LR fared)."""
    if finding["rule"] == "dataset_report":
        return False
    note = finding["severity"] == "info" and not finding["suggestion"] and not finding["change"]
    return not note


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
            rows.append(
                {
                    "setting": field,
                    **{name: show_value(v) for (name, _), v in zip(flats, values, strict=True)},
                }
            )
    return rows


def _best_baseline(s: dict[str, Any]) -> str:
    """scikit-learn's best reference score on the run's own split (engine.baselines)."""
    scores = [b.get("test_metric") for b in (s.get("baselines") or {}).values()]
    scores = [v for v in scores if v is not None]
    if not scores:
        return "—"
    return format_metric(s.get("metric"), max(scores) if s.get("metric") == "acc" else min(scores))


def compare_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Side-by-side outcome of several runs: status, best metric, epochs, LR cuts, time (in
    seconds, None before it started)."""
    out = []
    for r in runs:
        s = r.get("summary") or {}
        scores = test_scores(s)  # the same cells as the Runs table's
        out.append(
            {
                "run": f"run {r['id']}",
                "name": r.get("name") or "",
                "status": r["status"],
                "best": format_metric(s.get("metric"), s.get("best_val_metric")),
                "test (held out)": format_metric(s.get("metric"), s.get("test_metric")),
                # a classifier's test split by class: the mean recall and macro-F1 (issue 20)
                "test balanced acc": scores["test_balanced"],
                "test macro-F1": scores["test_f1"],
                "worst class (test recall)": worst_class(s),
                # a regression's test split beyond its RMSE (the "test (held out)" column)
                "test MAE": scores["test_mae"],
                "test R²": scores["test_r2"],
                "best baseline (same split)": _best_baseline(s),
                "best val loss": s.get("best_val_loss"),
                "epochs": s.get("epochs"),
                "LR cuts": s.get("lr_cuts"),
                "stop": s.get("stop_reason") or "",
                "time": _duration(r),  # seconds; the page writes them in its language
            }
        )
    return out


def per_class_recall(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each class's test recall, one column per classifier that has per-class scores:
    ``[{"class": "cat", "run 3": "91.2%", "run 4": "—"}, ...]`` (classes in the order the runs
    name them; [] when no run has them)."""
    scored = [(f"run {r['id']}", (r.get("summary") or {}).get("per_class") or []) for r in runs]
    scored = [(name, rows) for name, rows in scored if rows]
    if not scored:
        return []
    classes = list(dict.fromkeys(str(c["class"]) for _, rows in scored for c in rows))
    recall = {
        (name, str(c["class"])): format_metric("acc", c["recall"] if c.get("support") else None)
        for name, rows in scored
        for c in rows
    }
    return [
        {"class": one_line(c, 80), **{name: recall.get((name, c), "—") for name, _ in scored}}
        for c in classes
    ]


# --- A/B over paired seeds (issue 23 §2) -----------------------------------------------------

# The score each A/B arm is judged on: the held-out test split (the verdict's: scored once, at
# the end) and the best validation score (the epoch was picked on it, so it flatters).
AB_SCORES = {"test": "test_metric", "best_val": "best_val_metric"}
# Whether more is better, per run metric (summary["metric"]); a metric not listed is an error
# of ours, so the verdict would rather say nothing than guess the direction.
HIGHER_IS_BETTER = {"acc": True, "rmse": False}
# The most runs one A/B group can hold (submit.MAX_AB_SEEDS pairs, with room for resubmits):
# the read stops there, whatever the store holds.
AB_GROUP_READ = 100


def _seed(run: dict[str, Any]) -> int | None:
    seed = ((run.get("spec") or {}).get("train") or {}).get("seed")
    return seed if isinstance(seed, int) else None


def _ab_change(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The settings on which arm B differs from arm A (the seed aside): setting, A, B."""
    if a is None or b is None:
        return []
    rows = config_diff([a, b])
    return [
        {"setting": r["setting"], "A": r[f"run {a['id']}"], "B": r[f"run {b['id']}"]}
        for r in rows
        if r["setting"] != "train.seed"
    ]


def _ab_tip(run: dict[str, Any] | None) -> str | None:
    """The tip an A/B group switches off, from the name it was queued under ("A/B T2 on")."""
    name = (run or {}).get("name") or ""
    head = name.split(" · ")[0]
    if head.startswith("A/B ") and head.endswith(" on"):
        tip = head[4:-3]
        return tip if tip[:1] == "T" and tip[1:].isdigit() else None
    return None


def ab_groups(db: sqlite_utils.Database, limit: int = 50) -> list[dict[str, Any]]:
    """Every A/B group, newest first, for the Compare page's picker: ``group_id``, what B
    changes (setting names), the dataset, the number of seeds, runs and runs over."""
    names = _dataset_names(db)
    out = []
    for g in registry.ab_groups(db, limit=limit):
        a = registry.get_run(db, g["a_id"]) if g["a_id"] else None
        b = registry.get_run(db, g["b_id"]) if g["b_id"] else None
        out.append(
            {
                "group_id": g["group_id"],
                "change": [c["setting"] for c in _ab_change(a, b)],
                "tip": _ab_tip(a),
                "dataset": one_line(names.get(g["dataset_id"], "—"), 80),
                "seeds": (g["runs"] + 1) // 2,
                "runs": g["runs"],
                "active": g["active"] or 0,
                "over": g["runs"] - (g["active"] or 0),
            }
        )
    return out


def _ab_runs(db: sqlite_utils.Database, group_id: str) -> list[dict[str, Any]]:
    runs = registry.list_runs(db, group_id=group_id, limit=AB_GROUP_READ)
    return sorted((r for r in runs if r.get("ab_arm") in ("A", "B")), key=lambda r: r["id"])


def ab_report(db: sqlite_utils.Database, group_id: str) -> dict[str, Any] | None:
    """One A/B group judged seed by seed (``engine.abtest``), None when it has no runs.

    ``scores`` holds, for the held-out test metric (``test``) and the best validation metric
    (``best_val``): each arm's mean ± 95% CI (``a``, ``b``: ``ArmStats``), the paired
    difference B − A (``diff``: ``PairedStats``) and the ``verdict`` (a ``Verdict`` with its
    message). A seed counts once both of its runs have finished; a failed or cancelled run
    drops its seed's pair. ``pairs``: each seed's two runs (id, status, test, best)."""
    from engine import abtest  # scipy, only when a page shows a group

    runs = _ab_runs(db, group_id)
    if not runs:
        return None
    by_arm: dict[str, dict[int, dict[str, Any]]] = {"A": {}, "B": {}}
    for r in runs:
        seed = _seed(r)
        if seed is not None:
            by_arm[r["ab_arm"]].setdefault(seed, r)  # the first run of a seed is its pair's
    seeds = sorted(set(by_arm["A"]) | set(by_arm["B"]))
    summaries = [r.get("summary") or {} for r in runs]
    metric = next((s["metric"] for s in summaries if s.get("metric")), None)
    higher = HIGHER_IS_BETTER.get(metric or "", True)

    def score(run: dict[str, Any] | None, key: str) -> float | None:
        if run is None or run["status"] != "finished":
            return None
        return (run.get("summary") or {}).get(key)

    scores = {}
    for name, key in AB_SCORES.items():
        a = [score(by_arm["A"].get(s), key) for s in seeds]
        b = [score(by_arm["B"].get(s), key) for s in seeds]
        scores[name] = {
            "a": abtest.arm_stats(a),
            "b": abtest.arm_stats(b),
            "diff": abtest.paired_stats(a, b),
            "verdict": abtest.verdict(a, b, metric=metric, higher_is_better=higher),
        }

    def brief(run: dict[str, Any] | None) -> dict[str, Any] | None:
        if run is None:
            return None
        return {
            "id": run["id"],
            "status": run["status"],
            "test": score(run, "test_metric"),
            "best": score(run, "best_val_metric"),
        }

    first_a = next(iter(by_arm["A"].values()), None)
    first_b = next(iter(by_arm["B"].values()), None)
    return {
        "group_id": group_id,
        "metric": metric,
        "metric_name": metric_name(metric),
        "higher_is_better": higher,
        "tip": _ab_tip(first_a),
        "change": _ab_change(first_a, first_b),
        "scores": scores,
        "seeds": seeds,
        "pairs": [
            {"seed": s, "A": brief(by_arm["A"].get(s)), "B": brief(by_arm["B"].get(s))}
            for s in seeds
        ],
        "runs": len(runs),
        "active": sum(r["status"] in ACTIVE for r in runs),
        "run_ids": [r["id"] for r in runs],
    }


def ab_metric_keys(db: sqlite_utils.Database, group_id: str) -> list[str]:
    """The metric keys any run of the group has logged, sorted."""
    keys: set[str] = set()
    for r in _ab_runs(db, group_id):
        keys |= set(reader.keys(db, r["id"]))
    return sorted(keys)


def ab_bands(
    db: sqlite_utils.Database, group_id: str, key: str, max_points: int = 2000
) -> dict[str, dict[str, Any]]:
    """Each arm's ``key`` curve as mean and per-step 95% CI (``engine.abtest.band``):
    ``{"A": {"n": runs with points, "rows": [{"step", "mean", "low", "high", "n"}, ...]}, "B": …}``."""
    from engine import abtest

    out: dict[str, dict[str, Any]] = {}
    for arm in ("A", "B"):
        curves = []
        for r in _ab_runs(db, group_id):
            if r["ab_arm"] != arm:
                continue
            s = reader.series(db, r["id"], [key], max_points=max_points).get(key)
            if s is not None and len(s):
                curves.append((s.step, s.value))
        out[arm] = {"n": len(curves), "rows": abtest.band(curves)}
    return out
