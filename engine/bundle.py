"""A finished run's bundle: the model, its preprocessing and its schema, usable without Trainboard.

``bundle/`` beside ``model.pt`` holds:

* ``model.ts``: a TorchScript module, the whole pipeline from raw columns to outputs. It takes
  a dict with one tensor per input column (``schema.json``'s names): numbers and yes/no as
  float64 (NaN for a gap), dates as float64 days since 1970-01-01 UTC (the time of day as the
  fraction), categories as int64 positions in the column's category list (-1: none; its
  ``encode(column, texts)`` method maps text to them with the vocabulary it embeds). Inside:
  the one-hot vocabularies and the date features (``engine.data.columns.encode``), the fill
  values, log1p and standardization (``engine.data.prepare.Preprocessor``), every ensemble
  member, averaged (T14). It returns (class probabilities, class index) or (value, value) in
  the target's own units; ``class_names()`` names the classes. Images and sequences take one
  tensor, ``x``.
* ``schema.json``, ``example.csv`` (5 test rows with their expected outputs), ``predict.py``
  (``engine/bundle_predict.py``, stdlib + torch), ``README.md``.

The parity check: ``model.ts``, fed the raw test rows (written out as CSV and read back by
``predict.py``'s own code), must give the engine's own test predictions: the same classes and
probabilities within 1e-5 (regression: values within 1e-5 of the target's standard
deviation). The run records the result as a ``bundle`` event; a bundle that fails is removed,
and the event says why. docs/models.md says more.
"""

# No `from __future__ import annotations`: torch.jit.script reads Pipeline's annotations as
# real types.
import csv
import io
import json
import math
import platform
import shutil
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import bundle_predict as bp
from engine import nets
from engine.config import Config
from engine.data.columns import USED, Column, column_pass, parse_dates, parse_numbers
from engine.data.prepare import Preprocessor
from engine.data.tabular import split_column
from engine.limits import MODEL
from engine.messages import Message
from engine.models import build_model
from engine.sink import Sink
from engine.vocab import EventKind

BUNDLE = "bundle"
PARITY_TOL = 1e-5
EXAMPLE_ROWS = 5


class BundleError(Exception):
    """The bundle could not be built; ``args[0]`` is the Message saying why."""


# ---- the pipeline that model.ts holds


def days_from_civil(y: torch.Tensor) -> torch.Tensor:
    """Days from 1970-01-01 to 1 January of year ``y`` (float64, whole numbers): Howard
    Hinnant's days_from_civil for month 1, day 1, written with floor divisions so it exports to
    ONNX and keeps NaN (torch has no calendar)."""
    y = y - 1  # January counts in the previous March-based year
    era = torch.div(y, 400, rounding_mode="floor")
    yoe = y - era * 400
    doe = yoe * 365 + torch.div(yoe, 4, rounding_mode="floor")
    doe = doe - torch.div(yoe, 100, rounding_mode="floor") + 306
    return era * 146097 + doe - 719468


def date_features(days: torch.Tensor, has_time: bool) -> torch.Tensor:
    """The features ``engine.data.columns.encode`` makes of a date, from float64 days since
    1970-01-01: year, the days themselves, and month, weekday and day of year (and the hour)
    as sin/cos pairs, in its order and with its arithmetic (NaN stays NaN)."""
    z = torch.floor(days)
    zz = z + 719468  # Hinnant's civil_from_days
    era = torch.div(zz, 146097, rounding_mode="floor")
    doe = zz - era * 146097
    yoe = torch.div(
        doe
        - torch.div(doe, 1460, rounding_mode="floor")
        + torch.div(doe, 36524, rounding_mode="floor")
        - torch.div(doe, 146096, rounding_mode="floor"),
        365,
        rounding_mode="floor",
    )
    doy = doe - (
        365 * yoe
        + torch.div(yoe, 4, rounding_mode="floor")
        - torch.div(yoe, 100, rounding_mode="floor")
    )
    mp = torch.div(5 * doy + 2, 153, rounding_mode="floor")
    month = torch.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2).to(days.dtype)
    weekday = torch.remainder(z + 3, 7)  # 1970-01-01 was a Thursday; Monday is 0, as in pandas
    day_of_year = z - days_from_civil(year)
    parts = [year, days]
    periods = [(month - 1, 12.0), (weekday, 7.0), (day_of_year, 366.0)]
    if has_time:
        seconds = torch.round((days - z) * 86400)
        hour = torch.div(seconds, 3600, rounding_mode="floor")
        minute = torch.div(seconds - hour * 3600, 60, rounding_mode="floor")
        periods.append((hour + minute / 60, 24.0))
    for value, period in periods:
        angle = 2 * math.pi * value / period
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.stack(parts, 1)


