"""The one SQLite file: where it lives, how to connect, and the versioned schema.

Every connection is WAL with a busy timeout, ``synchronous=NORMAL`` and foreign keys on.
Migrations are numbered functions applied inside one ``BEGIN IMMEDIATE`` transaction, so two
processes starting at once cannot both apply them, and running them again is a no-op.
A :class:`sqlite_utils.Database` must stay on the thread that made it: call :func:`connect`
once per thread (it is cheap after the first call in a process).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from engine.vocab import RunStatus

BUSY_TIMEOUT_S = 10.0
RUN_STATUSES: tuple[str, ...] = tuple(RunStatus)  # the one list: engine.vocab

_migrated: set[str] = set()  # per process: paths whose migrations already ran here
_migrate_lock = threading.Lock()


def data_home() -> Path:
    """The data directory: ``$TRAINBOARD_HOME``, else ``~/.trainboard``."""
    env = os.environ.get("TRAINBOARD_HOME")
    return Path(env).expanduser() if env else Path.home() / ".trainboard"


def db_path(home: Path | str | None = None) -> Path:
    """The database file inside ``home`` (default :func:`data_home`)."""
    return Path(home if home is not None else data_home()) / "trainboard.db"


def run_dir(run_id: int, home: Path | str | None = None) -> Path:
    """A run's directory inside ``home`` (checkpoint.pt, model.pt, runner.log, exports)."""
    return Path(home if home is not None else data_home()) / "runs" / str(run_id)


def connect(path: Path | str | None = None) -> sqlite_utils.Database:
    """Open the database (creating it and its directory), configured and migrated."""
    path = Path(path) if path is not None else db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _enable_wal(conn)
    # NORMAL is durable against process crashes in WAL mode; only an OS crash or power loss
    # can roll back the last commits, and never corrupts the file.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    key = str(path.resolve())
    if key not in _migrated:
        with _migrate_lock:
            if key not in _migrated:
                migrate(db)
                _migrated.add(key)
    return db


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching to WAL needs a moment of exclusive access; when several processes open a fresh
    # file together one of them can get SQLITE_BUSY without the busy handler, so retry briefly.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        if mode.lower() == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch {conn} to WAL (mode {mode!r})")
        time.sleep(0.05)


# --- migrations ---------------------------------------------------------------------------


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["users"].create(
        {
            "id": int,
            "name": str,
            "password_hash": str,
            "is_admin": int,
            "created_at": float,
            "failed_attempts": int,
            "locked_until": float,
        },
        pk="id",
        not_null={"name", "password_hash"},
        defaults={"is_admin": 0, "failed_attempts": 0},
    )
    db["users"].create_index(["name"], unique=True)
    db["sessions"].create(
        {"token": str, "user": str, "created_at": float, "expires_at": float},
        pk="token",
        not_null={"user", "expires_at"},
    )
    db["sessions"].create_index(["user"])
    db["datasets"].create(
        {
            "id": int,
            "name": str,
            "path": str,
            "sha256": str,
            "size_bytes": int,
            "format": str,
            "target": str,
            "task": str,
            "owner": str,
            "created_at": float,
            "report": str,  # JSON
        },
        pk="id",
        not_null={"name"},
        defaults={"owner": "local"},
    )
    db["datasets"].create_index(["sha256"])
    db["runs"].create(
        {
            "id": int,
            "name": str,
            "dataset_id": int,
            "preset": str,
            "spec": str,  # JSON
            "status": str,
            "owner": str,
            "device": str,
            "worker": str,
            "queue": str,
            "attempt": int,
            "max_attempts": int,
            "heartbeat_at": float,
            "created_at": float,
            "started_at": float,
            "finished_at": float,
            "error": str,
            "summary": str,  # JSON
            "cancel_requested": int,
            "progress": float,
            "pair_id": str,
            "group_id": str,
            "parent_run_id": int,
        },
        pk="id",
        not_null={"status", "spec", "created_at"},
        defaults={
            "status": "queued",
            "owner": "local",
            "queue": "cpu",
            "attempt": 0,
            "max_attempts": 3,
            "cancel_requested": 0,
        },
        foreign_keys=[("dataset_id", "datasets", "id"), ("parent_run_id", "runs", "id")],
    )
    for cols in (["status"], ["owner"], ["dataset_id"], ["group_id"], ["pair_id"]):
        db["runs"].create_index(cols)
    db["workers"].create(
        {
            "name": str,
            "host": str,
            "device": str,
            "gpu_name": str,
            "gpu_mem_total": int,
            "pid": int,
            "queue": str,
            "current_run": int,
            "last_seen": float,
            "started_at": float,
            "status": str,
        },
        pk="name",
    )
    db["metric_keys"].create({"id": int, "name": str}, pk="id", not_null={"name"})
    db["metric_keys"].create_index(["name"], unique=True)
    # sqlite-utils cannot declare WITHOUT ROWID tables, hence raw DDL for the two metric tables.
    # Narrow rows with a (run, key, step) primary key and no rowid: one B-tree, ~20 bytes a point.
    db.execute(
        """CREATE TABLE metrics (
            run_id INTEGER NOT NULL,
            key_id INTEGER NOT NULL,
            step INTEGER NOT NULL,
            value REAL,  -- NULL stores NaN (SQLite has no NaN)
            PRIMARY KEY (run_id, key_id, step)
        ) WITHOUT ROWID"""
    )
    # Downsampled levels: one row per (run, key, level, bucket of 2**shift(level) steps) holding
    # the bucket's minimum and maximum with the steps where they occur. See docs/store.md.
    db.execute(
        """CREATE TABLE metrics_ds (
            run_id INTEGER NOT NULL,
            key_id INTEGER NOT NULL,
            level INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min_step INTEGER,
            vmin REAL,
            max_step INTEGER,
            vmax REAL,
            PRIMARY KEY (run_id, key_id, level, bucket)
        ) WITHOUT ROWID"""
    )
    db["events"].create(
        {
            "id": int,
            "run_id": int,
            "step": int,
            "kind": str,
            "message": str,
            "data": str,  # JSON
            "created_at": float,
        },
        pk="id",
        not_null={"run_id", "kind"},
    )
    db["events"].create_index(["run_id", "id"])


