"""What a small run imports and when (issue 20, §7), checked without a stopwatch.

Each check runs in a fresh interpreter, since the test process has long imported everything.
bench/small_run.py prints the seconds; these tests hold the causes it found: the engine
imports neither torch._dynamo nor the baselines' scikit-learn on its own, the standby runner's
``warm_up`` leaves nothing for its run to import, and ``trainboard train`` freezes the heap
before it exits (the interpreter's last collections then skip it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# Never at import: a run's optimizer skips torch.compile's guards, which would import
# torch._dynamo (engine/optim.py); the split is numpy's (engine/data/prepare.py) and the
# baselines' scikit-learn loads in their child process or when a run ends (engine/baselines.py);
# the T10 gradient check no longer goes through torch.autograd.grad's sympy (engine/doctor.py).
LATE = ("torch._dynamo", "sklearn", "scipy", "sympy")
# Libraries no run should have to import once its process is warm.
HEAVY = ("torch._dynamo", "torch._inductor", "sklearn", "scipy", "sympy", "threadpoolctl")


def _python(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter at the repo root; it prints one JSON line last."""
    env = os.environ.copy()
    env["TRAINBOARD_HOME"] = str(tmp_path / "home")
    env.pop("TRAINBOARD_BROKER_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    df["kind"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("module", ["engine.api", "engine.train", "engine.console", "jobs.cli"])
def test_importing_the_engine_loads_neither_torch_dynamo_nor_the_baselines(module, tmp_path):
    got = _python(
        f"""
        import json, sys
        import {module}
        print(json.dumps(sorted(m for m in {LATE!r} if m in sys.modules)))
        """,
        tmp_path,
    )
    assert got == []


def test_warm_up_leaves_nothing_heavy_for_the_run_to_import(table, tmp_path):
    # The queue's standby runner calls warm_up before its run arrives: the run, baselines
    # included, must then import none of the libraries that cost seconds.
    got = _python(
        f"""
        import json, sys
        from engine.api import run_training, warm_up
        from engine.config import resolve_config
        from engine.sink import MemorySink

        warm_up()
        before = set(sys.modules)
        cfg = resolve_config("auto", dataset={str(table)!r}, overrides={{"train.epochs": 2}})
        result = run_training(cfg, sink=MemorySink())
        new = sorted(m for m in set(sys.modules) - before if m.startswith({HEAVY!r}))
        print(json.dumps({{"baselines": sorted(result.summary["baselines"]), "new": new}}))
        """,
        tmp_path,
    )
    assert got == {"baselines": ["gbm", "linear"], "new": []}


def test_cli_train_freezes_the_heap_before_the_process_exits(table, tmp_path):
    got = _python(
        f"""
        import gc, json
        from jobs.cli import main

        rc = main(["train", "--dataset", {str(table)!r}, "--set", "train.epochs=2",
                   "--out", {str(tmp_path / "out")!r}])
        print(json.dumps({{"rc": rc, "frozen": gc.get_freeze_count(), "left": len(gc.get_objects())}}))
        """,
        tmp_path,
    )
    # Frozen at the end, not only before the run: what the run loaded (the baselines'
    # scikit-learn) is frozen too, only a few objects are left.
    assert got["rc"] == 0 and got["left"] < got["frozen"] / 20, got
    assert (tmp_path / "out" / "model.pt").exists() and (tmp_path / "out" / "summary.json").exists()


def test_building_the_cli_parser_imports_neither_torch_nor_scikit_learn(tmp_path):
    got = _python(
        """
        import json, sys
        from jobs.cli import build_parser

        build_parser()
        print(json.dumps(sorted(m for m in ("torch", "sklearn") if m in sys.modules)))
        """,
        tmp_path,
    )
    assert got == []
