"""`trainboard train` alone and two at once, at torch's default threads and at the thread policy.

    .venv/bin/python bench/threads.py [--epochs 8] [--rows 20000] [--quick]

The table of the threads issue, measured again in one invocation: a 20,000 × 40
``make_classification`` table, the ``sutskever`` preset, every run a real ``trainboard train``
process. "torch default" sets ``TRAINBOARD_THREADS`` to the core count (what torch does on its
own: one intra-op thread per core); "policy" is the default thread policy (engine/threads.py).
The figure is each run's ``samples_per_s`` from its summary.json (training only, not start-up).

``--quick`` is a smoke run (seconds): a 2,000-row table, 1 epoch, and the thread policy's rows
only (every ``trainboard train`` process costs seconds of imports, whatever its size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue`: swap it for the repo root.
_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def table(path: Path, rows: int) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=40, n_informative=10, random_state=0)
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(40)])
    df["target"] = y
    df.to_csv(path, index=False)


def runs(n: int, csv: Path, out: Path, epochs: int, threads: str | None) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "TRAINBOARD_THREADS"}
    if threads:
        env["TRAINBOARD_THREADS"] = threads
    args = f"train --preset sutskever --dataset {csv} --target target --set train.epochs={epochs}"
    args += " --set train.early_stop_patience=null"
    cmd = [sys.executable, "-m", "jobs.cli", *args.split()]
    procs = []
    for i in range(n):
        folder = out / f"{threads or 'policy'}-{n}-{i}"
        procs.append(
            (
                folder,
                subprocess.Popen(
                    [*cmd, "--out", str(folder)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                ),
            )
        )
    speeds = []
    for folder, p in procs:
        if p.wait(timeout=1800) != 0:
            raise RuntimeError(f"trainboard train failed (see {folder})")
        speeds.append(json.loads((folder / "summary.json").read_text())["samples_per_s"])
    return speeds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None, help="default 8, or 1 with --quick")
    ap.add_argument("--rows", type=int, default=None, help="default 20,000, or 2,000 with --quick")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()
    if args.epochs is None:
        args.epochs = 1 if args.quick else 8
    if args.rows is None:
        args.rows = 2_000 if args.quick else 20_000
    cores = len(os.sched_getaffinity(0))
    out = Path(tempfile.mkdtemp(prefix="tb-threads-"))
    csv = out / "table.csv"
    table(csv, args.rows)
    print(f"{args.rows:,} × 40 table, sutskever preset, {args.epochs} epochs, {cores} cores")
    setups = [(f"torch default ({cores} threads)", str(cores)), ("thread policy (default)", None)]
    if args.quick:
        print("(--quick: the torch-default rows are skipped)")
        setups = setups[1:]
    print(f"{'setup':<44} {'samples/s':>22} {'total vs one alone':>20}")
    for label, threads in setups:
        (alone,) = runs(1, csv, out, args.epochs, threads)
        pair = runs(2, csv, out, args.epochs, threads)
        print(f"{'one run alone, ' + label:<44} {alone:>22,.0f} {1.0:>19.2f}×")
        both = " + ".join(f"{s:,.0f}" for s in pair)
        print(f"{'two runs at once, ' + label:<44} {both:>22} {sum(pair) / alone:>19.2f}×")


if __name__ == "__main__":
    main()
