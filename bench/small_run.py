"""A small run's cost beyond `import torch` (issue 20, §7), measured in one invocation.

    .venv/bin/python bench/small_run.py [--quick] [--repeat N] [--compare PATH]

Times, as fresh processes (the way a user runs them), ``python -c "import torch"`` (the floor
nobody can remove) and ``trainboard train`` on scikit-learn's wine table (178 rows, written to a
CSV) from process start to its exit, once with the scikit-learn baselines (the product's
default: the figure that counts) and once without. Prints each median and the excess over
``import torch``, in seconds and as a ratio, and the figure the issue asks for (≤ 1.5 s beyond
``import torch``) as PASS or MISS.

Then where the excess comes from. What the libraries a run needs cost to import, in a fresh
process after ``import torch``: the run's own process (pandas), the baselines' scikit-learn
(engine/baselines.py: in a child process started with the command when a core is idle, which
imports it beside torch's import, else in the run's own process at the end; a busy machine's
figures are the latter), and apart what no run without
``train.compile`` imports any more: torch._dynamo (engine/optim.py) and torch's symbolic shapes
with sympy (torch.autograd.gradcheck's, replaced in engine/doctor.py). And where the run's
seconds go: each phase ends when the run prints the line that closes it (``data:``,
``run_start``, the last ``preflight`` check, the best weights restored, ``run_end``, the model
bundle's check, exit), read from its output as it arrives; a change to the preset's epochs
shows in the training phase and the epoch count beside it. The bundle (issue 21, engine/bundle.py)
is timed as its own phase: it is that work's cost, not this one's. Last, the queue's path: a
process warmed as the standby runner is (``engine.api.warm_up``, then ``gc.freeze``) runs the
same command once the run arrives.

Beside the wall clock, each process's CPU seconds (user + system, its children included): on
a busy machine they move far less than wall time. ``--compare PATH`` also times the same
command in another checkout (e.g. ``git worktree add /tmp/before HEAD~3``), interleaved with
this one, for a before/after in one invocation. A printed figure, never a test assertion: these
machines are noisy. ``--quick`` runs each once with 2 epochs.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue`: swap it for the repo root.
_HERE = ROOT / "bench"
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]
TARGET_S = 1.5
FLOOR = "import torch (the floor)"

PHASES = [
    ("start-up", "interpreter, imports, config, reading the CSV"),
    ("set-up", "split, preprocessing, model, optimizer"),
    ("preflight", "the checks before the first step (T8/T10/T2/T3)"),
    ("training", "every epoch, checkpoints included"),
    ("scoring", "test split, collecting the scikit-learn baselines"),
    ("bundle", "the model bundle and its parity check (issue 21, engine/bundle.py)"),
    ("summary + exit", "summary table, interpreter exit"),
]

# The libraries a run's own process imports beyond torch.
LIBRARIES = [("pandas (reading the table)", "import pandas")]
# The baselines import these in a child process while the net trains when a core is idle,
# else in the run's own process when it ends (engine/baselines.py).
BESIDE = (
    "scikit-learn (the baselines)",
    "import sklearn.ensemble, sklearn.linear_model, sklearn.metrics",
)
# Timed apart, imported by no run without train.compile: torch.compile's, and what
# torch.autograd.gradcheck imported for the T10 check before engine/doctor.py's own.
NOT_IMPORTED = [
    ("torch._dynamo (train.compile only)", "import torch._dynamo"),
    ("sympy (torch's gradcheck, gone)", "import torch.fx.experimental.symbolic_shapes"),
]
_IMPORTS = """
import json, time
import torch
out = {}
for name, code in %r:
    t = time.perf_counter()
    exec(code)
    out[name] = time.perf_counter() - t
