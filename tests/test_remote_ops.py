"""Operations for workers on other hosts: compose.worker.yaml joins a GPU host with three
variables (checked by a real compose implementation, as tests/test_queue_compose.py does), and
``trainboard runs export`` writes any run's points as spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_queue_compose import _compose_cmd

ROOT = Path(__file__).resolve().parent.parent
THREE = {
    "TRAINBOARD_SERVER": "https://tb.example.com",
    "TRAINBOARD_WORKER_TOKEN": "tbw_example",
    "TRAINBOARD_BROKER_URL": "redis://:pw@tb.example.com:6379/0",
}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    return subprocess.run(
        [*_compose_cmd(), "-f", str(ROOT / "compose.worker.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **env},
    )


def test_compose_worker_joins_with_three_variables_and_names_each_missing_one():
    out = _config(THREE)
    assert out.returncode == 0, out.stderr
    for value in THREE.values():
        assert value in out.stdout
    assert "worker-data" in out.stdout and "/data" in out.stdout
    for missing in THREE:
        out = _config({k: v for k, v in THREE.items() if k != missing})
        assert out.returncode != 0 and missing in out.stderr, (missing, out.stderr)


def test_runs_export_writes_every_point_spreadsheet_safe(tmp_path):
    from jobs.store import registry
    from jobs.store.db import connect
    from jobs.store.writer import MetricWriter

    env = {**os.environ, "TRAINBOARD_HOME": str(tmp_path)}
    os.environ["TRAINBOARD_HOME"] = str(tmp_path)
    try:
        db = connect()
        run_id = registry.create_run(db, spec={}, preset="t", name="r")
        with MetricWriter(tmp_path / "trainboard.db", run_id) as w:
            for step in range(5):
                w.log(step, {"loss": 1.0 / (step + 1), '=HYPERLINK("x")': 1.0, "@sum": 2.0})
    finally:
        del os.environ["TRAINBOARD_HOME"]
    out = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", str(run_id)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["key", "step", "value"] and len(rows) == 1 + 15
    keys = {r[0] for r in rows[1:]}
    assert keys == {'\'=HYPERLINK("x")', "'@sum", "loss"}
    assert [int(r[1]) for r in rows[1:] if r[0] == "loss"] == list(range(5))
    target = tmp_path / "out.csv"
    subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", str(run_id), "-o", str(target)],
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
        capture_output=True,
    )
    assert target.read_text() == out
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", "999"],
        env=env,
        cwd=ROOT,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "999" in missing.stderr


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
