"""Score a table with a Trainboard model bundle: needs only Python's standard library and torch.

    python predict.py new.csv                  # the rows, with the predictions added, to stdout
    python predict.py new.csv -o scored.csv    # … to a file (written only when it is complete)

This file is the bundle's ``predict.py``, copied as it is from Trainboard's
``engine/bundle_predict.py``; Trainboard's own ``trainboard predict`` and Predict page run the
same functions, so the three say the same things and give the same numbers.

What it does: the file is checked against ``schema.json`` (a missing input column is refused
by name; extra columns are ignored and listed; unseen categories, values outside the range
seen in training, empty cells and cells that can't be read each get one warning with a count,
and the rows are flagged in a ``flags`` column); each input column becomes one tensor for
``model.ts`` (numbers and yes/no as float64 with NaN for a gap, dates as float64 days since
1970-01-01 UTC, categories as int64 positions in the schema's list, -1 for none); then
``model.ts`` gives the class probabilities and the class, or the value in the target's units.
When the file has the target column, the score on it is reported with the run's metrics.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

# torch warns once when numpy is missing; this file never needs numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
import torch  # noqa: E402

SCRIPT, SCHEMA = "model.ts", "schema.json"  # not engine.limits.MODEL (model.pt): the bundle's own
PREDICTION, FLAGS = "prediction", "flags"
CHUNK = 16_384  # rows scored per model call: the memory a file needs is bounded by this
# The cells pandas reads as missing (pandas' STR_NA_VALUES), as Trainboard read the training file.
NA_CELLS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
# engine/data/columns.py's words and number rule (a test checks that the two agree).
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "是", "对", "對"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "否", "错", "錯"})
NUMBER_TEXT = re.compile(r"^[\s$€£¥₹+-]*\(?[\d.,\s]+\)?\s*%?\s*$")
NUMBER_JUNK = re.compile(r"[\s$€£¥₹,]")
_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?"
_YMD = re.compile(r"^(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2})日?)?" + _TIME + r"$")
_ABY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2,4})" + _TIME + r"$")
EPOCH = dt.datetime(1970, 1, 1)

# The English text of every message, the same as the codes' msgids in Trainboard's
# engine/catalogue.py (a test checks): Trainboard shows them translated, this file in English.
TEXTS = {
    "predict.missing_columns": "refused: the file lacks {count} column(s) the model needs: "
    "{columns}",
    "predict.extra_columns": "{count} column(s) the model does not use, ignored: {columns}",
    "predict.unseen": "{count} cell(s) hold a category not seen in training ({columns}): "
    "read as no category; rows flagged",
    "predict.out_of_range": "{count} value(s) outside the range seen in training ({columns}): "
    "rows flagged",
    "predict.empty": "{count} empty cell(s) ({columns}): filled as in training; rows flagged",
    "predict.unreadable": "{count} cell(s) that could not be read ({columns}): treated as "
    "empty; rows flagged",
    "predict.no_rows": "the file has no rows to predict",
    "predict.score_classification": "score on the file's {target} column ({rows} rows): "
    "accuracy {accuracy:.4f}, balanced accuracy {balanced:.4f}, macro-F1 {macro_f1:.4f}",
    "predict.score_regression": "score on the file's {target} column ({rows} rows): RMSE "
    "{rmse:.6g}, MAE {mae:.6g}, R² {r2:.4f}",
}
# What each flag in the flags column means: flag → the message that counts it.
FLAG_CODES = {
    "unseen": "predict.unseen",
    "range": "predict.out_of_range",
    "empty": "predict.empty",
    "unreadable": "predict.unreadable",
}


class Problem(NamedTuple):
    """One thing to tell the user: a message code, its params, and whether it refuses the file."""

    code: str
    params: dict[str, Any]
    refuses: bool = False

    def text(self) -> str:
        return TEXTS[self.code].format(**self.params)


class Report(NamedTuple):
    """What scoring a file found: the output header, the problems, the score (or None), the
    number of rows scored, and whether the file was refused (then nothing was written)."""

    header: list[str]
    problems: list[Problem]
    score: dict[str, Any] | None
    rows: int
    refused: bool


class Bundle:
    """A bundle folder: its schema and its TorchScript model."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.schema: dict[str, Any] = json.loads((self.folder / SCHEMA).read_text("utf-8"))
        with warnings.catch_warnings():
            # torch 2.13 calls TorchScript deprecated; it still loads and runs it
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(self.folder / SCRIPT), map_location="cpu")
        self.model.eval()

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return self.schema["inputs"]

    @property
    def classes(self) -> list[str] | None:
        return self.schema["output"].get("classes")

    def output_header(self) -> list[str]:
        probs = [f"prob_{c}" for c in self.classes] if self.classes else []
        return [PREDICTION, *probs, FLAGS]


