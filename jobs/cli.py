"""The ``trainboard`` command.

One function per subcommand, each registered in :data:`COMMANDS` with a small function that
adds its arguments; to add a command, write both and append them to the list.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The server entry (an st.App wrapping app/main.py with the upload guard, app/server.py)
APP_ENTRY = Path(__file__).resolve().parent.parent / "app" / "server.py"


# --- up -------------------------------------------------------------------------------------


def _add_up(p: argparse.ArgumentParser) -> None:
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
        "--address",
        default=None,
        help="interface the dashboard listens on (default: 127.0.0.1, or 0.0.0.0 in "
        "team mode, where every page needs a login)",
    )


def cmd_up(args: argparse.Namespace) -> int:
    from jobs.queue.celery_app import settings
    from jobs.queue.worker import parse_device, visible_gpus
    from jobs.store.db import connect

    if args.home:
        os.environ["TRAINBOARD_HOME"] = str(Path(args.home).expanduser().resolve())
    s = settings()
    connect().close()  # create and migrate the database once, before the children race for it
    _sweep_uploads()
    devices = [] if args.no_workers else [parse_device(d) for d in args.device or []]
    if not devices and not args.no_workers:
        devices = visible_gpus() or ["cpu"]
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
        from jobs.auth import team_mode

        # Without team mode there is no login: listen on this machine only unless told otherwise.
        address = args.address or ("0.0.0.0" if team_mode() else "127.0.0.1")
        children.start(
            "dashboard", _dashboard_cmd(args.port, address), _dashboard_env(), "dashboard.log"
        )
        url = f"http://localhost:{args.port}"
        if address != "127.0.0.1":
            url += f" (listening on {address})"
    # One calm block; Streamlit's and Celery's own chatter goes to the log files.
    broker = s.broker_url or f"embedded (files in {s.broker_dir})"
    lines = [
        "Trainboard is running.",
        f"  Dashboard: {url}" if url else f"  No dashboard ({APP_ENTRY} is missing): workers only.",
        f"  Data:      {s.home}",
        f"  Broker:    {broker}",
        f"  Workers:   {', '.join(devices) or 'none'}{cpu_note}",
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
    from engine.threads import cores_available
    from jobs.queue.presence import cpu_slots, slot_name

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    slots, slot_cores = cpu_slots(cores_available(), cpu_slots_wanted)
    workers = []
    for d in devices:
        n = slots if d == "cpu" else 1
        for i in range(1, n + 1):
            name = slot_name(d, i, n)
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
    from jobs.datasets import MAX_UPLOAD_BYTES

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
        # Streamlit's own cap on an upload, kept equal to Trainboard's (jobs.datasets)
        "--server.maxUploadSize",
        str(max(1, round(MAX_UPLOAD_BYTES / 2**20))),
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


def _sweep_uploads() -> None:
    """Remove upload files left by a process that died while checking them."""
    from jobs.datasets import sweep_tmp

    removed = sweep_tmp()
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


def _add_worker(p: argparse.ArgumentParser) -> None:
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
    from jobs.queue.worker import run_worker

    if args.threads is not None:
        if args.threads < 1:
            print(f"--threads must be at least 1, got {args.threads}", file=sys.stderr)
            return 2
        os.environ["TRAINBOARD_THREADS"] = str(args.threads)  # the run processes inherit it

    run_worker(args.device, name=args.name, loglevel=args.loglevel)
    return 0


# --- submit ---------------------------------------------------------------------------------


def _add_submit(p: argparse.ArgumentParser) -> None:
    from engine.config import add_set_option  # the config layer only: no torch

    p.add_argument(
        "--preset", default="auto", help="preset name (default auto: fitted to the data)"
    )
    p.add_argument("--dataset", required=True, help="a file path or builtin:NAME")
    p.add_argument("--target", help="target column")
    add_set_option(p, "override a config field, e.g. --set train.epochs=3 (repeatable)")
    p.add_argument(
        "--queue",
        default="cpu",
        choices=("cpu", "gpu"),
        help="cpu: any worker (default); gpu: only GPU workers",
    )
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--wait", action="store_true", help="wait until the run is over")


def cmd_submit(args: argparse.Namespace) -> int:
    from engine.data.loaders import check_source
    from engine.errors import ConfigError, DataError
    from jobs.submit import submit

    try:
        check_source(args.dataset)  # a typo'd builtin or path: refused, nothing queued
        # A worker reads only registered datasets (path under the data directory, hash
        # checked): a file named here is added first, checked exactly as an upload is.
        dataset_id, info, source, target = None, None, args.dataset, args.target
        if not args.dataset.startswith("builtin:"):
            row = _register_file(Path(args.dataset), args.target)
            dataset_id, info, source, target = row["id"], row["report"], row["path"], row["target"]
        res = submit(
            args.preset,
            source,
            target=target,
            overrides=args.overrides,
            queue=args.queue,
            name=args.name,
            dataset_id=dataset_id,
            info=info,
        )
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {res.run_id} queued")
    if not res.sent:
        print(f"warning: {res.note}", file=sys.stderr)
    if not _queue_has_worker(args.queue):
        hint = "trainboard worker --device cuda:N" if args.queue == "gpu" else "trainboard up"
        print(
            f"note: no live worker takes the {args.queue} queue yet; the run waits until one "
            f"starts ({hint})",
            file=sys.stderr,
        )
    if not args.wait:
        return 0
    return _wait(res.run_id)


def _register_file(path: Path, target: str | None) -> dict:
    """The registered dataset of ``path`` and ``target`` (added, with the upload's checks, the
    first time); ``DataError`` naming the problem."""
    from engine.errors import DataError
    from jobs import datasets
    from jobs.store.db import connect

    try:
        with path.open("rb") as f:
            return datasets.ingest(connect(), f, path.name, target=target)
    except OSError as e:
        raise DataError(f"{path.name}: {e.strerror or e}") from e


def _queue_has_worker(queue: str) -> bool:
    from jobs.store import registry
    from jobs.store.db import connect

    workers = registry.list_workers(connect(), alive_within_s=30)
    return any(w["status"] != "stopped" and queue in (w["queue"] or "").split(",") for w in workers)


def _wait(run_id: int) -> int:
    from engine.vocab import TERMINAL
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect()
    last = None
    while True:
        run = registry.get_run(db, run_id)
        if run["status"] != last:
            print(f"run {run_id}: {run['status']}", flush=True)
            last = run["status"]
        if run["status"] in TERMINAL:
            break
        time.sleep(0.5)
    if run["error"]:
        print(f"  {run['error']}")
    if run["summary"]:
        print(f"  summary: {json.dumps(run['summary'])}")
    return 0 if run["status"] == "finished" else 1


# --- runs -----------------------------------------------------------------------------------


def _add_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", action="append", help="only runs with this status (repeatable)")
    p.add_argument("--limit", type=int, default=30)
    sub = p.add_subparsers(dest="runs_command", required=False)
    sub.add_parser("list", help="list runs (the default)")
    rm = sub.add_parser("delete", help="delete a run that is over, with its metrics and files")
    rm.add_argument("run_id", type=int)


def _age(ts: float | None) -> str:
    if not ts:
        return "-"
    s = time.time() - ts
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"


def cmd_runs(args: argparse.Namespace) -> int:
    from jobs.queue.sends import send_info
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect()
    if getattr(args, "runs_command", None) == "delete":
        return _delete_run(db, args.run_id)
    try:
        runs = registry.list_runs(db, status=args.status, limit=args.limit)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = ("ID", "STATUS", "PRESET", "DATASET", "WORKER", "TRY", "PROG", "AGE", "NOTE")
    rows = []
    for r in runs:
        note = r["error"] or ""
        if r["status"] == "queued":
            info = send_info(db, r["id"])
            if info and info["last_error"]:
                note = f"waiting for the broker ({info['last_error']})"
        progress = f"{100 * r['progress']:.0f}%" if r["progress"] is not None else "-"
        rows.append(
            (
                str(r["id"]),
                r["status"],
                r["preset"] or "-",
                str((r["spec"] or {}).get("data", {}).get("dataset", "-")),
                r["worker"] or "-",
                f"{r['attempt']}/{r['max_attempts']}",
                progress,
                _age(r["created_at"]),
                note[:60],
            )
        )
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _delete_run(db, run_id: int) -> int:
    from jobs.errors import StoreError
    from jobs.submit import delete_run

    try:
        delete_run(db, run_id)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {run_id} deleted, with its metrics and files")
    return 0


# --- cancel ---------------------------------------------------------------------------------


def _add_cancel(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", type=int)


def cmd_cancel(args: argparse.Namespace) -> int:
    from jobs.errors import StoreError
    from jobs.submit import cancel

    try:
        status = cancel(args.run_id)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if status == "running":
        print(f"run {args.run_id}: stopping (it saves a checkpoint first)")
    else:
        print(f"run {args.run_id}: {status}")
    return 0


def _add_train(p: argparse.ArgumentParser) -> None:
    from engine.console import add_train_args  # the engine owns this command's options

    add_train_args(p)


def _cmd_train(args: argparse.Namespace) -> int:
    from engine.console import cmd_train

    return cmd_train(args)


def _add_user(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="user_command", required=True)
    add = sub.add_parser("add", help="create a user (asks for the password twice)")
    add.add_argument("name")
    add.add_argument(
        "--admin", action="store_true", help="may cancel and delete anyone's runs and datasets"
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    sub.add_parser("list", help="list users")
    rm = sub.add_parser("remove", help="delete a user and end their sessions")
    rm.add_argument("name")
    pw = sub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ; nothing was changed")
    return first


def _cmd_user(args: argparse.Namespace) -> int:
    from jobs import auth
    from jobs.store.db import connect

    db = connect()
    try:
        if args.user_command == "add":
            user = auth.add_user(db, args.name, _read_password(args), admin=args.admin)
            print(f"user {user['name']} created{' (admin)' if user['is_admin'] else ''}")
            if not auth.team_mode():
                print("note: team mode is off; set TRAINBOARD_TEAM=1 to require logins")
        elif args.user_command == "list":
            for u in auth.list_users(db):
                print(f"{u['name']}{'  (admin)' if u['is_admin'] else ''}")
        elif args.user_command == "remove":
            auth.remove_user(db, args.name)
            print(f"user {args.name} removed")
        else:
            auth.set_password(db, args.name, _read_password(args))
            print(f"password of {args.name} changed; their sessions were ended")
    except auth.AuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --- datasets ---------------------------------------------------------------------------------


def _add_datasets(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="datasets_command", required=True)
    sub.add_parser("list", help="list datasets")
    add = sub.add_parser(
        "add", help="check a file exactly as an upload is checked, and add it as a dataset"
    )
    add.add_argument("file")
    add.add_argument(
        "--target",
        help="target column (default: one named like a label, else the last unless it is an ID, a date or free text)",
    )
    add.add_argument("--name", help="the dataset's name (default: the file's name)")
    add.add_argument("--owner", default="local", help="who owns it (default: local)")
    rm = sub.add_parser("remove", help="delete a dataset and its file")
    rm.add_argument("dataset_id", type=int)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from engine.errors import DataError
    from jobs import datasets
    from jobs.errors import StoreError
    from jobs.store import registry
    from jobs.store.db import connect

    db = connect()
    if args.datasets_command == "list":
        rows = [
            (
                str(d["id"]),
                d["name"][:40],
                d["format"] or "-",
                d["target"] or "-",
                str((d["report"] or {}).get("rows", "-")),
                d["owner"] or "-",
            )
            for d in registry.list_datasets(db)
        ]
        _table(("ID", "NAME", "FORMAT", "TARGET", "ROWS", "OWNER"), rows)
        return 0
    if args.datasets_command == "add":
        path = Path(args.file)
        try:
            with path.open("rb") as f:
                row = datasets.ingest(
                    db, f, args.name or path.name, target=args.target, owner=args.owner
                )
        except OSError as e:
            print(f"error: {path.name}: {e.strerror or e}", file=sys.stderr)
            return 2
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = row["report"] or {}
        print(
            f"dataset {row['id']} added: {row['name']} ({report.get('rows', '?')} rows, "
            f"target {row['target'] or 'folders'}, {row['task']})"
        )
        return 0
    try:
        datasets.remove(db, args.dataset_id)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset {args.dataset_id} removed")
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


# --- resume -------------------------------------------------------------------------------------


def _add_resume(p: argparse.ArgumentParser) -> None:
    from engine.config import add_set_option

    p.add_argument("run_id", type=int)
    add_set_option(p, "train.epochs=N to change the run's length (also train.early_stop_patience)")
    p.add_argument("--wait", action="store_true", help="wait until the run is over")


def _cmd_resume(args: argparse.Namespace) -> int:
    from engine.errors import ConfigError
    from jobs.errors import StoreError
    from jobs.store.db import connect
    from jobs.submit import resume, resume_point

    db = connect()
    try:
        point = resume_point(db, args.run_id)
        res = resume(db, args.run_id, args.overrides)
    except (ConfigError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run {res.run_id} queued again; it {point.reason.split(' ', 2)[2]}")
    if not res.sent:
        print(f"warning: {res.note}", file=sys.stderr)
    return _wait(res.run_id) if args.wait else 0


# --- wiring ---------------------------------------------------------------------------------

Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]
COMMANDS: list[Command] = [
    ("up", "start the dashboard, worker(s) and the embedded broker", _add_up, cmd_up),
    ("worker", "run a worker for one device", _add_worker, cmd_worker),
    ("submit", "queue a training run", _add_submit, cmd_submit),
    ("runs", "list runs (runs delete ID: delete one that is over)", _add_runs, cmd_runs),
    ("cancel", "cancel a queued or running run", _add_cancel, cmd_cancel),
    (
        "train",
        "train in this process, without the queue (progress bar + summary)",
        _add_train,
        _cmd_train,
    ),
    ("user", "team mode accounts: add, list, remove, passwd", _add_user, _cmd_user),
    ("datasets", "datasets: list, add FILE, remove ID", _add_datasets, _cmd_datasets),
    (
        "resume",
        "resume a failed, cancelled or lost run from its checkpoint",
        _add_resume,
        _cmd_resume,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainboard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_, add_args, fn in COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_)
        add_args(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
