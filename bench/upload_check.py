"""How long the upload check takes: a file accepted, a file refused by the loader, a hostile file
refused from its metadata, each checked in its own child process as an upload is.

    .venv/bin/python bench/upload_check.py [--repeat 3] [--quick]

The baseline, run in the same invocation on the accepted file: the same child with torch and
scikit-learn imported first, which is what building the dataset report pulled in (through
``engine.data.prepare``) before the torch-free rules moved to ``engine.data.rules``. A refused
file never reached the report, so it has no baseline: its time is printed alone. It prints the
median wall time (seconds) and, for the accepted file, the ratio now / baseline. ``--quick``
(a smoke run) checks each file once instead of ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_HERE = ROOT / "bench"
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from jobs.datasets.check import CheckLimits  # noqa: E402
from jobs.datasets.ingest import _CHILD_ENV  # noqa: E402

BASELINE = (
    "import torch, sklearn.model_selection, runpy; "
    "runpy.run_module('jobs.datasets.check', run_name='__main__')"
)


def files(folder: Path) -> dict[str, Path]:
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(folder / "wine.csv", index=False)
    corpus = ROOT / "tests" / "uploads" / "corpus"
    return {
        "accepted (wine.csv)": folder / "wine.csv",
        "refused by the loader (constant_target.csv)": corpus / "constant_target.csv",
        "refused from metadata (nested_struct.parquet)": corpus / "nested_struct.parquet",
    }


def check_once(path: Path, baseline: bool) -> tuple[float, str]:
    import os

    job = {
        "path": str(path),
        "filename": path.name,
        "target": None,
        "limits": CheckLimits.from_env().to_dict(),
    }
    cmd = (
        [sys.executable, "-c", BASELINE]
        if baseline
        else [sys.executable, "-m", "jobs.datasets.check"]
    )
    t = time.perf_counter()
    proc = subprocess.run(
        cmd,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **_CHILD_ENV},
        timeout=600,
    )
    wall = time.perf_counter() - t
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, "report" if "report" in answer else "error"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=None, help="default 3, or 1 with --quick")
    p.add_argument("--quick", action="store_true", help="each file checked once, for a smoke run")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'file':48} {'now s':>7} {'baseline s':>11} {'ratio':>6}  answer")
        for label, path in files(Path(tmp)).items():
            with_baseline = label.startswith("accepted")
            now, base, answers = [], [], set()
            for _ in range(args.repeat):  # interleaved, so drift hits both sides alike
                w, a = check_once(path, baseline=False)
                now.append(w)
                answers.add(a)
                if with_baseline:
                    w, a = check_once(path, baseline=True)
                    base.append(w)
                    answers.add(a)
            n = statistics.median(now)
            if with_baseline:
                b = statistics.median(base)
                print(f"{label:48} {n:7.2f} {b:11.2f} {n / b:6.2f}  {'/'.join(sorted(answers))}")
            else:
                print(f"{label:48} {n:7.2f} {'—':>11} {'—':>6}  {'/'.join(sorted(answers))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
