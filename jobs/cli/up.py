"""``trainboard up`` and ``trainboard worker``: the process supervisor that starts the dashboard
and one worker per device (or CPU slot), restarts a crashing dashboard and stops everything in
order, and the worker command it starts."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# The server entry (an st.App wrapping app/main.py with the upload guard, app/server.py)
APP_ENTRY = Path(__file__).resolve().parents[2] / "app" / "server.py"


# --- up -------------------------------------------------------------------------------------


def add_up(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8501, help="dashboard port (default 8501)")
    p.add_argument("--home", help="data directory (default: $TRAINBOARD_HOME or ~/.trainboard)")
    p.add_argument(
        "--no-browser",
        "--headless",
        dest="headless",
        action="store_true",
        help="don't open a browser",
    )
    p.add_argument(
        "--device",
        action="append",
        metavar="cpu|cuda:N",
        help="start a worker for this device (repeatable; default: one per visible "
        "GPU, else one CPU worker)",
    )
    p.add_argument("--no-workers", action="store_true", help="start only the dashboard")
    p.add_argument(
        "--cpu-slots",
        type=int,
        default=None,
        help="CPU worker slots, each running one run at a time (default: one per core, less "
        "the dashboard's share; see docs/operations.md)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per run (default: 1 for small models, else the slot's cores; "
        "also TRAINBOARD_THREADS)",
    )
    p.add_argument(
        "--ingest-port",
        type=int,
        default=int(os.environ.get("TRAINBOARD_INGEST_PORT", "8502")),
        help="port of the ingest that workers on other hosts post to (default 8502; started "
        "when the broker is Redis, since only then can another host take runs)",
    )
    p.add_argument("--no-ingest", action="store_true", help="don't start the ingest")
    p.add_argument(
        "--address",
        default=None,
        help="interface the dashboard listens on (default: 127.0.0.1, or 0.0.0.0 in "
        "team mode, where every page needs a login)",
    )


def cmd_up(args: argparse.Namespace) -> int:
    from jobs import service

    if args.home:
        os.environ["TRAINBOARD_HOME"] = str(Path(args.home).expanduser().resolve())
    s = service.server_settings()
    _sweep_uploads(service.prepare_home())  # the database migrated once, before the children
    devices = [] if args.no_workers else service.worker_devices(args.device)
    try:
        workers, cpu_note = _plan_workers(devices, args.cpu_slots, args.threads)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    logs = Path(s.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = _Children(logs)
    for name, cmd, env in workers:
        children.start(f"worker {name}", cmd, env, f"worker-{name.split('@')[0]}.log")
    url = None
    if APP_ENTRY.exists():
        # Without team mode there is no login: listen on this machine only unless told otherwise.
        address = args.address or ("0.0.0.0" if service.auth.team_mode() else "127.0.0.1")
        children.start(
            "dashboard", _dashboard_cmd(args.port, address), _dashboard_env(), "dashboard.log"
        )
        url = f"http://localhost:{args.port}"
        if address != "127.0.0.1":
            url += f" (listening on {address})"
    ingest = None
    if s.broker_url and not args.no_ingest:
        # Workers on other hosts post here (through the proxy's /api/worker/). With no local
        # worker, nothing else would reap lost runs: the ingest does it then.
        address = args.address or ("0.0.0.0" if service.auth.team_mode() else "127.0.0.1")
        cmd = service.ingest_command(args.ingest_port, address, reaper=not workers)
        children.start("ingest", cmd, {}, "ingest.log")
        ingest = f"port {args.ingest_port} (trainboard token create --worker NAME)"
    # One calm block; Streamlit's and Celery's own chatter goes to the log files.
    broker = s.broker_url or f"embedded (files in {s.broker_dir})"
    lines = [
        "Trainboard is running.",
        f"  Dashboard: {url}" if url else f"  No dashboard ({APP_ENTRY} is missing): workers only.",
        f"  Data:      {s.home}",
        f"  Broker:    {broker}",
        f"  Workers:   {', '.join(devices) or 'none'}{cpu_note}",
        *([f"  Remote:    {ingest}"] if ingest else []),
        f"  Logs:      {logs}/",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
    if url and not args.headless:
        _open_browser(f"http://localhost:{args.port}", args.port)
    children.supervise()
    print("Stopping: running runs save a checkpoint and go back to the queue…", flush=True)
    _stop_all(children.procs())
    return 0


def _plan_workers(
    devices: list[str], cpu_slots_wanted: int | None, threads: int | None
) -> tuple[list[tuple[str, list[str], dict[str, str]]], str]:
    """(name, command, extra environment) per worker process, and a note on the CPU slots.
    Each CPU slot is its own worker that owns ``slot_cores`` cores: its runs' thread budget."""
    from jobs import service

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    slots, slot_cores = service.cpu_slots(cpu_slots_wanted)
    workers = []
    for d in devices:
        n = slots if d == "cpu" else 1
        for i in range(1, n + 1):
            name = service.slot_name(d, i, n)
            env = {"TRAINBOARD_CORES": str(slot_cores)} if d == "cpu" else {}
            if threads is not None:
                env["TRAINBOARD_THREADS"] = str(threads)
            workers.append(
                (
                    name,
                    [sys.executable, "-m", "jobs.cli", "worker", "--device", d, "--name", name],
                    env,
                )
            )
    note = ""
    if "cpu" in devices:
        note = f" ({slots} slot(s) × {slot_cores} core(s), threads: {threads or 'by model size'})"
    return workers, note


