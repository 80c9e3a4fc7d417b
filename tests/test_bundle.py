"""Issue 21: every finished run's bundle/ (model.ts, schema.json, example.csv, predict.py), its
parity check, and the acceptance test: predict.py in a virtual environment that has torch and
nothing else (no Trainboard, no numpy, no pandas) reproduces the run's test score."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine import bundle_predict as bp
from engine.api import prepare_for, run_training
from engine.auto import DataFacts
from engine.bundle import BUNDLE, date_features
from engine.catalogue import CATALOGUE
from engine.config import resolve_config
from engine.data import columns as engine_columns
from engine.data.loaders import load_dataset
from engine.faults import BUNDLE_STD_VAR, FaultHook
from engine.messages import Message
from engine.sink import MemorySink
from engine.vocab import EventKind
from tests.real_tables import export_tables

# name → (table, preset, settings): a single classifier, a regression, an ensemble, text
# categories (penguins: island, sex) and a date column (Seattle weather)
CASES = {
    "classification": ("iris", "quick", []),
    "regression": ("diabetes", "quick", []),
    "ensemble": ("wine", "ensemble", ["ensemble.members=3", "train.epochs=15"]),
    "categories": ("penguins", "quick", []),
    "date": ("weather", "quick", []),
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str | None]]:
    return export_tables(tmp_path_factory.mktemp("tables"))


def train_run(
    tables: dict, name: str, preset: str, sets: list[str], run_dir: Path, faults=None
) -> tuple[dict, MemorySink, object, object]:
    """A real run through engine.api.run_training, as the CLI makes it: (summary, sink, raw,
    prepared data)."""
    source, target = tables[name]
    first = resolve_config(preset, dataset=source, target=target, overrides=sets)
    d = first.data
    raw = load_dataset(d.dataset, target=d.target, task=d.task, columns=d.columns)
    cfg = resolve_config(
        preset, dataset=source, target=target, overrides=sets, facts=DataFacts.from_raw(raw)
    )
    sink = MemorySink()
    result = run_training(cfg, sink=sink, run_dir=run_dir, resume=False, raw=raw, faults=faults)
    assert result.status == "finished"
    return result.summary, sink, raw, prepare_for(cfg, raw)


@pytest.fixture(scope="module")
def runs(tables, tmp_path_factory) -> dict[str, tuple[Path, dict, object, object]]:
    out = {}
    for case, (name, preset, sets) in CASES.items():
        if name not in tables:
            pytest.skip(f"{name} is not installed (the test extra)")
        run_dir = tmp_path_factory.mktemp(case)
        summary, sink, raw, data = train_run(tables, name, preset, sets, run_dir)
        out[case] = (run_dir, summary, raw, data, sink)
    return out


def _torch_requirements() -> set[str]:
    """torch and the distributions it requires, transitively (extras left out)."""
    seen: set[str] = set()
    todo = ["torch"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0])
    return seen


@pytest.fixture(scope="session")
def torch_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no site packages of its own) whose only packages are torch
    and what torch requires: symlinks to this environment's copies, found from the
    distributions' file lists, on the path through one .pth file."""
    root = tmp_path_factory.mktemp("torch-only")
    only = root / "site"
    only.mkdir()
    for name in _torch_requirements():
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        tops = {f.parts[0] for f in files if not f.parts[0].endswith((".dist-info", ".."))}
        for top in tops:
            path = Path(metadata.distribution(name).locate_file(top))
            if top.endswith(".pth") or top == "__pycache__" or not path.exists():
                continue
            if not (only / top).exists():
                (only / top).symlink_to(path)
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "torch_only.pth").write_text(f"{only}\n")
    # Nothing of Trainboard, numpy or pandas is importable there; torch is.
    for module in ("engine", "jobs", "numpy", "pandas"):
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, cwd=root)
        assert probe.returncode != 0, module
    return python


