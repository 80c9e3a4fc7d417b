"""Real processes for the queue tests: a Trainboard worker, a private redis-server, waiting."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Short timings so lost workers and lost messages are noticed within seconds.
FAST_ENV = {
    "TRAINBOARD_HEARTBEAT_S": "0.5",
    "TRAINBOARD_STALE_AFTER_S": "3",
    "TRAINBOARD_REAP_INTERVAL_S": "1",
    "TRAINBOARD_RESEND_AFTER_S": "3",
    "TRAINBOARD_CANCEL_POLL_S": "0.2",
    "TRAINBOARD_SEND_TIMEOUT_S": "2",
}

# A few seconds of training on the builtin digits; the pre-flight checks are off to save time.
TINY = {
    "train.preflight": False,
    "train.overfit_one_batch": False,
    "data.max_rows": 400,
    "train.early_stop_patience": 1000,
}


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``cond`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    """Wait until ``url`` answers 200 (a server that is still starting refuses or errors)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def redis_url_from_env() -> str:
    return os.environ.get("TRAINBOARD_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def redis_available(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except redis.RedisError:
        return False


class Worker:
    """``trainboard worker`` in its own process (its runs in their own children)."""

    def __init__(self, env: dict[str, str], log_path: Path, name: str) -> None:
        self.log_path = log_path
        self.name = name
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "worker", "--name", name, "--loglevel", "INFO"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(
            lambda: "ready." in self.log() or self.proc.poll() is not None,
            timeout,
            f"worker {self.name} to start",
        )
        assert self.proc.poll() is None, f"worker exited:\n{self.log()[-3000:]}"

    def sigkill(self) -> None:
        # The whole process group: the worker and the run's process (which would die anyway,
        # through PR_SET_PDEATHSIG, but the test should not depend on timing).
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        if self.proc.poll() is None or _group_alive(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class RedisServer:
    """A private redis-server on a free port, in a temporary directory, that a test may stop
    and start again (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: redis_available(self.url), 15, "the private redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def queue_prefix() -> str:
    return f"tbtest-{uuid.uuid4().hex[:10]}."


@contextlib.contextmanager
def dashboard_server(log_path: Path, env: dict[str, str]):
    """The dashboard alone, as ``trainboard up`` starts it (``jobs.cli.up._dashboard_cmd`` with
    ``_dashboard_env``), on a free port, with ``env`` on top of this process's environment and
    no broker configured. Yields (port, process) once it answers its health check; stops it
    afterwards and prints the tail of its log."""
    from jobs.cli.up import _dashboard_cmd, _dashboard_env

    full = {**os.environ, **_dashboard_env(), **env}
    full.pop("TRAINBOARD_BROKER_URL", None)
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            _dashboard_cmd(port, "127.0.0.1"),
            cwd=root,
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
            yield port, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            print(log_path.read_text()[-3000:])
