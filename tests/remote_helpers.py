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
        self.relayed: list[int] = []  # answer bytes per connection
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
            self.relayed.append(0)
            threading.Thread(
                target=self._pipe, args=(client, limit, self.connections - 1), daemon=True
            ).start()

    def _pipe(self, client: socket.socket, limit: int | None, index: int) -> None:
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
                self.relayed[index] = sent
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()


# --- a worker that shares nothing with the server but the network ---------------------------


def can_isolate() -> str | None:
    """Why this machine cannot run a worker as another user in its own network namespace
    (None when it can): root, ``ip``, ``unshare`` and ``runuser`` are needed."""
    import shutil

    if os.geteuid() != 0:
        return "needs root (ip netns, runuser)"
    for tool in ("ip", "unshare", "runuser", "redis-server"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


class Netns:
    """A network namespace joined to this host by one veth pair: inside it, the worker reaches
    only ``host_ip`` (where the test's own Redis and the server listen), not the host's
    loopback services."""

    def __init__(self) -> None:
        import random

        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.name = f"tbr{tag}"
        self.veth = f"tbr{tag}a"
        net = random.randrange(1, 250)
        self.host_ip, self.ns_ip = f"10.213.{net}.1", f"10.213.{net}.2"
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
        run("ip", "netns", "add", self.name)
        try:
            run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", f"tbr{tag}b")
            run("ip", "link", "set", f"tbr{tag}b", "netns", self.name)
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.veth)
            run("ip", "link", "set", self.veth, "up")
            inside = ("ip", "netns", "exec", self.name)
            run(*inside, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", f"tbr{tag}b")
            run(*inside, "ip", "link", "set", f"tbr{tag}b", "up")
            run(*inside, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        with contextlib.suppress(OSError):  # isolated_command's mount point, empty out here
            os.rmdir(self.stash)

    @property
    def stash(self) -> str:
        return f"/tmp/.tb-{self.name}-py"


def isolated_command(netns: Netns, user: str, env: dict[str, str], argv: list[str]) -> list[str]:
    """``argv`` as ``user`` inside ``netns``, with exactly ``env``. When this interpreter lives
    under a home directory the user may not enter (/root here), a private mount namespace
    shows the user that interpreter's folder and nothing else of that home."""
    import shlex

    base = Path(sys.base_prefix).resolve()
    mounts = ""
    if str(base).startswith("/root/"):
        top = Path("/root") / base.relative_to("/root").parts[0]
        stash = netns.stash
        mounts = (
            f"mkdir -p {stash} && mount --make-rprivate / && mount --bind {top} {stash} && "
            f"mount -t tmpfs -o mode=755,size=1m tmpfs /root && mkdir -p {top} && "
            f"mount --bind {stash} {top} && "
        )
    envs = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    script = (
        f"{mounts}cd {shlex.quote(str(ROOT))} && exec runuser -u {user} -- env -i {envs} "
        + " ".join(shlex.quote(a) for a in argv)
    )
    return ["ip", "netns", "exec", netns.name, "unshare", "-m", "sh", "-c", script]
