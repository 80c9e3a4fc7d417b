"""``trainboard export RUN --format onnx``: the bundle's pipeline as ``model.onnx``, checked.

torch's exporter (``torch.onnx.export(..., dynamo=True)``: torch.export, then onnxscript)
writes the same pipeline as ``model.ts`` (engine.bundle.Pipeline, rebuilt from ``model.pt`` and
the bundle's ``schema.json``) with the same inputs: one array per input column, named as in
the schema (numbers, yes/no and dates float64, categories int64 positions), and two outputs
(probabilities and class index, or the value twice). onnxruntime then runs it on rows the
bundle has (its ``example.csv``, or the rows a caller gives, such as the test split) and its
outputs must match ``model.ts``'s: the same classes, probabilities or values within 1e-5.

Needs the optional extra ``.[onnx]`` (onnx, onnxscript, onnxruntime); without it the export
is refused with a message saying so.
"""

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine import bundle_predict as bp
from engine.bundle import BUNDLE, PARITY_TOL, Pipeline, _members
from engine.config import Config
from engine.data.prepare import Preprocessor
from engine.errors import EngineError
from engine.limits import MODEL
from engine.messages import Message

ONNX = "model.onnx"
OPSET = 18


class ExportError(EngineError):
    """The export was refused or failed; the message says why."""


@dataclass
class _Shapes:
    """What engine.bundle._members needs to rebuild the members (a Prepared's fields)."""

    task: str
    n_classes: int | None
    input_shape: tuple[int, ...]
    modality: str


def pipeline_of(run_dir: Path, schema: dict[str, Any]) -> Pipeline:
    """The eager pipeline ``model.ts`` was scripted from, rebuilt from the run's files."""
    model = torch.load(run_dir / MODEL, map_location="cpu", weights_only=True)
    classes = model.get("class_names")
    shapes = _Shapes(
        task=model["task"],
        n_classes=len(schema["output"].get("classes") or []) or None,
        input_shape=tuple(model["input_shape"]),
        modality=model["preprocessor"].get("modality", "tabular"),
    )
    return Pipeline(
        schema["inputs"],
        Preprocessor.from_state_dict(model["preprocessor"]),
        _members(Config.from_dict(model["config"]), shapes, model),
        task=model["task"],
        class_names=classes,
        y_mean=model.get("y_mean"),
        y_std=model.get("y_std"),
    ).eval()


def _inputs(bundle: bp.Bundle, header: list[str], rows: list[list[str]]) -> dict[str, Any]:
    where, missing, _extra = bp._columns_of(bundle, header)
    if missing:
        raise ExportError(Message("bundle.columns_missing", columns=", ".join(missing)))
    inputs, _flags = bp.encode_rows(bundle.inputs, where, rows, bp._Counts())
    return inputs


def export_onnx(
    run_dir: Path,
    out: Path | None = None,
    rows: tuple[list[str], list[list[str]]] | None = None,
) -> dict[str, Any]:
    """Write ``model.onnx`` (default: into the run's bundle folder) and check it against
    model.ts with onnxruntime on ``rows`` (header, cells; default: the bundle's example.csv).
    Returns {"path", "rows", "max_diff", "seconds", "bytes"}; raises :class:`ExportError`."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ExportError(Message("export.no_onnx")) from e
    folder = run_dir / BUNDLE
    if not (folder / bp.SCRIPT).exists():
        raise ExportError(Message("export.no_bundle"))
    t0 = time.perf_counter()
    bundle = bp.Bundle(folder)
    if rows is None:
        header, example = bp.read_csv(folder / "example.csv")
        rows = (header, list(example))
    inputs = _inputs(bundle, *rows)
    pipeline = pipeline_of(run_dir, bundle.schema)
    target = out or folder / ONNX
    names = list(inputs)
    outputs = ["probabilities", "class_index"] if bundle.classes else ["value", "prediction"]
    batch = torch.export.Dim("rows")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(
            pipeline,
            (),
            str(target),
            kwargs={"inputs": inputs},
            input_names=names,
            output_names=outputs,
            dynamic_shapes={"inputs": {n: {0: batch} for n in names}},
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: inputs[n].numpy() for n in names})
    want = bp.predict_inputs(bundle, inputs)
    diff = float(abs(torch.from_numpy(got[0]).double() - want[0].double()).max())
    if not bundle.classes:
        diff /= float(bundle.schema["output"].get("std") or 1.0)
    same = bool((torch.from_numpy(got[1]) == want[1]).all()) if bundle.classes else True
    if not same or not diff <= PARITY_TOL or math.isnan(diff):
        target.unlink(missing_ok=True)
        raise ExportError(Message("export.differs", rows=len(rows[1]), diff=diff, tol=PARITY_TOL))
    return {
        "path": str(target),
        "rows": len(rows[1]),
        "max_diff": diff,
        "seconds": round(time.perf_counter() - t0, 3),
        "bytes": target.stat().st_size,
    }
