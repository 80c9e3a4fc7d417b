"""Datasets from the dashboard: ingest an uploaded file, or register a bundled sample.

An upload is written to ``$TRAINBOARD_HOME/datasets/tmp-<random>`` at once (never held whole in
a second copy), validated by :func:`validate`, then moved to ``datasets/<sha256>.<ext>`` and
recorded with ``registry.add_dataset``. On any problem the temporary file is removed, nothing is
added to the database, and ``engine.data.DataError`` is raised with a message meant for the user.

:func:`validate` is the single gate every file passes (uploads, ``trainboard datasets add``, a
new target): size and type here, then the parse in a child process with an address-space and a
CPU-time limit, bounded from the file's headers first (``jobs.datasets.check``). A compression
bomb or a lying header ends only that child, never the dashboard. A temporary file is locked
while its upload is checked; one left by a process that died is swept when Trainboard starts
(:func:`sweep_tmp`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import sqlite_utils

from engine.errors import DataError
from engine.limits import EXTENSIONS
from engine.messages import Message
from jobs.datasets.check import (
    CheckLimits,
    Refused,
    cpu_message,
    memory_message,
    precheck,
    report_dict,
)
from jobs.runs.names import MAX_TEXT, TextRefused, clean_text
from jobs.store import registry
from jobs.store.db import data_home

log = logging.getLogger(__name__)

# The upload size limit (TRAINBOARD_MAX_UPLOAD_MB, default 200 MB, Streamlit's own default);
# the child's limits on unpacked bytes, values and pixels are in jobs.datasets.check.
MAX_UPLOAD_BYTES = int(float(os.environ.get("TRAINBOARD_MAX_UPLOAD_MB", "200")) * 2**20)
MAX_REPORT_BYTES = 1 << 20  # a dataset's stored description (column and class names included)
_CHUNK = 1 << 20
_ROOT = Path(__file__).resolve().parents[2]  # the project root
# What a check's child inherits besides the environment: one thread per library (a check is
# not a training run), so its CPU time and thread stacks stay small.
_CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "ARROW_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    # jemalloc reserves address space in big chunks, which an RLIMIT_AS turns into failures
    # on small files: Arrow uses the system allocator in the child.
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}


def datasets_dir(home: Path | str | None = None) -> Path:
    """Where dataset files live: ``<home>/datasets``."""
    return Path(home if home is not None else data_home()) / "datasets"


def _too_big(filename: str) -> str:
    return (
        f"{filename}: larger than the {MAX_UPLOAD_BYTES / 2**20:g} MB upload limit "
        "(TRAINBOARD_MAX_UPLOAD_MB on the server)."
    )


def validate(path: Path, *, filename: str, target: str | None = None) -> dict[str, Any]:
    """Check that ``path`` (the upload of ``filename``) is a dataset the engine can train on.

    Returns the dataset report as a dict (JSON-serialisable). Raises ``DataError`` naming the
    problem. This is the single gate every upload passes.
    """
    ext = Path(filename).suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(
            f"{filename}: unsupported file type {ext[:20] or '(no extension)'!r}; "
            f"upload one of: {', '.join(EXTENSIONS)}."
        )
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{filename}: the file is empty.")
    if size > MAX_UPLOAD_BYTES:
        raise DataError(_too_big(filename))
    return check_in_child(path, filename=filename, target=target)


def check_in_child(
    path: Path, *, filename: str, target: str | None = None, limits: CheckLimits | None = None
) -> dict[str, Any]:
    """Parse and report ``path`` in a child process under ``limits`` (default: from the
    environment); the report, or ``DataError`` with a message for the user. However the child
    ends (out of memory, out of CPU time, killed), this process only reads its answer."""
    limits = limits or CheckLimits.from_env()
    job = {
        "path": str(Path(path).resolve()),
        "filename": filename,
        "target": target,
        "limits": limits.to_dict(),
    }
    wall_s = 2 * limits.cpu_s + 60  # a child that sleeps or waits uses no CPU time
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.datasets.check"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=wall_s,
            cwd=_ROOT,
            env={**os.environ, **_CHILD_ENV},
        )
    except subprocess.TimeoutExpired as e:
        raise DataError(
            f"{filename}: checking the file took longer than {wall_s} s, so it was refused. "
            "Upload a smaller file."
        ) from e
    except OSError as e:
        raise DataError(f"{filename}: the file could not be checked ({e.strerror or e}).") from e
    result = _answer(proc.stdout)
    if result is None:
        raise DataError(_died(filename, proc, limits))
    if "error" in result:
        # the check's message with its code (the page translates it), else its text (a code
        # this version lacks)
        message: str = str(result["error"])
        if result.get("error_msg"):
            with contextlib.suppress(KeyError, TypeError):
                message = Message.from_json(result["error_msg"])
        raise DataError(message)
    report = result["report"]
    if len(json.dumps(report)) > MAX_REPORT_BYTES:
        raise DataError(
            f"{filename}: the dataset's column or class names take more than "
            f"{MAX_REPORT_BYTES >> 20} MB; use shorter names or fewer columns."
        )
    return report


def _answer(stdout: str) -> dict[str, Any] | None:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return None
    return (
        result if isinstance(result, dict) and ("error" in result or "report" in result) else None
    )


def _died(filename: str, proc: subprocess.CompletedProcess, limits: CheckLimits) -> str:
    """What to tell the user when the check's child ended without an answer."""
    tail = (proc.stderr or "")[-2000:]
    log.warning("the check of %s ended with code %s: %s", filename, proc.returncode, tail)
    if proc.returncode == -signal.SIGXCPU:
        return cpu_message(filename, limits.cpu_s)
    memory_signs = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory")
    if proc.returncode in (
        -signal.SIGKILL,
        -signal.SIGABRT,
        -signal.SIGSEGV,
        -signal.SIGBUS,
    ) or any(s in tail for s in memory_signs):
        return memory_message(filename, limits.memory_bytes)
    return (
        f"{filename}: the file could not be checked (the checker exited with code "
        f"{proc.returncode}); it was refused."
    )