def _m002_queue_sends(db: sqlite_utils.Database) -> None:
    """The queue's bookkeeping: every send of a run to the broker (see ``jobs.runs.submit``).
    IF NOT EXISTS: databases made before this migration existed got the table on first use."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS queue_sends (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
            sent_at REAL,          -- last successful send, NULL while it never got through
            sends INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,       -- why the last try failed (cleared by a successful send)
            last_try_at REAL
        )"""
    )


def _m003_login_attempts(db: sqlite_utils.Database) -> None:
    """Failed logins per (user name, client), so one client's guessing never locks the real
    user out elsewhere (``jobs.people.auth.login``). Session tokens are stored hashed from now on:
    sessions opened before this migration held the token itself and are ended."""
    db.execute(
        """CREATE TABLE login_attempts (
            key TEXT PRIMARY KEY,      -- user name (as typed, lower-cased) + NUL + client
            failed INTEGER NOT NULL DEFAULT 0,
            locked_until REAL NOT NULL DEFAULT 0
        )"""
    )
    db.execute("DELETE FROM sessions")


def _m004_user_settings(db: sqlite_utils.Database) -> None:
    """Per-user dashboard settings (the language), keyed by user name: a team member's own
    name, or "local" for the one user of a single-user install (``jobs.service.user_setting``)."""
    db.execute(
        """CREATE TABLE user_settings (
            user TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (user, key)
        )"""
    )


def _m005_error_messages(db: sqlite_utils.Database) -> None:
    """A run's error as a message code with its params (JSON, ``engine.messages``), beside its
    English text in ``error``, so the dashboard shows it in the reader's language. Runs that
    failed before keep only the text, which the dashboard shows as it is (docs/i18n.md)."""
    db.execute("ALTER TABLE runs ADD COLUMN error_msg TEXT")


def _m006_ab_arms(db: sqlite_utils.Database) -> None:
    """Which arm of an A/B group a run is (``A``: as is, ``B``: with the change; issue 23 §2),
    so Compare finds each seed's pair by (group, arm, seed) and a run queued into the group
    later ("queue with this change" keeps the group) is never taken for an arm. Pairs queued
    before this migration are recognised by the names they were given ("A/B T7 on" / "off")."""
    db.execute("ALTER TABLE runs ADD COLUMN ab_arm TEXT")
    for arm, suffix in (("A", "on"), ("B", "off")):
        db.execute(
            "UPDATE runs SET ab_arm = ? WHERE group_id LIKE 'ab-%' AND name LIKE ?",
            [arm, f"A/B % {suffix}"],
        )