# ---- cells → values, one kind at a time


def _missing(cell: str) -> bool:
    return cell.strip() in NA_CELLS


def read_number(cell: str) -> float | None:
    """A number as Trainboard read it in training: plain, or written as text ("1,234", "$5",
    "12%" → 0.12, "(3)" → -3). None when the cell is no number."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        if not NUMBER_TEXT.match(text):
            return None
        cleaned = NUMBER_JUNK.sub("", text)
        negative = cleaned.startswith("(") and cleaned.endswith(")")
        percent = cleaned.endswith("%")
        try:
            value = float(cleaned.strip("()%"))
        except ValueError:
            return None
        value = -value if negative else value
        value = value / 100 if percent else value
    return value if math.isfinite(value) else None


def read_day(cell: str, dayfirst: bool) -> float | None:
    """A date (and time) as days since 1970-01-01 UTC, with the time of day as the fraction:
    ISO 8601 (with or without a time zone), yyyy/mm/dd, yyyy年m月d日, yyyy-mm, and dd/mm/yyyy or
    mm/dd/yyyy as training read them (``dayfirst``). None when the cell is no such date."""
    text = cell.strip()
    when: dt.datetime | None = None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        for pattern, order in ((_YMD, "ymd"), (_ABY, "aby")):
            m = pattern.match(text)
            if not m:
                continue
            a, b, c = m.group(1), m.group(2), m.group(3)
            if order == "ymd":
                y, mo, d = int(a), int(b), int(c or 1)
            else:
                y = int(c) + (2000 if len(c) == 2 and int(c) < 69 else 1900 if len(c) == 2 else 0)
                mo, d = (int(b), int(a)) if dayfirst else (int(a), int(b))
                if mo > 12 >= d:  # 13/01/2020 in a month-first column: as pandas reads it
                    mo, d = d, mo
            h, mi, s, us = (m.group(i) for i in range(4, 8))
            try:
                when = dt.datetime(
                    y, mo, d, int(h or 0), int(mi or 0), int(s or 0), int((us or "0").ljust(6, "0"))
                )
            except ValueError:
                return None
            break
    if when is None:
        return None
    if when.tzinfo is not None:  # as training: converted to UTC, then the zone dropped
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - EPOCH).total_seconds() / 86400


def read_bool(cell: str, spec: dict[str, Any]) -> float | None:
    word = cell.strip().lower()
    words = spec.get("words") or {}
    if word in words:
        return float(words[word])
    if spec.get("standard_words", True):
        if word in TRUE_WORDS:
            return 1.0
        if word in FALSE_WORDS:
            return 0.0
    return read_number(cell) if spec.get("numbers") else None


def category_text(cell: str, spec: dict[str, Any]) -> str:
    """The cell as training compared it with the categories: stripped, and a number column
    chosen as categories written the way pandas wrote its values (1.0 for a float column)."""
    text = cell.strip()
    if spec.get("cells") == "float":
        value = read_number(text)
        if value is not None:
            return repr(value)
    elif spec.get("cells") == "int":
        value = read_number(text)
        if value is not None and value.is_integer():
            return str(int(value))
    return text


# ---- a chunk of rows → the model's inputs, the flags and the counts


class _Counts:
    def __init__(self) -> None:
        self.cells: dict[str, int] = {flag: 0 for flag in FLAG_CODES}
        self.columns: dict[str, list[str]] = {flag: [] for flag in FLAG_CODES}

    def add(self, flag: str, column: str) -> None:
        self.cells[flag] += 1
        if column not in self.columns[flag]:
            self.columns[flag].append(column)

    def problems(self) -> list[Problem]:
        return [
            Problem(
                FLAG_CODES[flag],
                {"count": self.cells[flag], "columns": ", ".join(self.columns[flag])},
            )
            for flag in FLAG_CODES
            if self.cells[flag]
        ]


def encode_rows(
    spec: list[dict[str, Any]],
    where: dict[str, int],
    rows: list[list[str]],
    counts: _Counts,
) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
    """The model's inputs for ``rows`` (``where``: column name → its position in a row), and
    each row's flags (``range:age``, ``unseen:colour`` …). Columns not in ``where`` are left
    out (the file was refused; only the counts are wanted)."""
    flags: list[list[str]] = [[] for _ in rows]
    inputs: dict[str, torch.Tensor] = {}
    for col in spec:
        name, kind = col["name"], col["kind"]
        if name not in where:
            continue
        j = where[name]
        if kind == "tensor":
            inputs[name] = _tensor_column(col, rows, j, flags, counts)
            continue
        lo, hi = col.get("min"), col.get("max")
        if kind == "number":
            values = _numbers(name, j, rows, lo, hi, flags, counts)
            inputs[name] = torch.tensor(values, dtype=torch.float64)
            continue
        values: list[float] = []
        vocab = {c: i for i, c in enumerate(col.get("categories") or [])}
        for i, row in enumerate(rows):
            cell = row[j] if j < len(row) else ""
            flag = None
            if _missing(cell):  # NaN, or no category (all zeros, as training encoded it)
                value: float | None = -1 if kind == "category" else math.nan
                flag = "empty"
            elif kind == "category":
                value = vocab.get(category_text(cell, col), -1)
                flag = "unseen" if value == -1 else None
            else:
                if kind == "number":
                    value = read_number(cell)
                elif kind == "date":
                    value = read_day(cell, col.get("dayfirst", False))
                else:
                    value = read_bool(cell, col)
                if value is None:
                    value, flag = math.nan, "unreadable"
                elif lo is not None and (value < lo or value > hi):
                    flag = "range"
            if flag is not None:
                flags[i].append(f"{flag}:{name}")
                counts.add(flag, name)
            values.append(value)  # type: ignore[arg-type]
        dtype = torch.int64 if kind == "category" else torch.float64
        inputs[name] = torch.tensor(values, dtype=dtype)
    return inputs, flags


def _numbers(
    name: str,
    j: int,
    rows: list[list[str]],
    lo: float | None,
    hi: float | None,
    flags: list[list[str]],
    counts: _Counts,
) -> list[float]:
    """A number column: the common cell (a plain, finite, in-range number) on a fast path;
    every other cell as :func:`encode_rows` reads it."""
    values: list[float] = []
    lo = -math.inf if lo is None else lo
    hi = math.inf if hi is None else hi
    for i, row in enumerate(rows):
        cell = row[j] if j < len(row) else ""
        try:
            value = float(cell)
            if lo <= value <= hi:  # NaN and the infinities fail this
                values.append(value)
                continue
        except ValueError:
            pass
        if _missing(cell):
            value, flag = math.nan, "empty"
        else:
            read = read_number(cell)
            if read is None:
                value, flag = math.nan, "unreadable"
            else:
                value, flag = read, None if lo <= read <= hi else "range"
        if flag is not None:
            flags[i].append(f"{flag}:{name}")
            counts.add(flag, name)
        values.append(value)
    return values


def _tensor_column(
    col: dict[str, Any], rows: list[list[str]], first: int, flags: list[list[str]], counts: _Counts
) -> torch.Tensor:
    """An image's or a sequence's values, flattened over the columns x0, x1, … in the file."""
    shape = col["shape"]
    n = math.prod(shape)
    out = torch.full((len(rows), n), math.nan, dtype=torch.float32)
    for i, row in enumerate(rows):
        for k, cell in enumerate(row[first : first + n]):
            value = None if _missing(cell) else read_number(cell)
            if value is not None:
                out[i, k] = value
            elif "empty:x" not in flags[i]:
                flags[i].append("empty:x")
                counts.add("empty", col["name"])
    return out.view(len(rows), *shape)


def _columns_of(bundle: Bundle, header: list[str]) -> tuple[dict[str, int], list[str], list[str]]:
    """(input column → its position, the missing inputs, the extra columns)."""
    pos = {h.strip(): i for i, h in reversed(list(enumerate(header)))}
    target = bundle.schema["output"].get("target")
    names: list[str] = []
    where: dict[str, int] = {}
    for col in bundle.inputs:
        if col["kind"] == "tensor":  # x0 … x(n-1), in this order
            n = math.prod(col["shape"])
            first = pos.get("x0")
            if first is not None and header[first : first + n] == [f"x{k}" for k in range(n)]:
                where[col["name"]] = first
            else:
                names.append(f"x0 … x{n - 1}")
            continue
        if col["name"] in pos:
            where[col["name"]] = pos[col["name"]]
        else:
            names.append(col["name"])
    used = {col["name"] for col in bundle.inputs if col["kind"] != "tensor"}
    if any(col["kind"] == "tensor" for col in bundle.inputs):
        used |= {f"x{k}" for k in range(math.prod(bundle.inputs[0]["shape"]))}
    extra = [h for h in header if h.strip() not in used and h.strip() != target]
    return where, names, extra


def _shown(names: list[str], limit: int = 10) -> str:
    more = f" (+{len(names) - limit})" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def predict_rows(
    bundle: Bundle,
    header: list[str],
    rows: Iterable[list[str]],
    write: Callable[[list[str]], None] | None = None,
    chunk: int = CHUNK,
) -> Report:
    """Check ``rows`` (a table's cells, as text) against the schema and, unless a needed
    column is missing, predict them: ``write`` gets the output header, then each input row
    with its prediction, probabilities and flags. A refused file still has its cells counted,
    so every problem is reported at once, and ``write`` is never called."""
    where, missing, extra = _columns_of(bundle, header)
    problems: list[Problem] = []
    if missing:
        problems.append(
            Problem(
                "predict.missing_columns",
                {"count": len(missing), "columns": _shown(missing)},
                True,
            )
        )
    if extra:
        problems.append(
            Problem("predict.extra_columns", {"count": len(extra), "columns": _shown(extra)})
        )
    refused = bool(missing)
    out_header = [*header, *bundle.output_header()]
    if not refused and write is not None:
        write(out_header)
    counts = _Counts()
    scorer = _Scorer(bundle, header)
    n = 0
    for block in _chunks(rows, chunk):
        inputs, flags = encode_rows(bundle.inputs, where, block, counts)
        n += len(block)
        if refused:
            continue
        out, pred = predict_inputs(bundle, inputs)
        scorer.add(block, out, pred)
        lines = format_outputs(bundle, out, pred)
        if write is not None:
            for row, line, f in zip(block, lines, flags, strict=True):
                write([*row, *line, " ".join(f)])
    problems += counts.problems()
    if n == 0:
        problems.append(Problem("predict.no_rows", {}, True))
        refused = True
    score = None if refused else scorer.result()
    return Report(out_header, problems, score, n, refused)


def predict_inputs(bundle: Bundle, inputs: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    """model.ts on one chunk's inputs: (probabilities or values, class indices or values)."""
    with torch.no_grad():
        return bundle.model(inputs)


def format_outputs(bundle: Bundle, out: torch.Tensor, pred: torch.Tensor) -> list[list[str]]:
    """Each row's prediction (the class name, or the value at full precision) and its class
    probabilities, as text."""
    classes = bundle.classes
    if classes:
        names = [classes[int(i)] for i in pred.tolist()]
        probs = out.tolist()
        return [[name, *(f"{p:.8g}" for p in ps)] for name, ps in zip(names, probs, strict=True)]
    return [[repr(float(v))] for v in pred.tolist()]


def _chunks(rows: Iterable[list[str]], size: int) -> Iterator[list[list[str]]]:
    block: list[list[str]] = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue  # a blank line: no row (as pandas reads it)
        block.append(row)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


class _Scorer:
    """The score on the file's own target column, when it has one, with the run's test metrics:
    accuracy, balanced accuracy and macro-F1, or RMSE, MAE and R² in the target's units (rows
    without a target are skipped)."""

    def __init__(self, bundle: Bundle, header: list[str]) -> None:
        self.target = bundle.schema["output"].get("target")
        names = [h.strip() for h in header]
        self.col = names.index(self.target) if self.target in names else None
        self.classes = bundle.classes
        self.lookup = {c: i for i, c in enumerate(self.classes or [])}
        self.pairs: list[tuple[Any, Any]] = []

    def _label(self, cell: str) -> int | None:
        text = cell.strip()
        if text in self.lookup:
            return self.lookup[text]
        value = read_number(text)
        if value is None:
            return None
        key = str(int(value)) if value.is_integer() else repr(value)
        return self.lookup.get(key)

    def add(self, rows: list[list[str]], out: torch.Tensor, pred: torch.Tensor) -> None:
        if self.col is None:
            return
        for row, p in zip(rows, pred.tolist(), strict=True):
            cell = row[self.col] if self.col < len(row) else ""
            if _missing(cell):
                continue
            y = self._label(cell) if self.classes else read_number(cell)
            if y is not None:
                self.pairs.append((y, p))

    def result(self) -> dict[str, Any] | None:
        """The run's own test scores (class_scores, regression_scores below) on these rows."""
        if self.col is None or not self.pairs:
            return None
        n = len(self.pairs)
        ys = torch.tensor([y for y, _ in self.pairs])
        ps = torch.tensor([p for _, p in self.pairs])
        if self.classes:
            cm = confusion(ys, ps, len(self.classes))
            scores = class_scores(cm, self.classes)
            return {
                "code": "predict.score_classification",
                "target": self.target,
                "rows": n,
                "accuracy": sum(cm[i][i] for i in range(len(cm))) / n,
                "balanced": scores["test_balanced_accuracy"],
                "macro_f1": scores["test_macro_f1"],
            }
        errors = [p - y for y, p in self.pairs]
        scores = regression_scores(ps.double(), ys.double(), 1.0)
        r2 = scores["test_r2"]
        return {
            "code": "predict.score_regression",
            "target": self.target,
            "rows": n,
            "rmse": math.sqrt(math.fsum(e * e for e in errors) / n),
            "mae": scores["test_mae"],
            "r2": math.nan if r2 is None else r2,  # a constant target: no R² (shown as nan)
        }


# The run's own test scores (engine/train.py imports these): one home, here, because this file
# must run without Trainboard, and the Predict page, `trainboard predict` and Run detail then
# agree by construction.
def confusion(y: torch.Tensor, pred: torch.Tensor, c: int) -> list[list[int]]:
    """Rows: the true class, columns: the predicted one, in class_names order."""
    return torch.bincount(y * c + pred, minlength=c * c).reshape(c, c).tolist()


def class_scores(cm: list[list[int]], names: list[str] | None) -> dict[str, Any]:
    """Balanced accuracy, macro-F1 and per-class precision / recall / F1 / support from a
    confusion matrix (rows: true class, columns: predicted), as scikit-learn's
    ``balanced_accuracy_score`` and ``precision_recall_fscore_support`` define them (a test
    checks the two agree). Computed from the matrix the run already has, so scoring a run
    needs no scikit-learn import. A class with no true rows is left out of the averages, and a
    precision with no predicted rows counts as 0, as scikit-learn's ``zero_division=0``."""
    per_class, recalls, f1s = [], [], []
    for i, row in enumerate(cm):
        support = sum(row)
        predicted = sum(r[i] for r in cm)
        tp = row[i]
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {
                "class": names[i] if names else str(i),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": support,
                "predicted": predicted,
            }
        )
        if support:
            recalls.append(recall)
            f1s.append(f1)
    return {
        "test_balanced_accuracy": sum(recalls) / len(recalls) if recalls else None,
        "test_macro_f1": sum(f1s) / len(f1s) if f1s else None,
        "per_class": per_class,
    }


