"""The ``trainboard`` command.

One function per subcommand, each registered in :data:`COMMANDS` with a small function that
adds its arguments; to add a command, write both in the module of its kind and append them to
the list. Commands reach Trainboard through ``jobs.service``, as the pages do, and import it
when they run, so ``--help`` and ``train`` stay fast:

- ``up.py``: ``up`` (the process supervisor) and ``worker``;
- ``runs.py``: ``submit``, ``runs``, ``cancel``, ``resume``, ``train``;
- ``admin.py``: ``user``, ``datasets`` and ``token``;
- ``ab.py``: ``ab`` (an A/B group over paired seeds);
- ``lr_find.py``: ``lr-find`` (the LR range test, queued).
- ``sweeps.py``: ``sweep`` and ``sweeps`` (Optuna sweeps with ASHA through the queue).
- ``predict.py``: ``predict`` and ``export`` (a run's bundle, issue 21).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from jobs.cli import ab, admin, lr_find, predict, runs, sweeps, up

# --- wiring ---------------------------------------------------------------------------------

Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]
COMMANDS: list[Command] = [
    ("up", "start the dashboard, worker(s) and the embedded broker", up.add_up, up.cmd_up),
    ("worker", "run a worker for one device", up.add_worker, up.cmd_worker),
    ("submit", "queue a training run", runs.add_submit, runs.cmd_submit),
    ("runs", "list runs (runs delete ID: delete one that is over)", runs.add_runs, runs.cmd_runs),
    ("cancel", "cancel a queued or running run", runs.add_cancel, runs.cmd_cancel),
    (
        "train",
        "train in this process, without the queue (progress bar + summary)",
        runs.add_train,
        runs.cmd_train,
    ),
    ("user", "team mode accounts: add, list, remove, passwd", admin.add_user, admin.cmd_user),
    ("datasets", "datasets: list, add FILE, remove ID", admin.add_datasets, admin.cmd_datasets),
    (
        "token",
        "worker tokens for hosts without a shared disk: create, list, revoke",
        admin.add_token,
        admin.cmd_token,
    ),
    (
        "resume",
        "resume a failed, cancelled or lost run from its checkpoint",
        runs.add_resume,
        runs.cmd_resume,
    ),
    (
        "ab",
        "A/B over paired seeds: each seed as is (A) and with --tip off or --set (B)",
        ab.add_ab,
        ab.cmd_ab,
    ),
    (
        "lr-find",
        "queue the LR range test for a preset on a dataset and print its suggestion",
        lr_find.add_lr_find,
        lr_find.cmd_lr_find,
    ),
    (
        "predict",
        "predict a CSV/xlsx file with a finished run's bundle (RUN: id, run or bundle folder)",
        predict.add_predict,
        predict.cmd_predict,
    ),
    ("export", "export a run's model: --format onnx", predict.add_export, predict.cmd_export),
    (
        "sweep",
        "a hyperparameter sweep through the queue (Optuna, ASHA pausing and resuming trials)",
        sweeps.add_sweep,
        sweeps.cmd_sweep,
    ),
    (
        "sweeps",
        "list sweeps; sweeps ID shows one (--pause, --resume, --cancel)",
        sweeps.add_sweeps,
        sweeps.cmd_sweeps,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_, add_args, fn in COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    warm = _prewarm_baselines(argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    finally:
        if warm:
            from engine.baselines import release_prewarmed

            release_prewarmed()  # a child the run did not claim (baselines off, not a table)


def _prewarm_baselines(argv: list[str]) -> bool:
    """``train`` starts the scikit-learn baselines' child first thing, so its import runs on an
    idle core while this process imports torch (engine.baselines.prewarm; issue 20, §7).
    Skipped for --help and when the command line turns the baselines off."""
    if argv[:1] != ["train"] or {"-h", "--help"} & set(argv):
        return False
    off = {f"train.baselines={v}" for v in ("false", "False", "0", "no", "off")}
    if off & set(argv):
        return False
    from engine.baselines import prewarm  # numpy only; the run imports it anyway

    return prewarm()


if __name__ == "__main__":
    sys.exit(main())