def _dashboard_env() -> dict[str, str]:
    """The dashboard server trusts X-Forwarded-For only from the proxy TRAINBOARD_TRUSTED_PROXY
    names (addresses or networks, comma-separated; ``*`` when nothing but the proxy can reach
    the app, as in compose.yaml). uvicorn does the parsing (its FORWARDED_ALLOW_IPS); unset,
    no peer is trusted, not even a local one, so a header a browser sends is never believed."""
    trusted = os.environ.get("TRAINBOARD_TRUSTED_PROXY", "").strip()
    return {"FORWARDED_ALLOW_IPS": trusted}


def _dashboard_cmd(port: int, address: str) -> list[str]:
    from jobs import service

    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_ENTRY),
        "--server.port",
        str(port),
        "--server.address",
        address,
        # Always headless: otherwise Streamlit's first start asks for an e-mail address on the
        # terminal, and with no terminal (a service, CI, nohup) it exits. `up` opens the browser.
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        # Streamlit's own cap on an upload, kept equal to Trainboard's (jobs.datasets.ingest)
        "--server.maxUploadSize",
        str(max(1, round(service.max_upload_bytes() / 2**20))),
    ]


def _open_browser(url: str, port: int) -> None:
    """Open the dashboard once it answers, where there is a screen to open it on (on a headless
    Linux box `webbrowser` would start a text browser in this terminal)."""
    import threading
    import urllib.request
    import webbrowser

    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return

    def wait_and_open() -> None:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    webbrowser.open(url)
                    return
            except OSError:
                time.sleep(0.5)

    threading.Thread(target=wait_and_open, daemon=True).start()


class _Children:
    """The processes `up` starts: each in its own session (Ctrl-C reaches only `up`, which stops
    them in order), stdin closed, output appended to its log file."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.items: list[tuple[str, list[str], dict[str, str], str, subprocess.Popen]] = []

    def _spawn(self, cmd: list[str], env: dict[str, str], log: str) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)  # it may have been removed meanwhile
        with open(self.logs / log, "ab") as out:
            return subprocess.Popen(
                cmd,
                start_new_session=True,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def start(self, label: str, cmd: list[str], env: dict[str, str], log: str) -> None:
        self.items.append((label, cmd, env, log, self._spawn(cmd, env, log)))

    def procs(self) -> list[subprocess.Popen]:
        return [proc for *_, proc in self.items]

    def supervise(self) -> None:
        """Until Ctrl-C / SIGTERM: restart a worker or the dashboard that dies (at most every
        5 s; a new worker's reaper requeues its run), so one process killed for memory never
        takes the others down. A dashboard that keeps dying at once (a port in use, a broken
        install) stops everything instead, with its last log lines."""
        stopping = False

        def on_signal(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        restarts: dict[str, float] = {}
        crashes: list[float] = []  # when the dashboard exited, recently
        while not stopping:
            time.sleep(0.5)
            for i, (label, cmd, env, log, proc) in enumerate(self.items):
                if proc.poll() is None or stopping:
                    continue
                if time.monotonic() - restarts.get(label, 0.0) <= 5.0:
                    continue  # restarted a moment ago: wait, so a crash loop doesn't spin
                if label == "dashboard" and _crashing(crashes, time.monotonic()):
                    print(
                        f"The dashboard exited with code {proc.returncode} {DASHBOARD_CRASHES} times "
                        f"within {DASHBOARD_CRASH_WINDOW_S:g} s; stopping. Its last lines "
                        f"({self.logs / log}):\n{_tail(self.logs / log)}",
                        flush=True,
                    )
                    stopping = True
                    break
                print(
                    f"{label} exited with code {proc.returncode}; restarting it (log: {self.logs / log}).",
                    flush=True,
                )
                restarts[label] = time.monotonic()
                self.items[i] = (label, cmd, env, log, self._spawn(cmd, env, log))


DASHBOARD_CRASHES = 5  # exits within the window below before `up` gives up
DASHBOARD_CRASH_WINDOW_S = 60.0


def _crashing(crashes: list[float], now: float) -> bool:
    """Record a dashboard exit at ``now``; True when it has exited too often to restart."""
    crashes.append(now)
    crashes[:] = [t for t in crashes if now - t <= DASHBOARD_CRASH_WINDOW_S]
    return len(crashes) >= DASHBOARD_CRASHES


def _sweep_uploads(removed: list[str]) -> None:
    """Say so when upload files left by a process that died while checking them were removed."""
    if removed:
        print(f"Removed {len(removed)} unfinished upload file(s) left from before.", flush=True)


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line[:300] for line in text[-lines:])


def _stop_all(procs: list[subprocess.Popen], grace_s: float = 90.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # Celery: warm shutdown; Streamlit: exits
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- worker ---------------------------------------------------------------------------------


def add_worker(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--name", help="worker name (default DEVICE@HOST)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per run (default: by model size; also TRAINBOARD_THREADS)",
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from jobs import service

    if args.threads is not None:
        if args.threads < 1:
            print(f"--threads must be at least 1, got {args.threads}", file=sys.stderr)
            return 2
        os.environ["TRAINBOARD_THREADS"] = str(args.threads)  # the run processes inherit it

    service.run_worker(args.device, name=args.name, loglevel=args.loglevel)
    return 0
