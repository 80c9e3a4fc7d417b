"""Datasets from the dashboard: ingest an uploaded file, or register a bundled sample.

An upload is written to ``$TRAINBOARD_HOME/datasets/tmp-<random>`` at once (never held whole in
a second copy), validated by :func:`validate` (the engine's own loader and dataset report), then
moved to ``datasets/<sha256>.<ext>`` and recorded with ``registry.add_dataset``. On any problem
the temporary file is removed, nothing is added to the database, and ``engine.data.DataError``
is raised with a message meant for the user.

All checks of an uploaded file live in :func:`validate`, so hardening against hostile files
(size limits, archive checks, ...) has one place to grow.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import unicodedata
from pathlib import Path
from typing import Any, BinaryIO

import sqlite_utils

from engine.data import BUILTINS, DataError, RawDataset, dataset_report, load_dataset
from engine.data.loaders import EXTENSIONS
from jobs.store import registry
from jobs.store.db import data_home

# The upload size limit (TRAINBOARD_MAX_UPLOAD_MB, default 200 MB, Streamlit's own default);
# the zip loader has separate limits on uncompressed size and compression ratio.
MAX_UPLOAD_BYTES = int(float(os.environ.get("TRAINBOARD_MAX_UPLOAD_MB", "200")) * 2**20)
_CHUNK = 1 << 20


def datasets_dir(home: Path | str | None = None) -> Path:
    """Where dataset files live: ``<home>/datasets``."""
    return Path(home if home is not None else data_home()) / "datasets"


def _report_dict(raw: RawDataset) -> dict[str, Any]:
    report = dataset_report(raw).to_dict()
    # Columns a user may pick as the target: a table's own columns, else the feature names.
    if raw.frame is not None:
        report["choices"] = [str(c) for c in raw.frame.columns]
    else:
        report["choices"] = []
    report["classes"] = raw.class_names
    return report


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
            f"{filename}: unsupported file type {ext or '(no extension)'!r}; "
            f"upload one of: {', '.join(EXTENSIONS)}."
        )
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{filename}: the file is empty.")
    if size > MAX_UPLOAD_BYTES:
        raise DataError(_too_big(filename))
    try:
        raw = load_dataset(str(path), target=target)
    except DataError as e:
        # The loader names the temporary file; the user knows the file by its own name.
        raise DataError(str(e).replace(path.name, filename)) from e
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise DataError(f"{filename}: could not be read as a dataset ({e}).") from e
    return _report_dict(raw)


MAX_NAME = 120


def clean_name(filename: str) -> str:
    """A dataset's display name from an uploaded file name: the last path part, without control
    characters (NUL, newlines), whitespace collapsed, at most MAX_NAME characters (the
    extension kept, so the loader still knows the format)."""
    name = "".join(
        c for c in Path(str(filename).replace("\\", "/")).name if unicodedata.category(c) != "Cc"
    )
    name = " ".join(name.split()) or "upload"
    if len(name) > MAX_NAME:
        stem, ext = Path(name).stem, Path(name).suffix
        ext = ext if len(ext) <= 10 else ""
        name = stem[: MAX_NAME - len(ext) - 1] + "…" + ext
    return name


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
    tmp = folder / f"tmp-{secrets.token_hex(8)}{ext}"
    try:
        digest = hashlib.sha256()
        with tmp.open("wb") as f:
            if isinstance(source, bytes | bytearray):
                chunks = [bytes(source)]
            else:
                if hasattr(source, "seek"):
                    source.seek(0)
                chunks = iter(lambda: source.read(_CHUNK), b"")
            written = 0
            for chunk in chunks:
                written += len(chunk)
                if (
                    written > MAX_UPLOAD_BYTES
                ):  # stop at the limit: a huge upload never fills the disk
                    raise DataError(_too_big(name))
                digest.update(chunk)
                f.write(chunk)
        sha = digest.hexdigest()
        report = validate(tmp, filename=name, target=target)
        for row in registry.list_datasets(db):
            if row["sha256"] == sha and (row["target"] or None) == report["target"]:
                tmp.unlink()
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


def retarget(db: sqlite_utils.Database, dataset_id: int, target: str) -> dict[str, Any]:
    """The same file with another target column: a new dataset row (the file is shared)."""
    ds = registry.get_dataset(db, dataset_id)
    for row in registry.list_datasets(db):
        if row["path"] == ds["path"] and row["target"] == target:
            return row
    if ds["path"].startswith("builtin:"):
        report = _report_dict(load_dataset(ds["path"], target=target))
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
        owner=ds["owner"],
        report=report,
    )
    return registry.get_dataset(db, new_id)


def builtin_samples() -> dict[str, str]:
    """The bundled sample datasets: ``builtin:NAME`` → one-line description."""
    return {f"builtin:{name}": text for name, text in BUILTINS.items()}


def register_builtin(
    db: sqlite_utils.Database, source: str, *, owner: str = "local"
) -> dict[str, Any]:
    """Register a bundled sample (``builtin:digits`` ...) once; return its registry row."""
    if source not in builtin_samples():
        raise DataError(
            f"{source}: not a bundled sample; choose one of: {', '.join(builtin_samples())}."
        )
    for row in registry.list_datasets(db):
        if row["path"] == source:
            return row
    raw = load_dataset(source)
    report = _report_dict(raw)
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
    "datasets_dir",
    "ingest",
    "register_builtin",
    "retarget",
    "validate",
]
