"""Issue 21: ``export RUN --format onnx`` gives the same predictions as model.ts on the test rows
(onnxruntime against TorchScript): categories as int64 inputs, a date column's calendar."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from engine import bundle_predict as bp
from engine.bundle import BUNDLE
from engine.bundle_onnx import ONNX, ExportError, export_onnx
from tests.test_bundle import tables, train_run  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "preset"), [("penguins", "quick"), ("weather", "quick")])
def test_onnx_export_predicts_what_model_ts_predicts_on_the_test_rows(
    tables,  # noqa: F811
    tmp_path,
    name: str,
    preset: str,
) -> None:
    if name not in tables:
        pytest.skip(f"{name} is not installed (the test extra)")
    summary, _sink, raw, data = train_run(tables, name, preset, ["train.epochs=3"], tmp_path)
    assert summary["bundle"]["ok"]
    if name == "penguins":  # the command, on the bundle's example rows
        done = subprocess.run(
            [sys.executable, "-m", "jobs.cli", "export", str(tmp_path), "--format", "onnx"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        assert "onnxruntime gives model.ts's predictions on 5 rows" in done.stdout
        (tmp_path / BUNDLE / ONNX).unlink()
    text = raw.frame.iloc[data.rows["test"]].to_csv(index=False)
    header, *rows = list(csv.reader(io.StringIO(text)))
    done = export_onnx(tmp_path, rows=(header, rows))
    assert done["rows"] == summary["test_rows"] and done["max_diff"] <= 1e-5
    onnx_file = tmp_path / BUNDLE / ONNX
    assert onnx_file.exists()
    # the same inputs as model.ts: one per schema column, named as there
    bundle = bp.Bundle(tmp_path / BUNDLE)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [c["name"] for c in bundle.inputs]
    where, _missing, _extra = bp._columns_of(bundle, header)
    inputs, _flags = bp.encode_rows(bundle.inputs, where, rows, bp._Counts())
    probs, classes = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    ts_probs, ts_classes = bp.predict_inputs(bundle, inputs)
    np.testing.assert_array_equal(classes, ts_classes.numpy())
    np.testing.assert_allclose(probs, ts_probs.numpy(), atol=1e-5, rtol=0)


def test_export_without_a_bundle_is_refused(tmp_path) -> None:
    with pytest.raises(ExportError) as e:
        export_onnx(tmp_path)
    assert e.value.code == "export.no_bundle"
