"""Real processes for the remote-worker tests: the ingest server, and a proxy that cuts."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.queue_helpers import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]


class Ingest:
    """``python -m jobs.remote.server`` on a port, against the data directory ``home``; it can be
    stopped and started again on the same port (a server outage)."""

    def __init__(
        self,
        home: Path,
        log: Path,
        env: dict[str, str] | None = None,
        *,
        address="127.0.0.1",
        port: int | None = None,
        reaper: bool = False,
    ) -> None:
        self.home, self.log_path, self.address = home, log, address
        self.port = port or free_port()
        self.env = {**os.environ, "TRAINBOARD_HOME": str(home), **(env or {})}
        self.reaper = reaper
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "jobs.remote.server",
            "--port",
            str(self.port),
            "--address",
            self.address,
        ]
        if not self.reaper:
            cmd.append("--no-reaper")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        wait_http(f"{self.url}/api/worker/health", 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class CuttingProxy:
    """A TCP proxy to ``port`` that closes its first connection after ``cut_after`` bytes of the
    answer (a network cut mid-download); later connections pass whole."""

    def __init__(self, port: int, cut_after: int) -> None:
        self.target, self.cut_after = port, cut_after
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.cut = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, limit), daemon=True).start()

    def _pipe(self, client: socket.socket, limit: int | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def up():
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    upstream.sendall(data)

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if limit is not None and sent + len(data) > limit:
                    client.sendall(data[: limit - sent])
                    self.cut = True
                    break
                client.sendall(data)
                sent += len(data)
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()
