"""``ab``: an A/B group over paired seeds (issue 23 §2), from the command line.

``trainboard ab --dataset D --tip T2 --seeds 5`` queues each seed twice, as configured (A) and
with tip T2 switched off (B); ``--set KEY=VALUE`` (repeatable) makes B differ in any setting
instead, and ``--both KEY=VALUE`` configures both arms (``--both train.epochs=3``). The runs go
through the queue like any other; Compare shows the group's verdict."""

from __future__ import annotations

import argparse
import sys

from jobs.cli.runs import dataset_for, note_no_worker


def add_ab(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset", default="auto", help="preset name (default auto: fitted to the data)"
    )
    p.add_argument("--dataset", required=True, help="a file path or builtin:NAME")
    p.add_argument("--target", help="target column")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--tip", help="arm B switches this tip off, e.g. T2")
    what.add_argument(
        "--set",
        dest="change",
        action="append",
        metavar="KEY=VALUE",
        help="arm B differs from A in this setting, e.g. --set optim.lr=0.01 (repeatable)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=5,
        help="seeds, each run in both arms (default 5; from train.seed on; at most 10)",
    )
    p.add_argument(
        "--both",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of both arms, e.g. --both train.epochs=3 (repeatable)",
    )
    p.add_argument(
        "--queue",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu: any worker (default); gpu: only GPU workers",
    )


def cmd_ab(args: argparse.Namespace) -> int:
    from engine.config import parse_override
    from jobs import service

    db = service.connect()
    try:
        change = dict(parse_override(c) for c in args.change) if args.change else None
        dataset_id, info, source, target = dataset_for(db, args.dataset, args.target)
        group = service.submit_ab(
            args.preset,
            source,
            tip=args.tip,
            change=change,
            seeds=args.seeds,
            target=target,
            overrides=args.overrides,
            queue=args.queue,
            dataset_id=dataset_id,
            info=info,
        )
    except (service.ConfigError, service.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"A/B group {group.group_id} queued: {len(group.pairs)} seeds x 2 arms")
    for seed, a, b in group.pairs:
        print(f"  seed {seed}: A run {a}, B run {b}")
    note_no_worker(db, args.queue, "the runs wait")
    print("the verdict: the Compare page, A/B group " + group.group_id)
    return 0
