"""Predictions with a finished run's bundle (issue 21), for ``trainboard predict`` and the Predict
page, and the bundle's zip for Run detail.

Both run the bundle's own ``predict.py`` code (``engine.bundle_predict``): the same checks
against the schema, the same messages (as catalogue codes here, so the page shows them in the
reader's language), the same numbers. A file is bounded before it is read: the upload size
limit, then the upload check's header bounds (``jobs.datasets.check.precheck``); it is then
read and scored in chunks of rows, so memory stays bounded by a chunk. The scored file is
written next to its destination and renamed when complete; a refused file writes nothing.
torch is imported only when a prediction runs (the CLI's start-up stays light).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.messages import Message
from jobs.store.db import run_dir

BUNDLE = "bundle"  # engine.bundle.BUNDLE, without importing torch
PREVIEW_ROWS = 20
PREDICT_EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx")


@dataclass
class Prediction:
    """What scoring a file gave: the output header, its first rows, every problem as a
    message, whether the file was refused (then nothing was written), the score on the file's
    target column (a message, or None), the rows scored and where the output is."""

    header: list[str]
    preview: list[list[str]]
    problems: list[Message]
    refused: bool
    score: Message | None
    rows: int
    out: Path | None
    warnings: list[bool] = field(default_factory=list)  # per problem: refusal (False) or not


def bundle_folder(run: str | int | Path) -> Path:
    """RUN as the CLI takes it: a run id (this data directory's runs/<id>), a run directory,
    or a bundle directory → the bundle folder. Raises DataError when there is none."""
    text = str(run)
    path = run_dir(int(text)) if text.isdigit() else Path(text)
    if (path / "model.ts").is_file():
        return path
    if (path / BUNDLE / "model.ts").is_file():
        return path / BUNDLE
    raise DataError(Message("predict.no_bundle", run=text[:300]))


def _cells(value: Any) -> str:
    if value is None or value != value:  # NaN: an empty cell
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _read(source: Path, filename: str) -> tuple[list[str], Iterator[list[str]]]:
    """(header, rows) of a CSV/TSV/TXT (streamed) or the first sheet of an .xlsx, as text."""
    ext = Path(filename).suffix.lower()
    if ext not in PREDICT_EXTENSIONS:
        raise DataError(
            Message(
                "predict.file_type",
                where=Path(filename).name[:200],
                ext=ext or "(no extension)",
                allowed=", ".join(PREDICT_EXTENSIONS),
            )
        )
    from jobs.datasets.check import CheckLimits, Refused, precheck
    from jobs.datasets.ingest import MAX_UPLOAD_BYTES

    size = source.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise DataError(
            Message(
                "predict.too_big", where=Path(filename).name[:200], limit=MAX_UPLOAD_BYTES >> 20
            )
        )
    try:
        precheck(source, Path(filename).name, ext, CheckLimits.from_env())
    except Refused as e:
        raise DataError(e.args[0]) from e
    if ext == ".xlsx":
        import pandas as pd

        frame = pd.read_excel(source, sheet_name=0, engine="openpyxl", dtype=object)
        header = [str(c) for c in frame.columns]
        return header, ([_cells(v) for v in row] for row in frame.itertuples(index=False))
    from engine import bundle_predict as bp

    if source.suffix.lower() != ext:  # predict.py's reader picks the delimiter by the suffix
        raise DataError(
            Message("predict.file_type", where=source.name[:200], ext=source.suffix, allowed=ext)
        )
    return bp.read_csv(source)


def _bounded(rows: Iterator[list[str]], where: str, seconds: float) -> Iterator[list[str]]:
    """``rows``, until the time a file may take is over: then DataError (the caller removes
    what it wrote). The dashboard scores in its own process, so a wall-clock bound stands in
    for the upload check's CPU limit (its TRAINBOARD_CHECK_CPU_S)."""
    deadline = time.monotonic() + seconds
    for i, row in enumerate(rows):
        if i % 1024 == 0 and time.monotonic() > deadline:
            raise DataError(Message("predict.too_slow", file=where, seconds=seconds))
        yield row


def predict(
    bundle_dir: Path,
    source: Path,
    filename: str,
    out: Path | None,
    *,
    preview: int = PREVIEW_ROWS,
    time_limit_s: float | None = None,
) -> Prediction:
    """Score ``source`` (named ``filename`` by its user) with the bundle; write the rows with
    their predictions to ``out`` (None: keep only the preview). Refused files write nothing.
    ``time_limit_s``: default the upload check's CPU seconds (TRAINBOARD_CHECK_CPU_S)."""
    from engine import bundle_predict as bp
    from jobs.datasets.check import CheckLimits

    try:
        header, rows = _read(source, filename)
    except UnicodeDecodeError as e:
        raise DataError(Message("data.not_utf8", where=Path(filename).name[:200])) from e
    limit = CheckLimits.from_env().cpu_s if time_limit_s is None else time_limit_s
    rows = _bounded(rows, Path(filename).name[:200], limit)
    bundle = bp.Bundle(bundle_dir)
    first: list[list[str]] = []
    out_header: list[str] = []
    tmp: Path | None = None
    f: Any = None
    writer: Any = None
    if out is not None:
        fd, name = tempfile.mkstemp(prefix=".predict-", suffix=".csv", dir=out.parent)
        tmp = Path(name)
        f = os.fdopen(fd, "w", newline="", encoding="utf-8")
        writer = csv.writer(f)

    def write(row: list[str]) -> None:
        if not out_header:
            out_header.extend(row)
        elif len(first) < preview:
            first.append(row)
        if writer is not None:
            writer.writerow(row)

    try:
        try:
            report = bp.predict_rows(bundle, header, rows, write)
        finally:
            if f is not None:
                f.close()
        if tmp is not None:
            if report.refused:
                tmp.unlink()
            else:
                os.replace(tmp, out)  # type: ignore[arg-type]
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    score = None
    if report.score is not None:
        params = {k: v for k, v in report.score.items() if k != "code"}
        score = Message(report.score["code"], **params)
    return Prediction(
        header=report.header,
        preview=first,
        problems=[Message(p.code, **p.params) for p in report.problems],
        warnings=[not p.refuses for p in report.problems],
        refused=report.refused,
        score=score,
        rows=report.rows,
        out=None if report.refused else out,
    )


def bundle_zip(bundle_dir: Path) -> bytes:
    """The bundle folder as one .zip (its files under ``bundle/``), for the download."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(bundle_dir.iterdir()):
            if path.is_file():
                z.write(path, f"{BUNDLE}/{path.name}")
    return buf.getvalue()


def export_onnx(bundle_dir: Path) -> dict[str, Any]:
    """``engine.bundle_onnx.export_onnx`` on the run that holds ``bundle_dir``."""
    from engine.bundle_onnx import export_onnx as export

    return export(bundle_dir.parent)


def bundle_state(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary's bundle entry (ok, rows, max_diff, why), or None for a run without one."""
    entry = (summary or {}).get("bundle")
    if not isinstance(entry, dict):
        return None
    out = dict(entry)
    with contextlib.suppress(KeyError, TypeError):
        if isinstance(out.get("why"), dict):
            out["why"] = Message.from_json(out["why"])
    return out