MAX_NAME = MAX_TEXT


def clean_name(filename: str) -> str:
    """A dataset's display name from an uploaded file name: the last path part, through the
    one normaliser (``jobs.runs.names``: NFKC, no control or format characters). Raises
    ``DataError`` for a name over MAX_NAME characters: refused, not cut."""
    base = Path(str(filename).replace("\\", "/").replace("\x00", "")).name
    try:
        name = clean_text(base, what="file name", limit=MAX_NAME)
    except TextRefused as e:
        raise DataError(str(e)) from e
    return name or "upload"


def ingest(
    db: sqlite_utils.Database,
    source: BinaryIO | bytes,
    filename: str,
    *,
    target: str | None = None,
    owner: str = "local",
    home: Path | str | None = None,
) -> dict[str, Any]:
    """Store an uploaded file as a dataset and return its registry row (``report`` decoded).

    The same content with the same target is stored once: a second upload returns the
    existing dataset."""
    name = clean_name(filename)
    ext = Path(name).suffix.lower()
    if ext not in EXTENSIONS:  # before anything is written: a bad name changes nothing
        raise DataError(
            f"{name}: unsupported file type {ext[:20] or '(no extension)'!r}; "
            f"upload one of: {' '.join(EXTENSIONS)}."
        )
    folder = datasets_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    # The temp file keeps the real extension: the loader picks the format by it.
    tmp = folder / f"{TMP_PREFIX}{secrets.token_hex(8)}{ext}"
    try:
        with tmp.open("wb") as f:
            # Locked while this upload is written and checked: sweep_tmp never takes it.
            fcntl.flock(f, fcntl.LOCK_EX)
            sha = _write(f, source, name)
            report = validate(tmp, filename=name, target=target)
            for row in registry.list_datasets(db):
                if row["sha256"] == sha and (row["target"] or None) == report["target"]:
                    return row
            final = folder / f"{sha}{ext}"
            os.replace(tmp, final)
        dataset_id = registry.add_dataset(
            db,
            name=name,
            path=str(final),
            sha256=sha,
            size_bytes=final.stat().st_size,
            format=ext.lstrip("."),
            target=report["target"],
            task=report["task"],
            owner=owner,
            report=report,
        )
        return registry.get_dataset(db, dataset_id)
    finally:
        tmp.unlink(missing_ok=True)


def _write(f: BinaryIO, source: BinaryIO | bytes, name: str) -> str:
    """Copy the upload into ``f`` in chunks, stopping at the size limit; its SHA-256."""
    digest = hashlib.sha256()
    if isinstance(source, bytes | bytearray):
        chunks: Any = [bytes(source)]
    else:
        if hasattr(source, "seek"):
            source.seek(0)
        chunks = iter(lambda: source.read(_CHUNK), b"")
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > MAX_UPLOAD_BYTES:  # stop at the limit: a huge upload never fills the disk
            raise DataError(_too_big(name))
        digest.update(chunk)
        f.write(chunk)
    f.flush()
    return digest.hexdigest()


TMP_PREFIX = "tmp-"


