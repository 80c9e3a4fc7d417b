"""The ``trainboard`` queue commands as a user runs them: up, submit, runs, cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import FAST_ENV, free_port, wait_for


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, **FAST_ENV, "TRAINBOARD_HOME": str(home)}
    env.pop("TRAINBOARD_BROKER_URL", None)
    env.pop("TRAINBOARD_QUEUE_PREFIX", None)
    return env


def _tb(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    for k, v in _env(tmp_path / "home").items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    monkeypatch.delenv("TRAINBOARD_QUEUE_PREFIX", raising=False)
    return tmp_path / "home"


def test_submit_rejects_an_invalid_override_before_queueing_anything(home, capsys):
    code = main(
        ["submit", "--preset", "quick", "--dataset", "builtin:digits", "--set", "optim.lr=-1"]
    )
    assert code == 2
    assert "optim.lr" in capsys.readouterr().err
    assert registry.count_runs(connect()) == 0


@pytest.mark.parametrize("preset", ["auto", "quick"])
@pytest.mark.parametrize(
    ("dataset", "says"),
    [
        ("builtin:wine", "unknown built-in dataset 'wine'. Available: builtin:digits"),
        ("no/such/table.csv", "no/such/table.csv: file not found"),
        ("notes.docx", "unsupported file type '.docx'"),
    ],
)
def test_submit_refuses_a_dataset_it_cannot_load_before_queueing_anything(
    home, capsys, preset, dataset, says
):
    """A typo'd builtin or path used to be queued and then fail on the worker."""
    assert main(["submit", "--preset", preset, "--dataset", dataset]) == 2
    assert says in capsys.readouterr().err
    assert registry.count_runs(connect()) == 0


def test_submit_without_a_worker_queues_and_cancel_cancels_at_once(home, capsys):
    assert main(["submit", "--preset", "quick", "--dataset", "builtin:digits"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("run 1 queued")
    assert "no live worker takes the cpu queue" in out.err
    assert main(["runs"]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["cancel", "1"]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["cancel", "99"]) == 2
    assert "no run with id 99" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "--preset", "quick"],
        ["ab", "--preset", "quick", "--tip", "T2", "--seeds", "1"],
        ["lr-find", "--preset", "quick", "--no-wait"],
    ],
)
def test_a_file_named_on_the_command_line_is_registered_before_it_is_queued(
    home, tmp_path, capsys, command
):
    """A worker reads only registered datasets (a copy under the data directory, its hash
    checked): every command that queues from --dataset adds the file first, as an upload."""
    table = tmp_path / "points.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{i % 2}\n" for i in range(60)))
    assert main([*command, "--dataset", str(table), "--target", "label"]) == 0
    assert "no live worker takes the cpu queue" in capsys.readouterr().err
    db = connect()
    (ds,) = registry.list_datasets(db)
    assert Path(ds["path"]).is_relative_to(home) and ds["target"] == "label"
    runs = registry.list_runs(db)
    assert runs and all(r["spec"]["data"]["dataset"] == ds["path"] for r in runs)
    assert all(r["dataset_id"] == ds["id"] for r in runs)


def test_up_starts_dashboard_and_worker_runs_a_submission_and_stops_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    env = _env(home)
    port = free_port()
    log_path = tmp_path / "up.log"
    # An upload file left by a dashboard the OOM killer took (issue 12): swept at start.
    (home / "datasets").mkdir(parents=True)
    leftover = home / "datasets" / "tmp-0123456789abcdef.parquet"
    leftover.write_bytes(b"half an upload")
    os.utime(leftover, (1e9, 1e9))
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobs.cli",
                "up",
                "--port",
                str(port),
                "--no-browser",
                "--home",
                str(home),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Ctrl-C" in log_path.read_text(), 60, "trainboard up to start")
        text = log_path.read_text()
        assert "Broker:    embedded" in text and "Workers:   cpu" in text
        if "Dashboard: http://localhost:" in text:
            wait_for(
                lambda: _http_ok(f"http://127.0.0.1:{port}/_stcore/health"),
                90,
                "the dashboard to answer",
            )
        out = _tb(
            env,
            "submit",
            "--preset",
            "quick",
            "--dataset",
            "builtin:digits",
            "--set",
            "train.epochs=1",
            "--set",
            "train.preflight=false",
            "--set",
            "train.overfit_one_batch=false",
            "--set",
            "data.max_rows=200",
            "--wait",
            timeout=180,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "run 1: finished" in out.stdout
        assert "finished" in _tb(env, "runs", "--status", "finished").stdout
        # The run process applied the thread policy: a small model, one thread (not torch's one
        # per core, which oversubscribes the cores when slots run side by side).
        run = registry.get_run(connect(home / "trainboard.db"), 1)
        assert run["summary"]["threads"] == 1

        assert not leftover.exists() and "Removed 1 unfinished upload" in log_path.read_text()

        # The dashboard killed as the OOM killer does: `up` restarts it and the worker stays.
        if "Dashboard: http://localhost:" in text:
            dash = _pid_of(b"streamlit", str(port).encode())
            assert dash is not None
            worker_pid = registry.list_workers(connect(home / "trainboard.db"))[0]["pid"]
            os.kill(dash, signal.SIGKILL)
            wait_for(lambda: "dashboard exited with code -9; restarting" in log_path.read_text(),
                     30, "up to restart the dashboard")  # fmt: skip
            wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/_stcore/health"), 90,
                     "the restarted dashboard to answer")  # fmt: skip
            assert up.poll() is None
            os.kill(worker_pid, 0)  # still the same worker process

        up.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        assert up.wait(timeout=90) == 0
        workers = registry.list_workers(connect(home / "trainboard.db"), alive_within_s=None)
        assert [w["status"] for w in workers] == ["stopped"]
    finally:
        if up.poll() is None:
            up.terminate()  # `up` stops its children (each in its own session) before exiting
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
        print(log_path.read_text()[-3000:])


def _pid_of(*words: bytes) -> int | None:
    """A process whose command line holds every one of ``words``."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        if cmd and all(w in cmd for w in words):
            return int(proc.name)
    return None


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_up_exactly_as_the_readme_says_starts_with_no_terminal_and_stays_calm(tmp_path):
    """`trainboard up` with no flags, stdin closed and no screen (a service, CI, nohup): no
    Streamlit e-mail prompt, a page answers, and the terminal shows one block; Streamlit's and
    Celery's own output goes to the log files in the data directory."""
    home = tmp_path / "home"
    env = {k: v for k, v in _env(home).items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["TRAINBOARD_HOME"] = str(home)
    env["HOME"] = str(tmp_path / "user")  # a fresh user: Streamlit has never asked for an e-mail
    port = free_port()
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "up", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/"), 90, "the dashboard's page")
        wait_for(lambda: (home / "logs" / "worker-cpu.log").exists(), 30, "the worker's log")
        assert up.poll() is None, log_path.read_text()
        text = log_path.read_text()
        assert "Email" not in text and "Welcome to Streamlit" not in text
        assert text.count("http://") == 1, text  # one URL, not localhost and 127.0.0.1 both
        for chatter in ("celery@", "[config]", "SecurityWarning", "No hostname was supplied"):
            assert chatter not in text, text
        assert f"Logs:      {home / 'logs'}/" in text
    finally:
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(timeout=90) == 0
        finally:
            if up.poll() is None:
                os.killpg(up.pid, signal.SIGKILL)
