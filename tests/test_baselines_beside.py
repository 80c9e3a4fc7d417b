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


def test_the_idle_core_rule_reads_other_processes_runnable_tasks_and_the_load():
    """Two cores: this process on one, the other idle only when no other task is runnable (the
    fewest of the readings, so a parent's moment of waking does not count) and the machine is
    not busy on average."""
    assert baselines._idle([1, 0, 0], 0.9, 2)
    assert baselines._idle([0], 1.6, 2), "a lagging load average under the cores: idle"
    assert not baselines._idle([1, 1, 2], 0.5, 2), "another task runs all the time"
    assert not baselines._idle([0, 0], 2.5, 2), "busy on average"
    assert baselines._idle([2], 3.0, 4)
    assert not baselines._idle([0], 0.0, 1), "one core: none beside this process"
    assert baselines._own_runnable() >= 1, "this thread, reading, is running"


def test_a_machine_with_every_core_busy_has_no_idle_core():
    spin = "import time\nt = time.time()\nwhile time.time() - t < 20: pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        import time

        time.sleep(0.3)
        assert not baselines._idle_core()
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_prewarmed_child_is_claimed_by_the_run_and_one_nobody_claims_is_ended(monkeypatch, wine):
    data = _prepared(wine)
    here = fit_baselines(data, seed=3)
    monkeypatch.setattr(baselines, "_idle_core", lambda: True)
    monkeypatch.delitem(sys.modules, "sklearn")  # as in a fresh `trainboard train`
    assert baselines.prewarm()
    child = baselines._PREWARMED
    run = Baselines(data, seed=3)
    assert run._proc is child and baselines._PREWARMED is None, "the run claims it"
    got = run.result()
    run.close()
    assert _without_seconds(got) == _without_seconds(here)

    assert baselines.prewarm()
    child = baselines._PREWARMED
    baselines.release_prewarmed()  # the run needed no baselines
    assert child.poll() is not None and baselines._PREWARMED is None

    assert baselines.prewarm()
    child = baselines._PREWARMED
    monkeypatch.setattr(baselines, "SIDE_MAX_CELLS", 100)  # a large table: fitted at the end
    late = Baselines(data, seed=3)
    assert not late.beside and late._later is child
    assert _without_seconds(late.result()) == _without_seconds(here)
    late.close()


def test_trainboard_train_starts_the_child_before_it_imports_torch(tmp_path, wine):
    """The CLI's `train` prewarms the child first thing (its scikit-learn import then overlaps
    torch's); with the baselines turned off on the command line it starts none."""
    code = textwrap.dedent(
        """
        import json, sys
        import engine.baselines as b

        b._idle_core = lambda: True  # as on a quiet machine, whatever the load
        spawned, spawn = [], b._spawn
        b._spawn = lambda: spawned.append("torch" in sys.modules) or spawn()
        from jobs.cli import main
        rc = main(sys.argv[1:])
        print(json.dumps({"rc": rc, "spawned": spawned}))
        """
    )
    env = os.environ | {"TRAINBOARD_HOME": str(tmp_path / "home")}
    for extra, spawned in (([], [False]), (["--set", "train.baselines=false"], [])):
        out = tmp_path / f"run{len(extra)}"
        argv = ["train", "--dataset", wine, "--set", "train.epochs=2", "--out", str(out), *extra]
        res = subprocess.run(
            [sys.executable, "-c", code, *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(res.stdout.strip().splitlines()[-1]) == {"rc": 0, "spawned": spawned}
        summary = json.loads((out / "summary.json").read_text())
        assert sorted(summary.get("baselines") or {}) == (["gbm", "linear"] if spawned else [])