def sweep_tmp(home: Path | str | None = None, *, min_age_s: float = 5.0) -> list[str]:
    """Remove temporary upload files that no process is checking any more (their uploader died,
    e.g. killed for memory before this check ran in a child). A file still being written or
    checked is locked by its upload and stays. Called when ``trainboard up`` and each worker
    start. Returns the names removed."""
    folder = datasets_dir(home)
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for path in folder.glob(f"{TMP_PREFIX}*"):
        try:
            if not path.is_file() or now - path.stat().st_mtime < min_age_s:
                continue
            with path.open("rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # an upload is being checked right now
                path.unlink()
            removed.append(path.name)
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("could not sweep %s: %s", path, e)
    if removed:
        log.info("swept %d leftover upload file(s) from %s", len(removed), folder)
    return removed


def retarget(
    db: sqlite_utils.Database, dataset_id: int, target: str, *, owner: str | None = None
) -> dict[str, Any]:
    """The same file with another target column: a new dataset row (the file is shared),
    owned by ``owner`` (whoever asked; the original's owner when None)."""
    ds = registry.get_dataset(db, dataset_id)
    owner = owner or ds["owner"]
    for row in registry.list_datasets(db):
        if row["path"] == ds["path"] and row["target"] == target and row["owner"] == owner:
            return row
    if ds["path"].startswith("builtin:"):
        from engine.data import load_dataset

        report = report_dict(load_dataset(ds["path"], target=target))
    else:
        report = validate(Path(ds["path"]), filename=ds["name"], target=target)
    new_id = registry.add_dataset(
        db,
        name=ds["name"],
        path=ds["path"],
        sha256=ds["sha256"],
        size_bytes=ds["size_bytes"],
        format=ds["format"],
        target=report["target"],
        task=report["task"],
        owner=owner,
        report=report,
    )
    return registry.get_dataset(db, new_id)


def remove_file_if_unused(
    db: sqlite_utils.Database, path: str, home: Path | str | None = None
) -> bool:
    """Delete a stored dataset file once no dataset row refers to it (a new target shares the
    file). Only files inside the datasets folder are ever removed. True if it was removed."""
    if not path or path.startswith("builtin:"):
        return False
    if db["datasets"].count_where("path = ?", [path]):
        return False
    file = Path(path)
    folder = datasets_dir(home).resolve()
    try:
        if file.resolve().parent != folder:
            return False
        file.unlink()
    except FileNotFoundError:
        return False
    return True


def remove(db: sqlite_utils.Database, dataset_id: int, home: Path | str | None = None) -> None:
    """Delete a dataset and, once no other dataset row shares it, its file. Raises
    ``DatasetInUse`` while a queued, running or lost run uses it."""
    ds = registry.delete_dataset(db, dataset_id)
    remove_file_if_unused(db, ds["path"], home)


def verify_for_run(
    spec: dict[str, Any], ds: dict[str, Any] | None, home: Path | str | None = None
) -> None:
    """What a worker checks before it reads a byte of a run's data: the run names exactly its
    registered dataset; a file is inside the data directory's ``datasets/`` folder (checked on
    the resolved path, before the file is opened), still has the content hash recorded when
    its upload was checked, and passes the upload check's header bounds again (rows, columns,
    unpacked bytes) under this machine's limits. Raises ``DataError`` saying which failed."""
    data = spec.get("data") or {}
    source = str(data.get("dataset") or "")
    if ds is None:
        raise DataError(Message("guard.run_dataset_gone"))
    if not registry.reads_dataset(data, ds):
        raise DataError(Message("guard.other_file", name=ds["name"]))
    if source.startswith("builtin:"):
        if source not in builtin_samples():
            raise DataError(Message("guard.not_sample", source=source))
        return
    folder = datasets_dir(home).resolve()
    path = Path(source)
    # resolve() reads directory entries and links, never the file's contents.
    if path.resolve().parent != folder or not ds.get("sha256"):
        raise DataError(Message("guard.outside", name=ds["name"]))
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as e:
        raise DataError(
            Message("guard.unreadable", name=ds["name"], why=str(e.strerror or e))
        ) from e
    if digest.hexdigest() != ds["sha256"]:
        raise DataError(Message("guard.changed", name=ds["name"]))
    try:
        precheck(path, ds["name"], path.suffix.lower(), CheckLimits.from_env())
    except Refused as e:
        raise DataError(str(e)) from e


def builtin_samples() -> dict[str, str]:
    """The bundled sample datasets: ``builtin:NAME`` → one-line description."""
    from engine.data.builtins import BUILTINS

    return {f"builtin:{name}": text for name, text in BUILTINS.items()}


def register_builtin(
    db: sqlite_utils.Database, source: str, *, owner: str = "local"
) -> dict[str, Any]:
    """Register a bundled sample (``builtin:digits`` ...) once; return its registry row.
    Bundled samples are trusted and small: loaded here, not in a child."""
    from engine.data import load_dataset

    if source not in builtin_samples():
        raise DataError(
            Message("guard.not_sample_choose", source=source, names=", ".join(builtin_samples()))
        )
    for row in registry.list_datasets(db):
        if row["path"] == source:
            return row
    raw = load_dataset(source)
    report = report_dict(raw)
    dataset_id = registry.add_dataset(
        db,
        name=source,
        path=source,
        sha256=None,
        size_bytes=None,
        format="builtin",
        target=report["target"],
        task=report["task"],
        owner=owner,
        report=report,
    )
    return registry.get_dataset(db, dataset_id)


__all__ = [
    "builtin_samples",
    "check_in_child",
    "datasets_dir",
    "ingest",
    "register_builtin",
    "remove",
    "remove_file_if_unused",
    "report_dict",
    "retarget",
    "sweep_tmp",
    "validate",
    "verify_for_run",
]
