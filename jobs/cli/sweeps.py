"""``sweep`` and ``sweeps``: hyperparameter sweeps through the queue (issue 23 §3).

``trainboard sweep --dataset D --preset P --space 'optim.lr=log:1e-4:1' --space
'model.dropout=0:0.5' --trials N`` creates a sweep: Optuna asks, the trials run on the workers
like any run, ASHA pauses the ones behind at each rung. ``trainboard sweeps`` lists them;
``trainboard sweeps ID`` shows one; ``--pause``, ``--resume`` and ``--cancel`` control it."""

from __future__ import annotations

import argparse
import sys

from jobs.cli.runs import dataset_for, note_no_worker


def add_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="auto", help="preset name (default auto)")
    p.add_argument("--dataset", required=True, help="a file path or builtin:NAME")
    p.add_argument("--target", help="target column")
    p.add_argument(
        "--space",
        action="append",
        required=True,
        metavar="FIELD=SPEC",
        help="a dimension: FIELD=LOW:HIGH, FIELD=log:LOW:HIGH, FIELD=int:LOW:HIGH or "
        "FIELD=choice:A,B (repeatable; config fields only)",
    )
    p.add_argument("--trials", type=int, default=20, help="trials to run (default 20)")
    p.add_argument("--parallel", type=int, default=2, help="trials in flight at once (default 2)")
    p.add_argument(
        "--epochs", type=int, help="the top rung: a trial's whole budget (default: the preset's)"
    )
    p.add_argument("--min-epochs", type=int, default=1, help="the first rung (default 1)")
    p.add_argument(
        "--eta", type=int, default=3, help="rungs grow by this factor; the best 1/eta go on"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of every trial, e.g. --set train.batch_size=64 (repeatable)",
    )
    p.add_argument("--name", help="the sweep's name")
    p.add_argument("--queue", default="cpu", choices=("cpu", "gpu"))


def cmd_sweep(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        dataset_id, info, source, target = dataset_for(db, args.dataset, args.target)
        sweep_id = service.submit_sweep(
            args.preset,
            source,
            space=args.space,
            trials=args.trials,
            parallel=args.parallel,
            min_epochs=args.min_epochs,
            eta=args.eta,
            max_epochs=args.epochs,
            target=target,
            overrides=args.overrides,
            queue=args.queue,
            dataset_id=dataset_id,
            info=info,
            name=args.name,
            db=db,
        )
    except (service.ConfigError, service.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = service.sweep_report(db, sweep_id)
    print(
        f"sweep {sweep_id} created: {args.trials} trials, rungs at "
        f"{', '.join(map(str, report['rungs']))} epochs, {args.parallel} at once"
    )
    for t in report["trials"]:
        print(f"  trial {t['trial']}: run {t['run']}")
    note_no_worker(db, args.queue, "the trials wait")
    print(f"follow it: trainboard sweeps {sweep_id}, or the Sweeps page")
    return 0


def add_sweeps(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", nargs="?", type=int, help="show this sweep")
    act = p.add_mutually_exclusive_group()
    for action in ("pause", "resume", "cancel"):
        act.add_argument(f"--{action}", action="store_true", help=f"{action} the sweep")


def cmd_sweeps(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    action = next((a for a in ("pause", "resume", "cancel") if getattr(args, a)), None)
    if args.id is None:
        if action:
            print("error: name the sweep's id", file=sys.stderr)
            return 2
        for s in service.list_sweeps(db):
            print(
                f"{s['id']:>4}  {s['status']:<9}  {s['asked']}/{s['trials']} trials  "
                f"{s['complete']} complete, {s['paused'] + s['pruned']} paused/pruned, "
                f"{s['failed']} failed  {s['name']}"
            )
        return 0
    try:
        if action:
            service.control_sweep(db, args.id, action, None)
        report = service.sweep_report(db, args.id)
    except service.Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sweep = report["sweep"]
    print(f"sweep {sweep['id']} ({sweep['status']}): {sweep['name']}")
    print(f"  space: {'; '.join(report['space'])}; rungs {report['rungs']}")
    metric = sweep["metric"]
    for t in report["trials"]:
        value = "—" if t[metric] is None else f"{t[metric]:.4g}"
        print(f"  trial {t['trial']:>3}  run {t['run']}  {t['state']:<9} {metric} {value}")
    saved = report["saved"]
    print(f"  saved by pruning: {saved['epochs_saved']} epochs, {saved['hours_saved']:.4f} h")
    return 0
