"""Every benchmark in bench/ runs end to end in its ``--quick`` mode and prints its figures.

A smoke test, not a performance test: each script takes its real code paths at tiny sizes and
must exit 0 and print the table (or line) that compares it with the baseline it measures in the
same invocation. What is checked is the shape of that output, never a timing or a PASS/MISS.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # a smoke test: generous, so a busy machine does not fail it

NUM = r"\d[\d,]*(?:\.\d+)?"  # a printed figure: 12, 1,234, 0.93

# Per script: patterns its --quick output must contain (one per printed comparison).
EXPECTED: dict[str, list[str]] = {
    "beginner": [
        r"\d+ actions \(clicks and one file choice\), 0 keystrokes",
        r"page path: " + NUM + r" s from the first page to the finished run",
        r"test score on Run detail: ",
    ],
    "engine": [
        r"best plain samples/s .* engine samples/s\s+ratio",
        r"MLP 64-256-256-10, .* " + NUM + r"\s+(PASS|MISS)",
        r"LSTM h64, .* " + NUM + r"\s+(PASS|MISS)",
        r"default policy\s+one alone .* two together .* =\s*" + NUM + r"× one",
        r"K=10 stacked .* =\s*" + NUM + r"× one member",
        r"stacked is\s+" + NUM + r"× faster than sequential",
    ],
    "lr_find": [
        r"breast-cancer \(sutskever: sgd, batch \d+, preset LR " + NUM,
        r"\s+LR\s+val loss\s+test acc\s+diverged",
        r"preset LR " + NUM + r" / best " + NUM + r" = " + NUM + "×",
        r"(suggestion " + NUM + r" / best " + NUM + r" = " + NUM + r"×|suggestion: none)",
        r"\d+/\d+ datasets: suggestion within ×3 of the best grid LR",
    ],
    "predict": [
        r"import torch \(the floor\)\s+" + NUM + r"\s+0\.00",
        r"predict\.py \(stdlib \+ torch\)\s+" + NUM + r"\s+-?" + NUM,
        r"baseline: pandas \+ model\.ts\s+" + NUM + r"\s+-?" + NUM,
        r"predict\.py vs baseline: " + NUM + r"x in all",
        # the bundle's correctness beside the timing: the same classes as pandas + model.ts
        r"same predictions: 2,000 of 2,000 rows",
    ],
    "quality": [
        r"net\s+s\s+linear\s+gbm\s+best\s+gap\s+target",
        r"iris\s+acc\s+\d+/\d+/\d+ .* ≥ best−0\.01: (PASS|MISS)",
        r"barley\s+rmse\s+\d+/\d+/\d+ .* ≤ best×1\.02: (PASS|MISS)",
        r"balanced accuracy: net " + NUM + r", linear " + NUM + r", gbm " + NUM,
        r"\d+/\d+ datasets within the margin of the better baseline; \d+/\d+ ahead of it",
    ],
    "queue": [
        r"embedded\s+" + NUM + r"s\s+" + NUM + r"s",
        # none lost, none run twice: the bench's own correctness check, not a timing
        r"(\d+)/\1 finished in " + NUM + r" s on \d+ workers, 0 re-run, 0 started twice",
        r"embedded\s+submit → running " + NUM + r" s .* submit → finished " + NUM + r" s",
    ],
    "remote": [
        r"local: MetricWriter → SQLite\s+" + NUM + r"\s+1\.00×",
        r"remote: spool → HTTP → ingest → SQLite\s+" + NUM + r"\s+" + NUM + "×",
        r"remote/local = " + NUM + r"× \(goal ≥ 0\.5× and ≥ 200,000 points/s\): (PASS|MISS)",
        r"outage of " + NUM + r" s: " + NUM + r" points spooled, drained in " + NUM + r" s",
        r"remote worker submit → running: (median " + NUM + r" s|skipped)",
    ],
    "small_run": [
        r"import torch \(the floor\)\s+" + NUM + r"\s+0\.00\s+1\.00×",
        r"trainboard train, wine \(178 rows\)\s+" + NUM + r"\s+-?" + NUM + r"\s+" + NUM + "×",
        r"torch\._dynamo \(train\.compile only\)\s+" + NUM,
        r"scikit-learn \(the baselines\)\s+" + NUM + "  a child beside training, or at the end",
        r"sympy \(torch's gradcheck, gone\)\s+" + NUM + "  not imported by a run",
        # the split of the run's seconds, so a change to the preset's epochs shows
        r"where the seconds go: trainboard train, wine \(178 rows\), 2 epochs",
        *(
            rf"\n  {phase}\s+{NUM}  "
            for phase in ("start-up", "set-up", "training", "scoring", "bundle")
        ),
        r"warm process \(the queue's standby runner\): " + NUM + r" s from the run's arrival",
        r"without the baselines: -?" + NUM + r" s beyond import torch",
        r"small run beyond import torch: -?" + NUM + r" s \(target ≤ 1\.5 s\): (PASS|MISS)",
    ],
    "store": [
        r"ingest vs raw executemany \(ratio\)\s+" + NUM,
        r"chart speed-up vs naive full read \(x\)\s+" + NUM,
        r"reader call p99 latency, 4 writers \(ms\)\s+" + NUM,
        r"'database is locked' in reader",
    ],
    "threads": [
        r"total vs one alone",
        r"one run alone, thread policy \(default\)\s+" + NUM + r"\s+1\.00×",
        r"two runs at once, thread policy \(default\)\s+"
        + NUM
        + r" \+ "
        + NUM
        + r"\s+"
        + NUM
        + "×",
    ],
    "ui": [
        r"chart data\s+\(store read\)\s+live refresh\s+chart spec",
        r"within 3× of the small run: " + NUM + r"×",
    ],
    "upload_check": [
        r"now s\s+baseline s\s+ratio\s+answer",
        r"accepted \(wine\.csv\)\s+" + NUM + r"\s+" + NUM + r"\s+" + NUM + r"\s+report",
        r"refused by the loader \(constant_target\.csv\)\s+" + NUM + r"\s+—\s+—\s+error",
        r"refused from metadata \(nested_struct\.parquet\)\s+" + NUM + r"\s+—\s+—\s+error",
    ],
}

SCRIPTS = [
    pytest.param(name, marks=pytest.mark.browser) if name == "beginner" else name
    for name in sorted(p.stem for p in (ROOT / "bench").glob("*.py"))
]


def test_every_bench_script_is_covered():
    assert {p.stem for p in (ROOT / "bench").glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_quick(name: str, tmp_path: Path) -> None:
    env = os.environ.copy()
    env.pop("TRAINBOARD_BROKER_URL", None)
    env["TRAINBOARD_HOME"] = str(tmp_path / "home")
    # The scripts' scratch folders (tempfile) land here too, and go with the test's tmp_path.
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    proc = subprocess.run(
        [sys.executable, f"bench/{name}.py", "--quick"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    out = proc.stdout
    report = f"bench/{name}.py --quick\n--- stdout\n{out}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report
    assert out.strip(), report
    if name == "beginner" and out.startswith("skipped:"):
        pytest.skip(out.strip())  # no Chromium or Playwright here: the script says so
    for pattern in EXPECTED[name]:
        assert re.search(pattern, out), f"no line matches {pattern!r}\n{report}"
