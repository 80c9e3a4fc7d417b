"""What the Sweeps page and ``trainboard sweeps`` show: the sweeps, one sweep's trials, the
parallel-coordinates points, the hours pruning saved and Optuna's parameter importance."""

from __future__ import annotations

import math
from typing import Any

import sqlite_utils

from jobs.store import sweeps as store
from jobs.sweeps.space import Dim


def sweep_rows(db: sqlite_utils.Database, limit: int = 200) -> list[dict[str, Any]]:
    """Every sweep, newest first, with its trials counted by state."""
    out = []
    for s in store.list_sweeps(db, limit=limit):
        counts: dict[str, int] = {}
        for t in store.trials(db, s["id"]):
            counts[t["state"]] = counts.get(t["state"], 0) + 1
        out.append(
            {
                "id": s["id"],
                "name": s["name"],
                "owner": s["owner"],
                "status": s["status"],
                "preset": s["preset"],
                "metric": s["metric"],
                "trials": s["spec"]["trials"],
                "asked": sum(counts.values()),
                **{state: counts.get(state, 0) for state in store.TRIAL_STATES},
            }
        )
    return out


def _norm(d: Dim, value: Any) -> float | None:
    """A parameter's value on its axis, 0 (low) to 1 (high); log axes in log space."""
    if d.kind == "choice":
        idx = [repr(c) for c in d.choices].index(repr(value)) if value in d.choices else None
        return None if idx is None else (idx / (len(d.choices) - 1) if len(d.choices) > 1 else 0.5)
    if not isinstance(value, (int, float)):
        return None
    lo, hi, v = float(d.low), float(d.high), float(value)
    if d.log:
        lo, hi, v = math.log10(lo), math.log10(hi), math.log10(max(v, d.low))
    return (v - lo) / (hi - lo)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def saved_by_pruning(trials: list[dict[str, Any]], top: int) -> dict[str, float]:
    """Device time pruning saved: each trial stopped at a rung below ``top`` (paused or
    pruned) did not train ``top − epochs`` epochs, at its own seconds per epoch (the sweep's
    mean where it has none). Its rate is its run's epoch loop alone (``loop_seconds`` over
    ``loop_epochs`` in the last segment's summary): the whole segment's seconds (start-up,
    pre-flight, scoring) made the rate, and the hours saved, run high on short rungs. Runs
    from before those fields: the trial's seconds over its epochs, as before. Also the time
    every trial actually trained."""
    rates = {t["number"]: _rate(t) for t in trials}
    per_epoch = [r for r in rates.values() if r]
    mean = sum(per_epoch) / len(per_epoch) if per_epoch else 0.0
    saved = 0.0
    for t in trials:
        if t["state"] in ("paused", "pruned") and t["epochs"]:
            saved += max(top - t["epochs"], 0) * (rates[t["number"]] or mean)
    trained = sum(float(t["seconds"] or 0) for t in trials)
    epochs_saved = sum(
        max(top - t["epochs"], 0) for t in trials if t["state"] in ("paused", "pruned")
    )
    return {
        "seconds_saved": saved,
        "hours_saved": saved / 3600,
        "epochs_saved": epochs_saved,
        "seconds_trained": trained,
        "seconds_per_epoch": mean,
    }


def _rate(trial: dict[str, Any]) -> float | None:
    """A trial's seconds per epoch: its run's loop, else its seconds over its epochs."""
    s = trial.get("run_summary") or {}
    if s.get("loop_epochs") and s.get("loop_seconds"):
        return float(s["loop_seconds"]) / int(s["loop_epochs"])
    if trial["epochs"] and trial["seconds"]:
        return float(trial["seconds"]) / trial["epochs"]
    return None


def sweep_report(db: sqlite_utils.Database, sweep_id: int) -> dict[str, Any]:
    """One sweep: its settings, the trial table, the parallel-coordinates points (one row per
    trial and axis, ``norm`` in 0..1 and ``label`` its value), the axes (with whether each is
    logarithmic and its ends as typed), the hours pruning saved. Raises ``SweepNotFound``."""
    sweep = store.get_sweep(db, sweep_id)
    spec = sweep["spec"]
    dims = [Dim.from_dict(d) for d in spec["space"]]
    trials = store.trials(db, sweep_id)
    top = spec["rungs"][-1]
    table = []
    for t in trials:
        row = {
            "trial": t["number"],
            "run": t["run_id"],
            "state": t["state"],
            "epochs": t["epochs"],
            sweep["metric"]: t["value"],
        }
        row.update({d.field: t["params"].get(d.field) for d in dims})
        table.append(row)
    scored = [t for t in trials if t["value"] is not None]
    values = [t["value"] for t in scored]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    points = []
    for t in scored:
        for d in dims:
            norm = _norm(d, t["params"].get(d.field))
            if norm is not None:
                label = _fmt(t["params"].get(d.field))
                points.append({"trial": t["number"], "axis": d.field, "norm": norm, "label": label})
        norm = (t["value"] - lo) / (hi - lo) if hi > lo else 0.5
        points.append(
            {"trial": t["number"], "axis": sweep["metric"], "norm": norm, "label": _fmt(t["value"])}
        )
    for p in points:
        p["score"] = next(t["value"] for t in scored if t["number"] == p["trial"])
    axes = [
        {
            "axis": d.field,
            "log": d.log,
            "low": _fmt(d.low) if d.kind != "choice" else _fmt(d.choices[0]),
            "high": _fmt(d.high) if d.kind != "choice" else _fmt(d.choices[-1]),
        }
        for d in dims
    ] + [{"axis": sweep["metric"], "log": False, "low": _fmt(lo), "high": _fmt(hi)}]
    return {
        "sweep": sweep,
        "space": [d.text() for d in dims],
        "rungs": spec["rungs"],
        "trials": table,
        "points": points,
        "axes": axes,
        "maximize": sweep["direction"] == "maximize",
        "saved": saved_by_pruning(trials, top),
    }


def importance(db: sqlite_utils.Database, sweep_id: int) -> dict[str, float] | None:
    """Optuna's parameter importance over the completed trials (None until enough)."""
    from jobs.sweeps import study

    sweep = store.get_sweep(db, sweep_id)
    return study.importance(sweep_id, sweep["direction"])
