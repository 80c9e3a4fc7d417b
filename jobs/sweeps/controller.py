"""Create a sweep, and step it: ask Optuna, queue trials, pause them at rungs, promote, tell.

Where it runs: every worker steps the sweep whose trial it just ran (``jobs.queue.tasks``)
and, in its housekeeping thread, every sweep with work left (``jobs.queue.worker``); the
dashboard or CLI that creates a sweep steps it once to queue the first trials. Whoever holds the
sweep's lease (``jobs.store.sweeps.take_lease``) acts; a process that finds the lease taken
pokes the sweep so the holder makes one more pass. All state is in the store and the Optuna
study beside it, so a step after any restart carries on where the last one stopped.

One step:
1. each trial in flight whose run is over is settled: finished below the top rung → *paused*
   (the run ends at the rung with its checkpoint; an event on its timeline says so), at the top
   rung or stopped early by its own run → *complete* (told to Optuna), failed, diverged or
   cancelled → *failed* (told as FAIL: the sweep goes on);
2. while fewer than ``parallel`` trials are in flight: promote the trial ASHA picks
   (``jobs.sweeps.asha``; resumed from its checkpoint under the same run id, so no step is
   trained twice), else ask Optuna for a new trial and queue it to the first rung;
3. when every trial was asked and none is in flight or promotable, the sweep is finished and
   the trials still paused are told as pruned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

import sqlite_utils

from engine.errors import ConfigError, Refused
from engine.messages import Message
from engine.vocab import ACTIVE, EventKind, RunStatus
from jobs.runs import quotas
from jobs.runs import submit as runs
from jobs.runs.names import TextRefused, clean_text
from jobs.store import registry
from jobs.store import sweeps as store
from jobs.store.db import connect
from jobs.sweeps import asha, study
from jobs.sweeps.space import Dim, parse_space

log = logging.getLogger(__name__)

MAX_TRIALS = 200
MAX_PARALLEL = 16
MAX_ETA = 4
# A pass renews the lease before each action, so this bounds one action (an Optuna ask and a
# submit), not a pass; a holder that died frees the sweep after it, or at once when it was a
# process on this host that no longer exists (_gone).
LEASE_S = 30.0
# A run's statuses while its trial is in flight, and what each over status makes of the trial.
RUN_IN_FLIGHT = ACTIVE
RUN_FAILED = (RunStatus.FAILED, RunStatus.DIVERGED, RunStatus.CANCELLED)


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _gone(holder: str | None) -> bool:
    """Whether a lease holder was a process on this host that has exited (a killed worker)."""
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _objective(task: str | None) -> tuple[str, str]:
    """The score a trial is judged on (the run's best validation metric) and its direction."""
    return ("acc", "maximize") if task == "classification" else ("rmse", "minimize")


def create_sweep(
    preset: str,
    dataset: str,
    *,
    space: list[str],
    trials: int = 20,
    parallel: int = 2,
    min_epochs: int = 1,
    eta: int = 3,
    max_epochs: int | None = None,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    info: dict[str, Any] | None = None,
    dataset_id: int | None = None,
    owner: str = "local",
    queue: str = "cpu",
    name: str | None = None,
    db: sqlite_utils.Database | None = None,
) -> int:
    """Validate a sweep as a single run is validated, record it and queue its first trials.

    Every corner of the space (each dimension's ends or choices, on the base config at the
    full ``max_epochs``) passes ``jobs.runs.submit.validate`` and the server's quotas before
    anything is recorded; ``parallel`` must fit the owner's queued-run quota, since each trial
    in flight is one of their queued or running runs. Raises ``ConfigError`` with the fields
    at fault (``space``, ``trials``, ``parallel``, ``rungs``, or a config field)."""
    if name is not None:  # the one normaliser for typed names: refused beyond its limit
        try:
            name = clean_text(name, what="sweep name") or None
        except TextRefused as e:
            raise ConfigError(str(e), {"name": str(e)}) from e
    if not _whole(trials, 1, MAX_TRIALS):
        msg = Message("sweep.trials", limit=MAX_TRIALS)
        raise ConfigError(msg, {"trials": msg})
    q = quotas.Quotas.from_env()
    if not _whole(parallel, 1, MAX_PARALLEL):
        msg = Message("sweep.parallel", limit=MAX_PARALLEL)
        raise ConfigError(msg, {"parallel": msg})
    if parallel > q.max_queued_per_user:
        msg = Message("sweep.parallel_quota", parallel=parallel, limit=q.max_queued_per_user)
        raise ConfigError(msg, {"parallel": msg})
    dims = parse_space(space)
    if isinstance(overrides, list):
        from engine.config import parse_override

        overrides = dict(parse_override(o) for o in overrides)
    base = {k: v for k, v in (overrides or {}).items() if k != "train.epochs"}
    if why := runs.member_override_errors(base):
        field, msg = next(iter(why.items()))
        raise ConfigError(msg, {field: msg})
    facts = runs.data_facts(preset, dataset, target, info)
    common = {"target": target, "info": info, "queue": queue, "facts": facts and facts.to_dict()}
    if max_epochs is None:
        first = runs.validate(preset, dataset, overrides={**base, **(overrides or {})}, **common)
        max_epochs = first.spec["train"]["epochs"]
    if not (_whole(min_epochs, 1, 10**6) and _whole(max_epochs, min_epochs, 10**6)) or not (
        _whole(eta, 2, MAX_ETA)
    ):
        msg = Message("sweep.rungs", eta=MAX_ETA)
        raise ConfigError(msg, {"rungs": msg})
    top = {**base, "train.epochs": max_epochs}
    request = runs.validate(preset, dataset, overrides=top, **common)
    for d in dims:  # the same checks as a single run, at each end of each dimension
        for value in d.corners:
            runs.validate(preset, dataset, overrides={**top, d.field: value}, **common)
    db = db or connect()
    ds = runs.check_dataset(db, request.spec, dataset_id)
    metric, direction = _objective(ds.get("task") or request.spec["data"].get("task"))
    spec = {
        "dataset": dataset,
        "target": request.spec["data"].get("target"),
        "queue": queue,
        "base": base,
        "space": [d.to_dict() for d in dims],
        "trials": trials,
        "parallel": parallel,
        "eta": eta,
        "rungs": list(asha.rungs(min_epochs, eta, max_epochs)),
        "facts": common["facts"],
        "seed": int.from_bytes(os.urandom(4), "big") % 10**6,
    }
    sweep_id = store.create_sweep(
        db,
        name=name or f"{preset} on {ds.get('name') or dataset}"[:200],
        owner=owner,
        dataset_id=ds["id"],
        preset=preset,
        spec=spec,
        metric=metric,
        direction=direction,
    )
    study.open_study(sweep_id, direction)
    step(db, sweep_id)
    return sweep_id


# --- pause, resume, cancel --------------------------------------------------------------------


def pause(db: sqlite_utils.Database, sweep_id: int) -> None:
    """Queue nothing more; trials in flight reach their rung and wait there."""
    if not store.set_status(db, sweep_id, "paused", allowed_from=("running",)):
        s = store.get_sweep(db, sweep_id)
        raise ConfigError(Message("sweep.cannot_pause", id=sweep_id, status=s["status"]))


def resume(db: sqlite_utils.Database, sweep_id: int) -> None:
    if not store.set_status(db, sweep_id, "running", allowed_from=("paused",)):
        s = store.get_sweep(db, sweep_id)
        raise ConfigError(Message("sweep.cannot_resume", id=sweep_id, status=s["status"]))
    step(db, sweep_id)


def cancel(db: sqlite_utils.Database, sweep_id: int) -> None:
    """Stop the sweep: its trials in flight are cancelled (a running one checkpoints first)
    and the paused ones are told as pruned."""
    if not store.set_status(db, sweep_id, "cancelled", allowed_from=("running", "paused")):
        s = store.get_sweep(db, sweep_id)
        raise ConfigError(Message("sweep.cannot_cancel", id=sweep_id, status=s["status"]))
    for t in store.trials(db, sweep_id):
        if t["state"] == store.IN_FLIGHT and t["run_id"] and t["run_status"] in RUN_IN_FLIGHT:
            with contextlib.suppress(Refused):  # it ended a moment ago: settled below
                runs.cancel(t["run_id"], db)
    step(db, sweep_id)


# --- the step -----------------------------------------------------------------------------------


def on_run_over(db: sqlite_utils.Database, run_id: int) -> None:
    """A worker's run ended: step its sweep if it is a trial (nothing for an ordinary run)."""
    trial = store.trial_of_run(db, run_id)
    if trial is not None:
        step(db, trial["sweep_id"])


def step_all(db: sqlite_utils.Database) -> None:
    """Step every sweep with work left (a worker's housekeeping)."""
    for sweep_id in store.active_sweep_ids(db):
        step(db, sweep_id)


def step(db: sqlite_utils.Database, sweep_id: int) -> bool:
    """One pass of the controller over a sweep (see the module docstring), repeated while a
    trial's run ended during it. False when another process holds the lease (it was poked and
    passes again)."""
    me = _holder()
    store.poke(db, sweep_id)
    for _ in range(5):
        if not store.take_lease(db, sweep_id, me, LEASE_S):
            holder = store.get_sweep(db, sweep_id)["lease_by"]
            if not (
                _gone(holder) and store.take_lease(db, sweep_id, me, LEASE_S, steal_from=holder)
            ):
                return False
        started = time.time()
        try:
            _pass(db, sweep_id)
        finally:
            store.drop_lease(db, sweep_id, me)
        if not store.poked_since(db, sweep_id, started):
            break
    return True


def _pass(db: sqlite_utils.Database, sweep_id: int) -> None:
    sweep = store.get_sweep(db, sweep_id)
    if sweep["status"] == "finished":
        return
    spec = sweep["spec"]
    ladder = tuple(spec["rungs"])
    the_study = study.open_study(sweep_id, sweep["direction"])
    trials = store.trials(db, sweep_id)
    for number in study.orphans(the_study, {t["number"] for t in trials}):
        study.tell(the_study, number, "fail")
    for t in trials:
        if t["state"] == store.IN_FLIGHT:
            _settle(db, sweep, the_study, t, ladder)
    trials = store.trials(db, sweep_id)
    if sweep["status"] == "running":
        _fill(db, sweep, trials, ladder)
        trials = store.trials(db, sweep_id)
    if sweep["status"] == "cancelled" or _done(sweep, trials, ladder):
        for t in trials:
            if t["state"] == "paused":
                study.tell(the_study, t["number"], "pruned")
                store.update_trial(db, sweep_id, t["number"], state="pruned")
        if sweep["status"] == "running" and _done(sweep, trials, ladder):
            store.set_status(db, sweep_id, "finished", allowed_from=("running",))


def _in_flight(trials: list[dict[str, Any]]) -> int:
    return sum(1 for t in trials if t["state"] == store.IN_FLIGHT)


def _candidates(trials: list[dict[str, Any]]) -> list[asha.TrialAtRungs]:
    return [
        asha.TrialAtRungs(t["number"], t["state"] == "paused", t["rung_values"])
        for t in trials
        if t["rung_values"]
    ]


def _done(sweep: dict[str, Any], trials: list[dict[str, Any]], ladder: tuple[int, ...]) -> bool:
    spec = sweep["spec"]
    if len(trials) < spec["trials"] or _in_flight(trials):
        return False
    maximize = sweep["direction"] == "maximize"
    return asha.promotion(_candidates(trials), ladder, spec["eta"], maximize=maximize) is None


def _settle(db, sweep, the_study, t: dict[str, Any], ladder: tuple[int, ...]) -> None:
    """A trial in flight whose run is over: paused, complete or failed."""
    sweep_id, number = sweep["id"], t["number"]
    status = t["run_status"]
    if t["run_id"] is None or status is None:  # died between recording and queueing, or deleted
        study.tell(the_study, number, "fail")
        store.update_trial(db, sweep_id, number, state="failed")
        return
    if status in RUN_IN_FLIGHT:
        return
    summary = t["run_summary"] or {}
    value = summary.get("best_val_metric")
    if status in RUN_FAILED or value is None or value != value:
        study.tell(the_study, number, "fail")
        state = "cancelled" if status == "cancelled" else "failed"
        store.update_trial(db, sweep_id, number, state=state)
        return
    epochs = int(summary.get("epochs") or 0)
    seconds = float(t["seconds"] or 0) + float(summary.get("seconds") or 0)
    values = {**t["rung_values"], t["rung"]: float(value)}
    study.report(the_study, number, t["rung"], float(value))
    ended_early = summary.get("stop_reason") != "epochs"
    fields = {"epochs": epochs, "seconds": seconds, "rung_values": values, "value": float(value)}
    if t["rung"] >= ladder[-1] or ended_early:
        study.tell(the_study, number, "complete", float(value))
        store.update_trial(db, sweep_id, number, state="complete", **fields)
        return
    store.update_trial(db, sweep_id, number, state="paused", **fields)
    message = Message(
        "event.sweep_paused", sweep=sweep_id, epochs=epochs, metric=sweep["metric"], value=value
    )
    store.add_run_event(
        db,
        t["run_id"],
        int(summary.get("steps") or 0),
        EventKind.SWEEP_PAUSED,
        message,
        {"sweep": sweep_id, "trial": number, "epochs": epochs, "value": value},
    )


def _fill(db, sweep, trials: list[dict[str, Any]], ladder: tuple[int, ...]) -> None:
    """Promote or start trials while fewer than ``parallel`` are in flight."""
    spec = sweep["spec"]
    maximize = sweep["direction"] == "maximize"
    in_flight, asked = _in_flight(trials), len(trials)
    by_number = {t["number"]: t for t in trials}
    note = None
    while in_flight < spec["parallel"]:
        store.take_lease(db, sweep["id"], _holder(), LEASE_S)  # renewed before each action
        promote = asha.promotion(_candidates(trials), ladder, spec["eta"], maximize=maximize)
        try:
            if promote is not None:
                _promote(db, sweep, by_number[promote[0]], promote[1])
                trials = store.trials(db, sweep["id"])
                by_number = {t["number"]: t for t in trials}
            elif asked < spec["trials"]:
                if why := runs.queue_quota(db, sweep["owner"]):  # before asking for a trial
                    note = {"text": why}
                    break
                _start(db, sweep, ladder[0])
                asked += 1
                trials = store.trials(db, sweep["id"])
            else:
                break
        except runs.QueueFull as e:  # the owner's quota: wait for a slot, as a person would
            note = {"text": str(e)}
            break
        in_flight += 1
    store.set_note(db, sweep["id"], note)


def _promote(db, sweep, t: dict[str, Any], epochs: int) -> None:
    sweep_id, number = sweep["id"], t["number"]
    message = Message("event.sweep_promoted", sweep=sweep_id, epochs=t["epochs"], next=epochs)
    try:
        runs.resume(db, t["run_id"], {"train.epochs": epochs}, paused=True)
    except runs.QueueFull:
        raise  # the quota: the promotion waits for a slot
    except Refused as e:  # its checkpoint or dataset is gone: it can't go on
        log.warning("sweep %s: trial %s can't be promoted: %s", sweep_id, number, e)
        store.update_trial(db, sweep_id, number, state="pruned")
        study.tell(study.open_study(sweep_id, sweep["direction"]), number, "pruned")
        return
    store.update_trial(db, sweep_id, number, state=store.IN_FLIGHT, rung=epochs)
    store.add_run_event(
        db,
        t["run_id"],
        int((t["run_summary"] or {}).get("steps") or 0),
        EventKind.SWEEP_PROMOTED,
        message,
        {"sweep": sweep_id, "trial": number, "epochs": t["epochs"], "next": epochs},
    )


def _start(db, sweep, epochs: int) -> None:
    """Ask Optuna for a trial and queue its run to the first rung. The trial is recorded
    before its run, so a crash in between leaves a trial the next step fails, not a run that
    no trial knows."""
    spec = sweep["spec"]
    sweep_id = sweep["id"]
    dims = [Dim.from_dict(d) for d in spec["space"]]
    n_trials = len(store.trials(db, sweep_id))
    the_study = study.open_study(sweep_id, sweep["direction"], seed=spec["seed"] + n_trials)
    number, params = study.ask(the_study, dims)
    store.add_trial(
        db, sweep_id, number, params=params, run_id=None, state=store.IN_FLIGHT, rung=epochs
    )
    ds = registry.get_dataset(db, sweep["dataset_id"])
    try:
        sub = runs.submit(
            sweep["preset"],
            spec["dataset"],
            target=spec.get("target"),
            overrides={**spec["base"], **params, "train.epochs": epochs},
            info=ds.get("report"),
            facts=spec.get("facts"),
            queue=spec["queue"],
            owner=sweep["owner"],
            name=f"sweep {sweep_id} · trial {number}",
            dataset_id=sweep["dataset_id"],
            group_id=f"sweep-{sweep_id}",
            db=db,
        )
    except runs.QueueFull:
        study.tell(the_study, number, "fail")
        store.update_trial(db, sweep_id, number, state="failed")
        raise
    except ConfigError as e:  # a point inside the space that a single run may not take
        log.warning("sweep %s: trial %s refused: %s", sweep_id, number, e)
        study.tell(the_study, number, "fail")
        store.update_trial(db, sweep_id, number, state="failed")
        return
    store.update_trial(db, sweep_id, number, run_id=sub.run_id)