class Pipeline(nn.Module):
    """Raw columns in, predictions out (see the module docstring)."""

    names: list[str]
    kinds: list[str]
    widths: list[int]
    times: list[bool]
    vocab: dict[str, list[str]]
    classes: list[str]

    def __init__(
        self,
        spec: list[dict[str, Any]],
        pre: Preprocessor,
        members: list[nn.Module],
        *,
        task: str,
        class_names: list[str] | None,
        y_mean: float | None,
        y_std: float | None,
    ) -> None:
        super().__init__()
        self.names = [c["name"] for c in spec]
        self.kinds = [c["kind"] for c in spec]
        self.widths = [len(c.get("categories") or []) for c in spec]
        self.times = [bool(c.get("has_time")) for c in spec]
        self.vocab = {c["name"]: list(c["categories"]) for c in spec if c["kind"] == "category"}
        self.classes = list(class_names or [])
        self.image = pre.modality == "image"
        self.classify = task == "classification"
        self.y_mean = float(y_mean or 0.0)
        self.y_std = float(y_std or 1.0)
        self.register_buffer("median", pre.median.clone())
        self.register_buffer("log1p_mask", pre.log1p_mask.clone())
        self.register_buffer("mean", pre.mean.clone())
        self.register_buffer("std", pre.std.clone())
        self.members = nn.ModuleList(members)

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """engine.data.columns.encode: float64 features in the training order, as float32."""
        blocks: list[torch.Tensor] = []
        for i in range(len(self.names)):
            v = inputs[self.names[i]]
            kind = self.kinds[i]
            if kind == "tensor":
                return v.to(torch.float32)
            if kind == "category":
                hot = v.to(torch.int64).unsqueeze(1) == torch.arange(self.widths[i])
                blocks.append(hot.to(torch.float64))
            elif kind == "date":
                blocks.append(date_features(v.to(torch.float64), self.times[i]))
            else:
                blocks.append(v.to(torch.float64).unsqueeze(1))
        return torch.cat(blocks, 1).to(torch.float32)

    def _shaped(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, 1, 1) if self.image else t

    def forward(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        # Preprocessor.transform: impute, log1p, standardize, with the training statistics
        x = self.features(inputs)
        x = torch.where(torch.isnan(x), self._shaped(self.median), x)
        x = torch.where(self._shaped(self.log1p_mask), torch.log1p(x.clamp(min=0)), x)
        x = (x - self._shaped(self.mean)) / self._shaped(self.std)
        outs = [m(x) for m in self.members]
        if self.classify:
            # T14: the members' probabilities, averaged (engine.nets.evaluate)
            probs = torch.stack([o.softmax(-1) for o in outs]).mean(0)
            return probs, probs.argmax(1)
        value = torch.stack(outs).mean(0).squeeze(-1).to(torch.float64)
        value = value * self.y_std + self.y_mean
        return value, value

    @torch.jit.export
    def class_names(self) -> list[str]:
        return self.classes

    @torch.jit.export
    def input_names(self) -> list[str]:
        return self.names

    @torch.jit.export
    def encode(self, column: str, texts: list[str]) -> torch.Tensor:
        """A category column's texts → the int64 positions ``forward`` takes (-1: unseen)."""
        words = self.vocab[column]
        codes: list[int] = []
        for t in texts:
            t = t.strip()
            codes.append(words.index(t) if t in words else -1)
        return torch.tensor(codes, dtype=torch.int64)


# ---- what the run knows → the pipeline's spec


def _frame(raw: Any) -> Any:
    """The table the run read (target included); a table from an .npz as one, from its
    features; None for images and sequences."""
    import pandas as pd

    if raw.modality != "tabular":
        return None
    if raw.frame is not None:
        return raw.frame
    frame = pd.DataFrame(raw.x.astype(np.float64), columns=list(raw.feature_names))
    y = raw.y if raw.class_names is None else np.asarray(raw.class_names, dtype=object)[raw.y]
    frame[raw.target or "target"] = y
    return frame


def _columns(cfg: Config, raw: Any, frame: Any) -> list[Column]:
    """The used columns with their vocabularies and date rules, as the loader made them."""
    if raw.frame is None:
        return [Column(n, "number", Message("column.number")) for n in raw.feature_names]
    target = raw.target
    tcol = next(c for c in frame.columns if str(c) == target)
    _split, scol = split_column(frame, tcol, "bundle")
    features = frame.drop(columns=[tcol, *scol])
    return [c for c in column_pass(features, cfg.data.columns, "bundle") if c.kind in USED]


def _feature_names(c: Column) -> list[str]:
    if c.kind == "category":
        return [f"{c.name}={k}" for k in c.categories]
    if c.kind == "date":
        parts = ["year", "days", "month.sin", "month.cos", "weekday.sin", "weekday.cos"]
        parts += ["day_of_year.sin", "day_of_year.cos"]
        parts += ["hour.sin", "hour.cos"] if c.has_time else []
        return [f"{c.name}.{p}" for p in parts]
    return [c.name]


def _spec(cfg: Config, raw: Any, data: Any, frame: Any) -> list[dict[str, Any]]:
    """One dict per input column: its kind, categories, date rule and training range."""
    import pandas as pd

    if frame is None:
        return [{"name": "x", "kind": "tensor", "shape": list(data.input_shape)}]
    columns = _columns(cfg, raw, frame)
    names = [n for c in columns for n in _feature_names(c)]
    if names != list(data.feature_names):
        raise BundleError(Message("bundle.features_differ"))
    train = data.rows["train"]
    spec: list[dict[str, Any]] = []
    for c in columns:
        item: dict[str, Any] = {"name": c.name, "kind": c.kind}
        s = frame[next(k for k in frame.columns if str(k) == c.name)]
        if c.kind == "category":
            item["categories"] = list(c.categories)
            if pd.api.types.is_float_dtype(s):
                item["cells"] = "float"
            elif pd.api.types.is_integer_dtype(s):
                item["cells"] = "int"
        if c.kind == "boolean":
            item |= _bool_rule(s)
        if c.kind in ("number", "date"):
            col = _values(s.iloc[train], c)
            col = col[~np.isnan(col)]
            if col.size:
                item["min"], item["max"] = float(col.min()), float(col.max())
        if c.kind == "date":
            item["dayfirst"] = c.dayfirst
            item["has_time"] = c.has_time
            if "min" in item:
                item["first"] = _iso(item["min"])
                item["last"] = _iso(item["max"])
        spec.append(item)
    return spec


def _values(s: Any, c: Column) -> np.ndarray:
    """A number or date column's training values in float64 (dates as days since 1970), read
    as ``engine.data.columns.encode`` reads them: the range predict.py compares cells with."""
    import pandas as pd

    if c.kind == "number":
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype="float64", na_value=np.nan)
        return parse_numbers(s)[0].to_numpy(dtype="float64", na_value=np.nan)
    d = s if pd.api.types.is_datetime64_any_dtype(s) else parse_dates(s, c.dayfirst)
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert(None)
    days = (d - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400
    return days.to_numpy(dtype="float64", na_value=np.nan)


def _bool_rule(s: Any) -> dict[str, Any]:
    """How ``engine.data.columns.encode`` read a yes/no column, for predict.py."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return {"numbers": True, "words": {"true": 1, "false": 0}}
    low = s.astype(str).str.strip().str.lower().where(s.notna()).dropna()
    known = low.isin(bp.TRUE_WORDS | bp.FALSE_WORDS)
    if known.all():
        return {"standard_words": True}
    words = sorted(low.unique())  # two other words (the user's choice): in sorted order
    return {"standard_words": False, "words": {w: i for i, w in enumerate(words)}}


def _iso(days: float) -> str:
    import datetime as dt

    return (bp.EPOCH + dt.timedelta(days=days)).isoformat()


def _members(cfg: Config, data: Any, model: dict[str, Any]) -> list[nn.Module]:
    """The saved members as plain modules, in eval mode (dropout off, T13)."""
    out = data.n_classes if data.task == "classification" else 1
    k = int(model.get("members", 1))
    state = model["net"]
    members = []
    with torch.random.fork_rng(devices=[]):  # building draws random weights: leave no trace
        for i in range(k):
            m = build_model(cfg.model, tuple(data.input_shape), out, data.modality, seed=0)
            own = state if k == 1 else {n: t[i] for n, t in state.items()}
            m.load_state_dict(own)
            members.append(m.eval())
    return members


def _engine_predictions(cfg: Config, data: Any, model: dict[str, Any]) -> torch.Tensor:
    """The engine's own test predictions with the saved weights, as ``score_test`` makes them:
    (rows, classes) probabilities, or (rows,) values in the target's units."""
    with torch.random.fork_rng(devices=[]):
        net = nets.build_net(cfg, data, torch.device("cpu"))
    net.load_state_dict(model["net"])
    net.train_mode(False)
    out = net.predict(data.x_test)
    if data.task == "classification":
        return out.softmax(-1).mean(0)
    return out.mean(0).squeeze(-1).to(torch.float64) * (data.y_std or 1.0) + (data.y_mean or 0.0)


# ---- writing and checking


def _test_table(frame: Any, rows: np.ndarray) -> tuple[list[str], list[list[str]]]:
    """The raw test rows as a CSV file holds them (pandas writes every float so that it reads
    back the same), read back with predict.py's reader."""
    text = frame.iloc[rows].to_csv(index=False)
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, list(reader)


def _tensor_table(raw: Any, rows: np.ndarray) -> tuple[list[str], list[list[str]]]:
    x = raw.x[rows].reshape(len(rows), -1).astype(np.float64)
    header = [f"x{k}" for k in range(x.shape[1])] + [raw.target or "target"]
    ys = raw.y[rows]
    names = raw.class_names
    cells = [[repr(float(v)) for v in r] for r in x]
    return header, [
        [*c, names[int(y)] if names else repr(float(y))] for c, y in zip(cells, ys, strict=True)
    ]


def check_parity(
    bundle: bp.Bundle, header: list[str], rows: list[list[str]], expected: torch.Tensor, task: str
) -> dict[str, Any]:
    """Feed the raw rows to model.ts through predict.py's code and compare with ``expected``
    (the engine's): {"ok", "rows", "max_diff", "why"}."""
    where, missing, _extra = bp._columns_of(bundle, header)
    if missing:
        why = Message("bundle.columns_missing", columns=", ".join(missing))
        return {"ok": False, "rows": len(rows), "max_diff": None, "why": why}
    inputs, _flags = bp.encode_rows(bundle.inputs, where, rows, bp._Counts())
    out, pred = bp.predict_inputs(bundle, inputs)
    n = len(rows)
    if task == "classification":
        diff = float((out.double() - expected.double()).abs().max()) if n else 0.0
        other = int((pred != expected.argmax(1)).sum())
        ok = other == 0 and diff <= PARITY_TOL
        why = None
        if other:
            why = Message("bundle.classes_differ", count=other, rows=n)
        elif not ok:
            why = Message("bundle.probs_differ", diff=diff, tol=PARITY_TOL)
    else:
        scale = float(bundle.schema["output"].get("std") or 1.0)
        diff = float((out.double() - expected.double()).abs().max()) / scale if n else 0.0
        ok = diff <= PARITY_TOL
        why = None if ok else Message("bundle.values_differ", diff=diff, tol=PARITY_TOL)
    if math.isnan(diff):
        ok, why = False, Message("bundle.values_differ", diff=diff, tol=PARITY_TOL)
    return {"ok": ok, "rows": n, "max_diff": diff, "why": why}


def _versions() -> dict[str, str]:
    try:
        trainboard = metadata.version("trainboard")
    except metadata.PackageNotFoundError:
        trainboard = "unknown"
    return {
        "trainboard": trainboard,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _schema(
    cfg: Config, data: Any, spec: list[dict[str, Any]], summary: dict[str, Any]
) -> dict[str, Any]:
    output: dict[str, Any] = {"target": data.target, "task": data.task}
    if data.task == "classification":
        output["classes"] = list(data.class_names or [str(i) for i in range(data.n_classes)])
        output["meaning"] = "class probabilities (one per class) and the predicted class"
    else:
        output["meaning"] = "the predicted value, in the target's own units"
        output["mean"], output["std"] = data.y_mean, data.y_std
    return {
        "format": 1,
        "modality": data.modality,
        "inputs": spec,
        "output": output,
        "metric": summary.get("metric"),
        "test_metric": summary.get("test_metric"),
        "test_rows": summary.get("test_rows"),
        "members": cfg.ensemble.members,
        "preset": cfg.preset,
        "dataset": cfg.data.dataset if cfg.data.dataset.startswith("builtin:") else None,
        "versions": _versions(),
    }


README = """# Trainboard model bundle: {target} ({task})

- Shell: `python predict.py new.csv -o scored.csv` (needs only Python and torch; checks the
  columns against schema.json, adds `prediction`{probs} and `flags`).
- Python: `m = torch.jit.load("model.ts"); probs, pred = m({{"column": tensor, ...}})`, one
  tensor per input column of schema.json (numbers float64, dates as days since 1970-01-01,
  categories as `m.encode("column", texts)`); `m.class_names()` names the classes.
- ONNX: `trainboard export RUN --format onnx` writes model.onnx with the same inputs, for
  onnxruntime (`session.run(None, {{"column": array, ...}})`).

Checked when it was made: model.ts on the {rows} raw test rows gave the run's own test
predictions (largest difference {diff:.2g}). Test {metric}: {score}.
"""


def write_bundle(
    cfg: Config,
    raw: Any,
    data: Any,
    summary: dict[str, Any],
    run_dir: Path,
    *,
    break_std: float | None = None,
) -> dict[str, Any]:
    """Build ``run_dir/bundle`` from ``model.pt`` and check it; returns what the run records
    (``ok``, ``rows``, ``max_diff``, ``why``, ``seconds``, ``bytes``). A bundle that fails the
    check is removed. ``break_std``: a test's fault, the standardization scaled by it."""
    t0 = time.perf_counter()
    folder = run_dir / BUNDLE
    tmp = run_dir / f".{BUNDLE}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)  # an older one (a resumed run) is stale now
    try:
        result = _write(cfg, raw, data, summary, run_dir, tmp, break_std)
        if result["ok"]:
            tmp.replace(folder)
            result["bytes"] = sum(f.stat().st_size for f in folder.iterdir())
    except BundleError as e:
        result = {"ok": False, "rows": 0, "max_diff": None, "why": e.args[0]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _write(
    cfg: Config,
    raw: Any,
    data: Any,
    summary: dict[str, Any],
    run_dir: Path,
    tmp: Path,
    break_std: float | None,
) -> dict[str, Any]:
    model = torch.load(run_dir / MODEL, map_location="cpu", weights_only=True)
    frame = _frame(raw)
    spec = _spec(cfg, raw, data, frame)
    pre = Preprocessor.from_state_dict(model["preprocessor"])
    if break_std is not None:
        pre.std = pre.std * break_std
    pipeline = Pipeline(
        spec,
        pre,
        _members(cfg, data, model),
        task=data.task,
        class_names=data.class_names,
        y_mean=data.y_mean,
        y_std=data.y_std,
    ).eval()
    tmp.mkdir(parents=True)
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated in favour of torch.export, whose .pt2 files
        # hold no vocabulary or class names and run in no C++ runtime yet; libtorch and
        # torch.jit.load still read model.ts (docs/models.md, "versions").
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(pipeline).save(str(tmp / bp.SCRIPT))
    schema = _schema(cfg, data, spec, summary)
    (tmp / bp.SCHEMA).write_text(json.dumps(schema, indent=2, ensure_ascii=False), "utf-8")
    bundle = bp.Bundle(tmp)
    test = data.rows["test"]
    header, rows = _test_table(frame, test) if frame is not None else _tensor_table(raw, test)
    expected = _engine_predictions(cfg, data, model)
    result = check_parity(bundle, header, rows, expected, data.task)
    if not result["ok"]:
        return result
    schema["parity"] = {"rows": result["rows"], "max_diff": result["max_diff"]}
    (tmp / bp.SCHEMA).write_text(json.dumps(schema, indent=2, ensure_ascii=False), "utf-8")
    with (tmp / "example.csv").open("w", newline="", encoding="utf-8") as f:
        bp.predict_rows(bundle, header, rows[:EXAMPLE_ROWS], csv.writer(f).writerow)
    shutil.copyfile(Path(bp.__file__), tmp / "predict.py")
    classes = schema["output"].get("classes")
    (tmp / "README.md").write_text(
        README.format(
            target=data.target,
            task=data.task,
            probs=" and one `prob_<class>` column per class" if classes else "",
            rows=result["rows"],
            diff=result["max_diff"],
            metric=summary.get("metric"),
            score=summary.get("test_metric"),
        ),
        "utf-8",
    )
    return result


def bundle_run(
    cfg: Config,
    raw: Any,
    data: Any,
    summary: dict[str, Any],
    run_dir: Path,
    sink: Sink,
    step: int,
    *,
    break_std: float | None = None,
) -> dict[str, Any]:
    """Write and check the bundle of a finished run, record a ``bundle`` event, and return the
    summary's ``bundle`` entry (the why as stored message JSON)."""
    if not (run_dir / MODEL).exists() or data.rows is None or data.x_test is None:
        return {"ok": False, "rows": 0, "why": Message("bundle.no_model").to_json()}
    try:
        result = write_bundle(cfg, raw, data, summary, run_dir, break_std=break_std)
    except Exception as e:  # noqa: BLE001 - the run is trained and saved: a bundle that can't
        # be built (torch.jit's own errors, a full disk) is reported, never fails the run
        why = Message("bundle.error", error=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        result = {"ok": False, "rows": 0, "max_diff": None, "why": why}
    if result["ok"]:
        message = Message("event.bundle_checked", rows=result["rows"], diff=result["max_diff"])
    else:
        message = Message("event.bundle_failed", why=result["why"])
    why = result.get("why")
    result["why"] = why.to_json() if isinstance(why, Message) else why
    sink.event(step, EventKind.BUNDLE, message, {**result, "tip": None})
    return result