print(json.dumps(out))
"""

# The standby runner's warm-up (jobs/queue/runner.py), then the command once a line arrives.
_WARM = """
import gc, sys
from engine.api import warm_up
warm_up()
gc.collect()
gc.freeze()
from jobs.cli import main
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def _timed_run(
    cmd: list[str], cwd: Path, *, warm: bool = False
) -> tuple[float, list[tuple[float, str]]]:
    """Wall time of one process (``warm``: from the line that hands it its run), and each line
    of its output with when it arrived."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        stdin=subprocess.PIPE if warm else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    if warm:
        assert proc.stdin is not None
        ready = proc.stdout.readline()
        if ready.strip() != "ready":
            sys.exit(f"the warm process did not start: {ready}{proc.stdout.read()[-2000:]}")
        t0 = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.close()
    lines = [(time.perf_counter() - t0, line.strip()) for line in proc.stdout]
    proc.wait(timeout=600)
    total = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(text for _, text in lines[-40:])
        sys.exit(f"failed: {' '.join(cmd)}\n{tail}")
    return total, lines


def _children_cpu() -> float:
    """User + system seconds of every finished child process so far (theirs included). On a
    busy machine a steadier reading than the wall clock: it leaves out the time a process
    waited for a core, not the work it did. A run's baselines child counts in its run."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _durations(total: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    """Each phase's own seconds. A phase ends at the line that closes it: ``data:``, then
    ``run_start``, then the last ``preflight`` check after it, then the first of the best
    weights restored / the test score / ``run_end``, then ``run_end``, then the bundle's line
    (none: 0 s); the last ends at exit."""

    def first(after: float, *words: str) -> float:
        return next((t for t, s in lines if t >= after and s.startswith(words)), after)

    data = first(0.0, "data:")
    start = first(data, "run_start")
    checks = max([start] + [t for t, s in lines if t >= start and s.startswith("preflight")])
    trained = first(checks, "best_restored", "test_score", "run_end")
    scored = first(trained, "run_end")
    bundled = first(scored, "bundle")
    ends = [data, start, checks, trained, scored, bundled, total]
    return {
        name: end - begin for (name, _), begin, end in zip(PHASES, [0.0, *ends], ends, strict=False)
    }


def _epochs(out: str) -> str:
    m = re.search(r"finished after (\d+) epochs", out)
    k = re.search(r"×(\d+) members", out)
    return (m.group(1) if m else "?") + (f" epochs × {k.group(1)} members" if k else " epochs")


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", type=Path, default=None, help="another checkout to time too")
    args = ap.parse_args()
    repeat = 1 if args.quick else args.repeat
    from sklearn.datasets import load_wine

    trees = [("", ROOT)] + ([(" (compare)", args.compare.resolve())] if args.compare else [])
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        csv = Path(d) / "wine.csv"
        load_wine(as_frame=True).frame.to_csv(csv, index=False)
        argv = ["train", "--dataset", str(csv)] + (
            ["--set", "train.epochs=2"] if args.quick else []
        )
        # (label, command without --out, checkout, warm process)
        cases = [(FLOOR, [py, "-c", "import torch"], ROOT, False)]
        cases += [
            (f"trainboard train, wine (178 rows){t}", [py, "-m", "jobs.cli", *argv], tree, False)
            for t, tree in trees
        ]
        cases += [
            (
                f"… without baselines{t}",
                [py, "-m", "jobs.cli", *argv, "--set", "train.baselines=false"],
                tree,
                False,
            )
            for t, tree in trees
        ]
        warm = "warm process (the queue's standby runner)"
        cases.append((warm, [py, "-c", _WARM, *argv], ROOT, True))
        times: dict[str, list[float]] = {c[0]: [] for c in cases}
        cpu: dict[str, list[float]] = {c[0]: [] for c in cases}
        phases: dict[str, list[dict[str, float]]] = {c[0]: [] for c in cases[1:]}
        outs: dict[str, str] = {}
        imports: list[dict[str, float]] = []
        for i in range(repeat):  # interleaved, so a slow spell of the machine hits every case
            for j, (label, cmd, tree, is_warm) in enumerate(cases):
                out = [] if label == FLOOR else ["--out", str(Path(d) / f"out{i}-{j}")]
                before = _children_cpu()
                total, lines = _timed_run([*cmd, *out], tree, warm=is_warm)
                times[label].append(total)
                cpu[label].append(_children_cpu() - before)
                if label != FLOOR:
                    phases[label].append(_durations(total, lines))
                    outs[label] = "\n".join(text for _, text in lines)
            for libs in (LIBRARIES, [BESIDE], *([n] for n in NOT_IMPORTED)):  # fresh processes
                text = _timed_run([py, "-c", _IMPORTS % (libs,)], ROOT)[1][-1][1]
                imports.append(json.loads(text))
    med = {label: statistics.median(ts) for label, ts in times.items()}
    floor = med[FLOOR]
    cpu_med = {label: statistics.median(ts) for label, ts in cpu.items()}
    cpu_floor = cpu_med[FLOOR]
    print(f"{'':44} {'median s':>9} {'beyond torch s':>15} {'ratio to torch':>15}", end="")
    print(f" {'CPU s':>7} {'CPU beyond':>11}")
    for label, t in med.items():
        if label != warm:
            print(f"{label:44} {t:9.2f} {t - floor:15.2f} {t / floor:14.2f}×", end="")
            print(f" {cpu_med[label]:7.2f} {cpu_med[label] - cpu_floor:11.2f}")

    def imported(name: str) -> float:
        return statistics.median(r[name] for r in imports if name in r)

    print("\nlibraries beyond torch (each in a fresh process after import torch, median s):")
    for name, _ in LIBRARIES:
        print(f"  {name:36} {imported(name):5.2f}  the run's own process")
    print(f"  {BESIDE[0]:36} {imported(BESIDE[0]):5.2f}  a child beside training, or at the end")
    for name, _ in NOT_IMPORTED:
        print(f"  {name:36} {imported(name):5.2f}  not imported by a run")
    for label, rows in phases.items():
        print(f"\nwhere the seconds go: {label}, {_epochs(outs[label])} (median s)")
        for name, what in PHASES:
            print(f"  {name:16} {_median(rows, name):6.2f}  {what}")
    print(f"\nwarm process (the queue's standby runner): {med[warm]:.2f} s from the run's arrival")
    beyond = med[cases[1][0]] - floor
    bare = med[f"… without baselines{trees[0][0]}"] - floor
    verdict = "PASS" if beyond <= TARGET_S else "MISS"
    print(f"without the baselines: {bare:.2f} s beyond import torch")
    print(f"small run beyond import torch: {beyond:.2f} s (target ≤ {TARGET_S} s): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
