"""Run commands: ``submit``, ``runs`` (list, delete), ``cancel``, ``resume`` and ``train`` (in
this process, without the queue)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# --- submit ---------------------------------------------------------------------------------


def add_submit(p: argparse.ArgumentParser) -> None:
    from engine.config import add_set_option  # the config layer only: no torch

    p.add_argument(
        "--preset", default="auto", help="preset name (default auto: fitted to the data)"
    )
    p.add_argument("--dataset", required=True, help="a file path or builtin:NAME")
    p.add_argument("--target", help="target column")
    add_set_option(p, "override a config field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument(
        "--queue",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu: any worker (default); gpu: only GPU workers",
    )
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--wait", action="store_true", help="wait until the run is over")


def dataset_for(
    db, dataset: str, target: str | None
) -> tuple[int | None, dict | None, str, str | None]:
    """(dataset id, stored report, source, target) of a command's ``--dataset``: a builtin as
    named, or a file added first and checked exactly as an upload is (a worker reads only
    registered datasets: a path under the data directory, its hash checked). A typo'd builtin
    or a missing path raises ``service.Refused`` before anything is queued. Every command that
    queues work from ``--dataset`` (submit, ab, lr-find, sweep) goes through here."""
    from jobs import service

    service.check_source(dataset)
    if dataset.startswith("builtin:"):
        return None, None, dataset, target
    row = service.add_file(db, Path(dataset), target=target)
    return row["id"], row["report"], row["path"], row["target"]


def note_no_worker(db, queue: str, what: str) -> None:
    """Say on stderr that no live worker takes ``queue`` yet, so ``what`` (e.g. "the run
    waits") until one starts, and how to start one."""
    from jobs import service

    if service.queue_has_worker(db, queue):
        return
    hint = "trainboard worker --device cuda:N" if queue == "gpu" else "trainboard up"
    print(
        f"note: no live worker takes the {queue} queue yet; {what} until one starts ({hint})",
        file=sys.stderr,
    )


def cmd_submit(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        dataset_id, info, source, target = dataset_for(db, args.dataset, args.target)
        res = service.submit_run(
            args.preset,
            source,
            target=target,
            overrides=args.overrides,
            queue=args.queue,
            name=args.name,
            dataset_id=dataset_id,
            info=info,
        )
    except (service.ConfigError, service.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {res.run_id} queued")
    if not res.sent:
        print(f"warning: {res.note}", file=sys.stderr)
    note_no_worker(db, args.queue, "the run waits")
    if not args.wait:
        return 0
    return _wait(res.run_id)


def _wait(run_id: int) -> int:
    from jobs import service

    db = service.connect()
    last = None
    while True:
        run = service.get_run(db, run_id)
        if run["status"] != last:
            print(f"run {run_id}: {run['status']}", flush=True)
            last = run["status"]
        if run["status"] in service.TERMINAL:
            break
        time.sleep(0.5)
    if run["error"]:
        print(f"  {run['error']}")
    if run["summary"]:
        print(f"  summary: {json.dumps(run['summary'])}")
    return 0 if run["status"] == "finished" else 1


# --- runs -----------------------------------------------------------------------------------


def add_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--limit", type=int, default=30)
    sub = p.add_subparsers(dest="runs_command", required=False)
    sub.add_parser("list", help="list runs (the default)")
    rm = sub.add_parser("delete", help="delete a run that is over, with its metrics and files")
    rm.add_argument("run_id", type=int)
    ex = sub.add_parser("export", help="write a run's metric points as CSV (key, step, value)")
    ex.add_argument("run_id", type=int)
    ex.add_argument("-o", "--output", help="file to write (default: standard output)")


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    s = time.time() - ts
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"


def cmd_runs(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    if getattr(args, "runs_command", None) == "delete":
        return _delete_run(db, args.run_id)
    if getattr(args, "runs_command", None) == "export":
        return _export_run(db, args.run_id, args.output)
    try:
        runs = service.list_runs(db, status=args.status, limit=args.limit)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = ("ID", "STATUS", "PRESET", "DATASET", "WORKER", "TRY", "PROG", "AGE", "NOTE")
    rows = []
    for r in runs:
        note = r["error"] or ""
        if r["status"] == "queued":
            info = service.send_info(db, r["id"])
            if info and info["last_error"]:
                note = f"waiting for the broker ({info['last_error']})"
        progress = f"{100 * r['progress']:.0f}%" if r["progress"] is not None else "-"
        rows.append(
            (
                str(r["id"]),
                r["status"],
                r["preset"] or "-",
                str((r["spec"] or {}).get("data", {}).get("dataset", "-")),
                r["worker"] or "-",
                f"{r['attempt']}/{r['max_attempts']}",
                progress,
                _age(r["created_at"]),
                note[:60],
            )
        )
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _export_run(db, run_id: int, output: str | None) -> int:
    from jobs import service

    try:
        if output:
            with open(output, "w", newline="") as f:
                n = service.export_run_points(db, run_id, f)
            print(f"{n} points of run {run_id} written to {output}", file=sys.stderr)
        else:
            service.export_run_points(db, run_id, sys.stdout)
    except service.RunNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _delete_run(db, run_id: int) -> int:
    from jobs import service

    try:
        service.delete_run(db, run_id, None)
    except service.StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {run_id} deleted, with its metrics and files")
    return 0


# --- cancel ---------------------------------------------------------------------------------


def add_cancel(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", type=int)


def cmd_cancel(args: argparse.Namespace) -> int:
    from jobs import service

    try:
        status = service.cancel_run(service.connect(), args.run_id, None)
    except service.StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if status == "running":
        print(f"run {args.run_id}: stopping (it saves a checkpoint first)")
    else:
        print(f"run {args.run_id}: {status}")
    return 0


def add_train(p: argparse.ArgumentParser) -> None:
    from engine.console import add_train_args  # the engine owns this command's options

    add_train_args(p)


def cmd_train(args: argparse.Namespace) -> int:
    from engine.console import cmd_train

    return cmd_train(args)


# --- resume -------------------------------------------------------------------------------------


def add_resume(p: argparse.ArgumentParser) -> None:
    from engine.config import add_set_option

    p.add_argument("run_id", type=int)
    add_set_option(p, "train.epochs=N to change the run's length (also train.early_stop_patience)")
    p.add_argument("--wait", action="store_true", help="wait until the run is over")


def cmd_resume(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        point = service.resume_point(db, args.run_id)
        res = service.resume_run(db, args.run_id, None, overrides=args.overrides)
    except (service.ConfigError, service.StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {res.run_id} queued again; it {point.reason.split(' ', 2)[2]}")
    if not res.sent:
        print(f"warning: {res.note}", file=sys.stderr)
    return _wait(res.run_id) if args.wait else 0
