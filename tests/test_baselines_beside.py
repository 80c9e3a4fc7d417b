"""A small table's baselines are fitted in a child process beside training (issue 20, §7): the
same numbers as in the run's own process, and no child left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import baselines
from engine.api import prepare_for
from engine.baselines import Baselines, fit_baselines
from engine.config import resolve_config
from engine.data.loaders import load_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> str:
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return str(path)


def _prepared(source: str):
    return prepare_for(resolve_config("auto", dataset=source), load_dataset(source))


def _without_seconds(result: dict) -> dict:
    return {k: {f: v for f, v in row.items() if f != "seconds"} for k, row in result.items()}


@pytest.mark.parametrize("source", ["wine", "builtin:diabetes"])
def test_the_child_gives_the_same_baselines_as_the_runs_own_process(source, wine):
    data = _prepared(wine if source == "wine" else source)
    here = fit_baselines(data, seed=3)
    beside = Baselines(data, seed=3, side=True)
    assert beside.beside
    got = beside.result()
    beside.close()
    assert set(got) == {"linear", "gbm"}
    assert _without_seconds(got) == _without_seconds(here)


def test_a_closed_run_kills_its_child_and_a_dead_child_falls_back_to_this_process(wine):
    data = _prepared(wine)
    cancelled = Baselines(data, seed=0, side=True)
    proc = cancelled._proc
    cancelled.close()
    assert proc is not None and proc.poll() is not None, "close() ends the child"
    assert not cancelled.beside

    killed = Baselines(data, seed=0, side=True)
    assert killed._proc is not None
    killed._proc.kill()
    got = killed.result()  # the child died: fitted here instead, the same numbers
    assert _without_seconds(got) == _without_seconds(fit_baselines(data, seed=0))


def test_large_tables_busy_machines_and_processes_with_scikit_learn_fit_in_their_own_process(
    monkeypatch, wine
):
    data = _prepared(wine)
    assert "sklearn" in sys.modules  # this test process: imported already, so nothing to hide
    monkeypatch.setattr(baselines, "_idle_core", lambda: True)
    assert not Baselines(data, seed=0).beside
    monkeypatch.delitem(sys.modules, "sklearn")
    fresh = Baselines(data, seed=0)
    assert fresh.beside is True
    fresh.close()
    monkeypatch.setattr(baselines, "_idle_core", lambda: False)  # a busy machine
    assert not Baselines(data, seed=0).beside
    monkeypatch.setattr(baselines, "_idle_core", lambda: True)
    monkeypatch.setattr(baselines, "SIDE_MAX_CELLS", 100)
    assert not Baselines(data, seed=0).beside


def test_a_fresh_run_imports_no_scikit_learn_scipy_or_sympy_and_fits_baselines_in_a_child(
    tmp_path, wine
):
    """The process of a small run (the CLI's, a cold runner's) never imports scikit-learn,
    scipy or sympy, and still reports both baselines."""
    code = textwrap.dedent(
        """
        import json, sys
        import engine.baselines
        from engine.api import run_training
        from engine.config import resolve_config
        from engine.sink import MemorySink

        engine.baselines._idle_core = lambda: True  # as on a quiet machine, whatever the load
        cfg = resolve_config("auto", dataset=sys.argv[1], overrides={"train.epochs": 3})
        s = run_training(cfg, sink=MemorySink()).summary
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "scipy", "sympy"))
        print(json.dumps({"baselines": sorted(s["baselines"]), "heavy": heavy}))
        """
    )
    env = os.environ | {"TRAINBOARD_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-c", code, wine],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"baselines": ["gbm", "linear"], "heavy": []}
