"""A bundle's predict.py on many rows (issue 21), against the same bundle driven from pandas.

    .venv/bin/python bench/predict.py [--quick] [--rows N]

Trains wine (178 rows, the ``quick`` preset) into a temporary run folder, which writes its
bundle, repeats the table to N rows (100,000; ``--quick``: 2,000), then times, each in a fresh
process as a user runs it:

- ``import torch``: the floor any torch predictor pays;
- ``python bundle/predict.py rows.csv -o out.csv``: the bundle's own script (standard library
  and torch: the CSV read cell by cell, the schema's checks and flags, model.ts in chunks);
- the baseline: the same model.ts fed from pandas (``read_csv``, columns to tensors, one
  call), with none of predict.py's checks, flags or scoring.

Prints each time, the excess over ``import torch``, and predict.py's time as a ratio of the
baseline's: what reading and checking the file in plain Python costs. Timings are printed,
never asserted (these machines are noisy).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
ROOT = _HERE.parent
# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's queue (which scikit-learn's joblib imports).
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

BASELINE = """
import sys, warnings
warnings.simplefilter("ignore")
import pandas as pd, torch
m = torch.jit.load(sys.argv[1] + "/model.ts")
df = pd.read_csv(sys.argv[2])
inputs = {n: torch.tensor(df[n].to_numpy(dtype="float64")) for n in m.input_names()}
with torch.no_grad():
    probs, cls = m(inputs)
names = m.class_names()
df["prediction"] = [names[i] for i in cls.tolist()]
df.to_csv(sys.argv[3], index=False)
"""


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, timeout=1800)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = 2_000 if args.quick else args.rows
    repeat = 1 if args.quick else args.repeat
    import pandas as pd
    from sklearn.datasets import load_wine

    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    wine = load_wine(as_frame=True).frame
    wine.to_csv(tmp / "wine.csv", index=False)
    run = tmp / "run"
    subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train", "--preset", "quick"]
        + ["--dataset", str(tmp / "wine.csv"), "--out", str(run), "--set", "train.epochs=5"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=600,
    )
    bundle = run / "bundle"
    big = pd.concat([wine] * (rows // len(wine) + 1)).head(rows)
    big.to_csv(tmp / "rows.csv", index=False)
    (tmp / "baseline.py").write_text(BASELINE)
    py = sys.executable
    floor, script, base = [], [], []
    for _ in range(repeat):  # interleaved, so a busy moment hits all three alike
        floor.append(timed([py, "-c", "import torch"]))
        script.append(
            timed([py, str(bundle / "predict.py"), str(tmp / "rows.csv"), "-o", str(tmp / "a.csv")])
        )
        base.append(
            timed(
                [
                    py,
                    str(tmp / "baseline.py"),
                    str(bundle),
                    str(tmp / "rows.csv"),
                    str(tmp / "b.csv"),
                ]
            )
        )
    a = pd.read_csv(tmp / "a.csv")["prediction"].astype(str)
    b = pd.read_csv(tmp / "b.csv")["prediction"].astype(str)
    same = int((a == b).sum())
    f, s, b_ = (statistics.median(x) for x in (floor, script, base))
    size = sum(p.stat().st_size for p in bundle.iterdir())
    print(f"wine bundle ({size / 1024:.0f} KB), {rows:,} rows, median of {repeat} (s):")
    print(f"{'':34}{'seconds':>10}{'beyond torch':>14}")
    print(f"{'import torch (the floor)':34}{f:>10.2f}{0:>14.2f}")
    print(f"{'predict.py (stdlib + torch)':34}{s:>10.2f}{s - f:>14.2f}")
    print(f"{'baseline: pandas + model.ts':34}{b_:>10.2f}{b_ - f:>14.2f}")
    beyond = (
        f"{(s - f) / (b_ - f):.2f}x beyond import torch"
        if s > f and b_ > f
        else "beyond import torch: lost in the noise"
    )
    print(f"predict.py vs baseline: {s / b_:.2f}x in all, {beyond}")
    print(f"same predictions: {same:,} of {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