def _test_rows(raw, data, path: Path) -> Path:
    raw.frame.iloc[data.rows["test"]].to_csv(path, index=False)
    return path


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("case", list(CASES))
def test_predict_py_without_trainboard_reproduces_the_test_score(
    case: str, runs, torch_only_python: Path, tmp_path: Path
) -> None:
    run_dir, summary, raw, data, _sink = runs[case]
    bundle = run_dir / BUNDLE
    assert summary["bundle"]["ok"], summary["bundle"]
    assert {p.name for p in bundle.iterdir()} == {
        "model.ts",
        "schema.json",
        "example.csv",
        "predict.py",
        "README.md",
    }
    rows_csv = _test_rows(raw, data, tmp_path / "test_rows.csv")
    out = tmp_path / "scored.csv"
    done = subprocess.run(
        [torch_only_python, str(bundle / "predict.py"), str(rows_csv), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header, rows = _read(out)
    assert len(rows) == summary["test_rows"]
    truth = header.index(data.target)
    pred = header.index(bp.PREDICTION)
    if data.task == "classification":
        right = sum(r[truth] == r[pred] for r in rows)
        # the same rows right as the run's own test accuracy (a float32 share of the rows)
        assert right == round(summary["test_metric"] * len(rows))
        assert "accuracy" in done.stderr
    else:
        err = [float(r[pred]) - float(r[truth]) for r in rows]
        rmse = math.sqrt(math.fsum(e * e for e in err) / len(err))
        assert rmse == pytest.approx(summary["test_metric"], abs=1e-6, rel=0), (rmse, summary)
        assert "RMSE" in done.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_prediction_scores_on_the_test_rows_are_the_runs_test_scores(
    case: str, runs, tmp_path: Path
) -> None:
    """The Predict page and `trainboard predict` score a file with the target column with the
    run's own test metrics (one home: engine.bundle_predict's class_scores and
    regression_scores): on the run's test rows they are the scores Run detail shows."""
    run_dir, summary, raw, data, _sink = runs[case]
    rows_csv = _test_rows(raw, data, tmp_path / "test_rows.csv")
    report = bp.predict_file(bp.Bundle(run_dir / BUNDLE), rows_csv, tmp_path / "out.csv")
    score = report.score
    assert score is not None and score["rows"] == summary["test_rows"]
    if data.task == "classification":
        assert score["accuracy"] == pytest.approx(summary["test_metric"], abs=1e-6)
        assert score["balanced"] == pytest.approx(summary["test_balanced_accuracy"], abs=1e-12)
        assert score["macro_f1"] == pytest.approx(summary["test_macro_f1"], abs=1e-12)
        assert "macro-F1" in bp.score_text(score)
    else:
        assert score["rmse"] == pytest.approx(summary["test_metric"], abs=1e-6, rel=0)
        # the run scores in float32 (its tensors), the file in float64: a float32's rounding
        assert score["mae"] == pytest.approx(summary["test_mae"], rel=1e-6)
        assert score["r2"] == pytest.approx(summary["test_r2"], rel=1e-6)
        assert "R²" in bp.score_text(score)


def test_bundle_records_its_parity_as_an_event_and_in_the_schema(runs) -> None:
    run_dir, summary, _raw, data, sink = runs["ensemble"]
    (event,) = sink.kinds(EventKind.BUNDLE)
    assert event["data"]["ok"] and event["data"]["rows"] == summary["test_rows"]
    assert event["message"].code == "event.bundle_checked"
    assert event["data"]["max_diff"] <= 1e-5
    schema = json.loads((run_dir / BUNDLE / "schema.json").read_text())
    assert schema["members"] == 3
    assert schema["output"]["classes"] == data.class_names
    assert schema["versions"]["torch"] == torch.__version__
    assert schema["parity"]["rows"] == summary["test_rows"]
    example = pd.read_csv(run_dir / BUNDLE / "example.csv")
    assert len(example) == 5 and {"prediction", "flags"} <= set(example.columns)


def test_schema_names_the_categories_and_the_date_rule(runs) -> None:
    schema = json.loads((runs["categories"][0] / BUNDLE / "schema.json").read_text())
    kinds = {c["name"]: c for c in schema["inputs"]}
    assert kinds["island"]["kind"] == "category"
    assert set(kinds["island"]["categories"]) == {"Biscoe", "Dream", "Torgersen"}
    date = json.loads((runs["date"][0] / BUNDLE / "schema.json").read_text())
    (d,) = [c for c in date["inputs"] if c["kind"] == "date"]
    assert d["first"].startswith("20") and d["min"] < d["max"]


def test_parity_fails_when_the_bundle_standardization_is_broken(tables, tmp_path) -> None:
    """The test's fault scales the bundle's standard deviations by 1.5: model.ts then
    disagrees with the run, the check says so, and no bundle is left."""
    assert FaultHook.from_env({BUNDLE_STD_VAR: "1.5"}).bundle_std == 1.5
    summary, sink, _raw, _data = train_run(
        tables, "iris", "quick", [], tmp_path, faults=FaultHook(bundle_std=1.5)
    )
    assert not summary["bundle"]["ok"]
    assert summary["bundle"]["why"]["code"] in ("bundle.classes_differ", "bundle.probs_differ")
    (event,) = sink.kinds(EventKind.BUNDLE)
    assert event["message"].code == "event.bundle_failed"
    assert not (tmp_path / BUNDLE).exists()
    assert (tmp_path / "model.pt").exists()


def test_a_file_with_a_missing_column_an_unseen_category_and_an_out_of_range_value(
    runs, tmp_path
) -> None:
    run_dir, _summary, raw, data, _sink = runs["categories"]
    frame = raw.frame.iloc[data.rows["train"][:6]].copy()  # inside the range
    frame = frame.drop(columns=["bill_depth_mm"])
    frame.loc[frame.index[0], "island"] = "Atlantis"
    frame.loc[frame.index[1], "body_mass_g"] = 99_999.0
    frame["note"] = "extra"
    source = tmp_path / "new.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "scored.csv"
    report = bp.predict_file(bp.Bundle(run_dir / BUNDLE), source, out)
    codes = {p.code: p for p in report.problems}
    assert report.refused and codes["predict.missing_columns"].refuses
    assert codes["predict.missing_columns"].params["columns"] == "bill_depth_mm"
    assert codes["predict.unseen"].params == {"count": 1, "columns": "island"}
    assert codes["predict.out_of_range"].params == {"count": 1, "columns": "body_mass_g"}
    assert "note" in codes["predict.extra_columns"].params["columns"]
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_flags_mark_the_rows_and_the_file_is_scored(runs, tmp_path) -> None:
    run_dir, _summary, raw, data, _sink = runs["categories"]
    frame = raw.frame.iloc[data.rows["test"][:4]].copy()
    frame.loc[frame.index[0], "island"] = "Atlantis"
    frame.loc[frame.index[2], "body_mass_g"] = None
    source = tmp_path / "new.csv"
    frame.to_csv(source, index=False)
    report = bp.predict_file(bp.Bundle(run_dir / BUNDLE), source, tmp_path / "out.csv")
    assert not report.refused and report.score["rows"] == 4
    header, rows = _read(tmp_path / "out.csv")
    flags = [r[header.index(bp.FLAGS)] for r in rows]
    assert flags[0] == "unseen:island" and flags[2] == "empty:body_mass_g"
    assert flags[1] == "" or "range" in flags[1]
    assert {f"prob_{c}" for c in data.class_names} <= set(header)


def test_date_features_match_the_engine_encoding() -> None:
    """model.ts's calendar (days since 1970 → year, month, weekday, day of year, hour) against
    pandas' on dates from 1901 to 2099, leap days and times of day included."""
    rng = np.random.default_rng(0)
    seconds = rng.integers(-2_150_000_000, 4_000_000_000, 3000)
    stamps = pd.Series(pd.to_datetime(seconds, unit="s"))
    stamps = pd.concat(
        [
            stamps,
            pd.Series(pd.to_datetime(["2000-02-29 00:00", "2024-12-31 23:59", "1970-01-01 00:00"])),
        ]
    ).reset_index(drop=True)
    col = engine_columns.Column("d", "date", Message("column.date"), has_time=True)
    expected, _names = engine_columns.encode(pd.DataFrame({"d": stamps}), [col], "t")
    days = (stamps - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400
    got = date_features(torch.tensor(days.to_numpy(), dtype=torch.float64), True)
    np.testing.assert_array_equal(got[:, 0].float().numpy(), expected[:, 0])  # year
    np.testing.assert_allclose(got.float().numpy(), expected, atol=2e-6, rtol=0)


def test_predict_py_words_and_texts_agree_with_the_engine() -> None:
    assert bp.TRUE_WORDS == engine_columns.TRUE_WORDS
    assert bp.FALSE_WORDS == engine_columns.FALSE_WORDS
    assert bp.NUMBER_TEXT.pattern == engine_columns._NUMBER_TEXT.pattern
    for code, text in bp.TEXTS.items():
        assert CATALOGUE[code] == text, code


@pytest.mark.parametrize(
    ("cell", "value"),
    [("1,234", 1234.0), ("$5", 5.0), ("12%", 0.12), ("(3)", -3.0), ("?", None), ("2.5", 2.5)],
)
def test_numbers_read_as_the_engine_reads_them(cell: str, value: float | None) -> None:
    parsed = engine_columns.parse_numbers(pd.Series([cell]))[0].iloc[0]
    assert bp.read_number(cell) == (None if pd.isna(parsed) else parsed) == value
