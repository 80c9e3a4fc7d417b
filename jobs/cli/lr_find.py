"""``trainboard lr-find``: queue the LR range test (issue 23, engine/lr_find.py) for a run of a
preset on a dataset, wait for a worker to run it, and print the suggestion or why there is
none."""

from __future__ import annotations

import argparse
import sys
import time

from jobs.cli.runs import dataset_for, note_no_worker


def add_lr_find(p: argparse.ArgumentParser) -> None:
    from engine.config import add_set_option  # the config layer only: no torch

    p.add_argument("--dataset", required=True, help="a file path or builtin:NAME")
    p.add_argument("--preset", default="auto", help="preset name (default auto)")
    p.add_argument("--target", help="target column")
    add_set_option(p, "override a config field of the run tested, e.g. --set optim.name=adam")
    p.add_argument(
        "--queue",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu: any worker (default); gpu: only GPU workers",
    )
    p.add_argument(
        "--no-wait", action="store_true", help="queue the test and return without waiting"
    )
    p.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for the result (3600)"
    )


def cmd_lr_find(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        dataset_id, info, source, target = dataset_for(db, args.dataset, args.target)
        res = service.submit_lr_find(
            args.preset,
            source,
            target=target,
            overrides=args.overrides,
            queue=args.queue,
            dataset_id=dataset_id,
            info=info,
        )
    except service.Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"LR range test queued as run {res.run_id}")
    if not res.sent:
        print(f"warning: {res.note}", file=sys.stderr)
    note_no_worker(db, args.queue, "the test waits")
    if args.no_wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while (run := service.get_run(db, res.run_id))["status"] not in service.TERMINAL:
        if time.monotonic() > deadline:
            print(f"still {run['status']} after {args.timeout:g} s; see run {res.run_id}")
            return 1
        time.sleep(0.5)
    found = service.lr_find_result(run)
    if run["status"] != "finished" or found is None:
        print(f"run {res.run_id}: {run['status']}: {run['error'] or ''}".rstrip(": "))
        return 1
    for rule in ("valley", "steepest", "minimum"):
        if rule in found.rules:
            lo, hi = found.spread[rule]
            print(
                f"  {rule:<9} {found.rules[rule]:.3g}  ({len(found.curves)} orders: {lo:.3g}–{hi:.3g})"
            )
    print(found.message())
    if found.lr is not None:
        print(f"use it: trainboard submit --dataset {args.dataset} --set optim.lr={found.lr:.3g}")
    return 0 if found.lr is not None else 3
