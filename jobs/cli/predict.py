"""A run's model, used (issue 21): ``predict RUN FILE [-o OUT]`` and ``export RUN --format onnx``.

RUN is a run id (this data directory's ``runs/<id>``), a run directory (``trainboard train
--out``'s) or a bundle directory. Both go through ``jobs.service``, as the Predict page does,
and say the same things: ``predict`` runs the bundle's own predict.py code.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run id, a run directory or a bundle directory")
    p.add_argument("file", help="the rows to predict: .csv, .tsv, .txt or .xlsx")
    p.add_argument("-o", "--out", help="write the scored rows here (default: standard output)")


def cmd_predict(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    source = Path(args.file)
    if not source.is_file():
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="trainboard-predict-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "scored.csv"
        try:
            result = service.predict_file(db, args.run, source, filename=source.name, out=out)
        except service.Refused as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for message, warning in zip(result.problems, result.warnings, strict=True):
            print(("warning: " if warning else "error: ") + str(message), file=sys.stderr)
        if result.score is not None:
            print(str(result.score), file=sys.stderr)
        if result.refused:
            return 2
        if not args.out:
            with out.open(encoding="utf-8") as f:
                shutil.copyfileobj(f, sys.stdout)
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run id or a run directory (its bundle/ is exported)")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (the default)")


def cmd_export(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        done = service.export_onnx(db, args.run)
    except service.Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{done['path']} ({done['bytes'] / 1024:.0f} KiB): onnxruntime gives model.ts's "
        f"predictions on {done['rows']} rows (largest difference {done['max_diff']:.2g})"
    )
    return 0