def regression_scores(pred: torch.Tensor, y: torch.Tensor, scale: float) -> dict[str, Any]:
    """RMSE is the run's metric already; MAE and R² in the target's own units."""
    err = (pred - y) * scale
    yy = y * scale
    ss_res = float((err**2).sum())
    ss_tot = float(((yy - yy.mean()) ** 2).sum())
    return {
        "test_mae": float(err.abs().mean()),
        "test_r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
    }


def read_csv(path: str | Path) -> tuple[list[str], Iterator[list[str]]]:
    """(header, rows) of a CSV or TSV file: a .tsv is tab-separated, a .txt sniffed, else
    commas; UTF-8, with or without Excel's BOM."""
    path = Path(path)
    f = path.open(newline="", encoding="utf-8-sig")
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    elif path.suffix.lower() == ".txt":
        head = f.read(64 * 1024)
        f.seek(0)
        try:
            delimiter = csv.Sniffer().sniff(head, delimiters="\t,;").delimiter
        except csv.Error:
            delimiter = "\t" if "\t" in head else ","
    else:
        delimiter = ","
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        f.close()
        return [], iter(())

    def rows() -> Iterator[list[str]]:
        with f:
            yield from reader

    return header, rows()


def predict_file(bundle: Bundle, source: str | Path, out: str | Path | None) -> Report:
    """Score the CSV ``source`` into ``out`` (None: standard output). The file appears whole
    or not at all: it is written next to ``out`` and renamed when complete."""
    header, rows = read_csv(source)
    if out is None:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        return predict_rows(bundle, header, rows, writer.writerow)
    target = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=".predict-", suffix=".csv", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            report = predict_rows(bundle, header, rows, csv.writer(f).writerow)
        if report.refused:
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report


def score_text(score: dict[str, Any]) -> str:
    return TEXTS[score["code"]].format(**score)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="predict.py", description="Predict a CSV file's rows with this bundle's model.ts."
    )
    parser.add_argument("file", help="a CSV (or TSV) file with the columns in schema.json")
    parser.add_argument("-o", "--out", help="write the scored rows here (default: stdout)")
    parser.add_argument(
        "--bundle", default=str(Path(__file__).resolve().parent), help="the bundle folder"
    )
    args = parser.parse_args(argv)
    bundle = Bundle(args.bundle)
    report = predict_file(bundle, args.file, args.out)
    for p in report.problems:
        print(("error: " if p.refuses else "warning: ") + p.text(), file=sys.stderr)
    if report.score is not None:
        print(score_text(report.score), file=sys.stderr)
    return 2 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