def _m007_sweeps(db: sqlite_utils.Database) -> None:
    """Sweeps (issue 23 §3): what a sweep searches and how (``sweeps``), and each of its
    trials (``sweep_trials``): the Optuna trial number, the run that trains it, where it is
    on the ASHA rungs and what it scored at each. The controller's whole state is here and in
    the Optuna study beside the store (``sweeps.db``), so it survives any restart."""
    db["sweeps"].create(
        {
            "id": int,
            "name": str,
            "owner": str,
            "dataset_id": int,
            "preset": str,
            "spec": str,  # JSON: dataset, target, queue, base overrides, space, budget, rungs
            "metric": str,
            "direction": str,
            "status": str,
            "created_at": float,
            "finished_at": float,
            "lease_by": str,
            "lease_until": float,
            "poked_at": float,  # a trial's run ended while another process held the lease
            "note": str,  # JSON message: why the controller waits (a full queue)
        },
        pk="id",
        not_null={"spec", "status", "created_at"},
        defaults={"owner": "local", "status": "running"},
        foreign_keys=[("dataset_id", "datasets", "id")],
    )
    db["sweep_trials"].create(
        {
            "sweep_id": int,
            "number": int,
            "run_id": int,
            "params": str,  # JSON
            "state": str,
            "rung": int,  # the epochs its current (or last) segment trains to
            "epochs": int,  # epochs trained so far
            "seconds": float,  # seconds those epochs took, over every segment
            "rung_values": str,  # JSON {epochs: best validation metric by then}
            "value": float,
            "updated_at": float,
        },
        pk=("sweep_id", "number"),
        not_null={"state"},
        foreign_keys=[("sweep_id", "sweeps", "id")],
    )
    db["sweep_trials"].create_index(["run_id"])


def _m008_remote_workers(db: sqlite_utils.Database) -> None:
    """Workers on other hosts (``jobs.remote``): their tokens, stored as the SHA-256 of a
    256-bit random secret (a slow hash protects guessable passwords; nothing guesses 2**256,
    and every request checks one); per (run, attempt) the worker it was handed to and the
    high-water mark of the records written (a chunk at or below it is a retry, acknowledged and
    not written again); the files a remote worker shipped into a run's folder, by content hash;
    and what the Workers page shows of a remote worker (its spool backlog and sync lag).
    IF NOT EXISTS: test databases made while these tables were created on first use."""
    db.execute(
        """CREATE TABLE IF NOT EXISTS worker_tokens (
            name TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            revoked_at REAL,
            last_used_at REAL
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS remote_attempts (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            worker TEXT NOT NULL,
            hwm INTEGER NOT NULL DEFAULT 0,
            points INTEGER NOT NULL DEFAULT 0,
            last_at REAL,
            PRIMARY KEY (run_id, attempt)
        )"""
    )
    db.execute(
        """CREATE TABLE IF NOT EXISTS run_files (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            uploaded_at REAL NOT NULL,
            PRIMARY KEY (run_id, name)
        )"""
    )
    have = {c.name for c in db["workers"].columns}
    for name, kind in (("spool_backlog", "INTEGER"), ("sync_lag_s", "REAL"), ("remote", "INTEGER")):
        if name not in have:
            db.execute(f"ALTER TABLE workers ADD COLUMN {name} {kind}")


MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "initial schema", _m001_initial),
    (2, "queue sends", _m002_queue_sends),
    (3, "login attempts per client, hashed session tokens", _m003_login_attempts),
    (4, "per-user dashboard settings", _m004_user_settings),
    (5, "run errors as message codes", _m005_error_messages),
    (6, "the arm of an A/B run", _m006_ab_arms),
    (7, "sweeps and their trials", _m007_sweeps),
    (
        8,
        "workers on other hosts: tokens, record high-water marks, shipped files",
        _m008_remote_workers,
    ),
]


def schema_version(db: sqlite_utils.Database) -> int:
    """The highest applied migration, 0 for a fresh file."""
    if not db["schema_migrations"].exists():
        return 0
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply missing migrations in order, atomically; return the versions applied (often [])."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    applied: list[int] = []
    # IMMEDIATE takes the write lock before reading the version, so concurrent starters queue
    # up behind each other and the later ones find nothing left to do.
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        for version, name, fn in MIGRATIONS:
            if version > current:
                fn(db)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    [version, name, time.time()],
                )
                applied.append(version)
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return applied
