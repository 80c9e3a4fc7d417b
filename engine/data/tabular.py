"""Turning a table (or a bare target array) into features and an encoded target.

The task rule (``task="auto"``), documented in docs/data.md:

* a text, boolean or categorical target is **classification**;
* a numeric target is classification when every value is a whole number, there are at most
  ``MAX_AUTO_CLASSES`` (20) distinct values, and the distinct values are few next to the rows:
  at most 5 % of the row count (but 2 distinct values always count as classes);
* everything else is **regression**.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.data.base import TASKS, DataError, RawDataset, warning
from engine.data.columns import USED, Column, column_pass, encode
from engine.messages import Message

TARGET_NAMES = ("target", "label", "y", "class")
MAX_AUTO_CLASSES = 20
MAX_CLASSES = 1000


def is_text(s: pd.Series) -> bool:
    """True for a column that is neither numeric nor boolean (text, categorical, dates)."""
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def pick_target(columns: list[str], target: str | None, where: str) -> str:
    """The target column: ``target`` if given, else target/label/y/class, else the last one."""
    if target is not None:
        if target in columns:
            return target
        folded = [c for c in columns if str(c).lower() == target.lower()]
        if len(folded) == 1:
            return folded[0]
        shown = ", ".join(repr(str(c)) for c in columns[:20])
        more = Message("data.more_columns", count=len(columns) - 20) if len(columns) > 20 else ""
        raise DataError(
            Message("data.no_target_column", where=where, target=target, columns=shown, more=more)
        )
    for name in TARGET_NAMES:
        for c in columns:
            if str(c).lower() == name:
                return c
    return columns[-1]


# Names people give the column to predict, in English and Chinese (both scripts), matched
# whole after case-folding and stripping spaces, underscores and a BOM.
TARGET_WORDS = frozenset(
    {
        *TARGET_NAMES,
        "labels",
        "classes",
        "outcome",
        "result",
        "category",
        "species",
        "diagnosis",
        "标签",
        "標籤",
        "类别",
        "類別",
        "目标",
        "目標",
        "分类",
        "分類",
        "结果",
        "結果",
    }
)
# Names that say "a date or a time, or a running number": never the thing to predict by default.
NOT_TARGET_WORDS = frozenset(
    {"id", "index", "date", "time", "timestamp", "datetime", "year", "month", "day", "日期", "年份"}
)


def _word(c: Any) -> str:
    return str(c).replace("\ufeff", "").strip().lower().replace(" ", "").replace("-", "_")


def _looks_unfit(s: pd.Series) -> Message | None:
    """Why a column is a poor guess for the target (an ID, a date, free text), or None."""
    v = s.dropna()
    n = len(v)
    if n == 0 or v.nunique() <= 1:
        return None  # empty or constant: its own message ("empty in every row") says more
    name = _word(s.name)
    if name in NOT_TARGET_WORDS or name.endswith("_id") or name.endswith("id") and len(name) <= 4:
        return Message("unfit.id_or_date_name")
    if is_text(v):
        sample = v.astype(str).head(200)
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.9 and sample.str.contains(r"\d").mean() > 0.9:
            return Message("unfit.date")
        if v.nunique() > max(MAX_AUTO_CLASSES, 0.5 * n):
            return Message("unfit.text_or_id")
        return None
    if pd.api.types.is_numeric_dtype(v) and n > MAX_AUTO_CLASSES and v.nunique() == n:
        whole = np.all(np.mod(v.to_numpy(dtype="float64"), 1) == 0)
        if whole and (v.is_monotonic_increasing or v.is_monotonic_decreasing):
            return Message("unfit.running_number")
    return None


def guess_target(df: pd.DataFrame) -> tuple[Any, Message]:
    """The column a person would predict, and why in a few words, for a table whose target was
    not given: a column named like a label (target, label, class, outcome, 标签, 類別 …); else the
    last column, unless it looks like an ID, a date or free text (a table whose last column is
    ``year`` predicts its first column instead); else the first such-fit column from the end."""
    columns = list(df.columns)
    named = [c for c in columns if _word(c) in TARGET_WORDS]
    fit = [c for c in named if _looks_unfit(df[c]) is None]
    if fit or named:  # a column named like a label wins, even when its values look odd
        return (fit or named)[0], Message("target.named", name=str((fit or named)[0]))
    last, first = columns[-1], columns[0]
    why_not = _looks_unfit(df[last])
    if why_not is None:
        return last, Message("target.last")
    if _looks_unfit(df[first]) is None:
        return first, Message("target.first", name=str(last), kind=why_not)
    for c in reversed(columns[1:-1]):
        if _looks_unfit(df[c]) is None:
            return c, Message("target.not_unfit", name=str(last), kind=why_not)
    return last, Message("target.last")


def auto_task(values: np.ndarray) -> str:
    """Apply the documented rule to numeric, NaN-free target values."""
    n = len(values)
    if n == 0:
        return "regression"
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        return "regression"
    distinct = len(np.unique(values))
    if distinct <= MAX_AUTO_CLASSES and (distinct <= 2 or distinct <= 0.05 * n):
        return "classification"
    return "regression"


def _whole(s: pd.Series) -> bool:
    """Every value a finite whole number (an infinite cell is its own error, later)."""
    v = s.dropna().to_numpy(dtype="float64")
    return bool(np.isfinite(v).all()) and bool(np.all(np.mod(v, 1) == 0))


CLEAR_LEAD = 1.5  # a guess this far ahead of the runner-up needs no question


def target_candidates(df: pd.DataFrame, guessed: Any) -> tuple[list[dict[str, Any]], bool]:
    """The three columns a person would most likely predict, best first (the guess is always
    first), each with why, and whether the guess is clearly ahead. A column scores for a
    label-like name (+3), for being last (+1.5) or first (+1), for holding few classes (+1; a
    continuous number +0.5); IDs, dates, free text and constant columns are no candidates."""
    n = len(df.columns)
    scored: list[tuple[float, Any, Message]] = []
    for i, c in enumerate(df.columns):
        s = df[c]
        distinct = int(s.nunique(dropna=True))
        if distinct < 2 or _looks_unfit(s) is not None:
            continue
        score = 3.0 if _word(c) in TARGET_WORDS else 0.0
        score += 1.5 if i == n - 1 else 1.0 if i == 0 else 0.0
        few = distinct <= MAX_AUTO_CLASSES
        if is_text(s) or pd.api.types.is_bool_dtype(s):
            score += 1.0 if few else -1.0
            why = Message("target.classes", count=distinct)
        elif few and _whole(s):
            score += 1.0
            why = Message("target.classes", count=distinct)
        else:
            score += 0.5
            why = Message("target.quantity")
        scored.append((score, c, why))
    scored.sort(key=lambda t: (t[1] != guessed, -t[0]))
    top = scored[:3]
    clear = len(top) < 2 or top[0][0] - max(t[0] for t in top[1:]) >= CLEAR_LEAD
    return [
        {"name": str(c), "why": str(w), "why_msg": w.to_json(), "score": sc} for sc, c, w in top
    ], clear


def encode_target(
    s: pd.Series, task: str, name: str, where: str
) -> tuple[np.ndarray, str, list[str] | None]:
    """Encode NaN-free target values: (y, task, class_names)."""
    if task not in ("auto", *TASKS):
        raise DataError(Message("data.bad_task", value=task))
    text = is_text(s)
    is_bool = pd.api.types.is_bool_dtype(s)
    if text:
        values = s.astype(str).to_numpy()
    else:
        values = s.to_numpy(dtype="float64")
        if np.isinf(values).any():
            raise DataError(Message("data.target_infinite", where=where, name=name))
    if task == "auto":
        task = "classification" if text or is_bool else auto_task(values)
    if len(np.unique(values)) < 2:
        raise DataError(
            Message("data.target_constant", where=where, name=name, value=_plain(values[0]))
        )
    if task == "regression":
        if text:
            example = values[0]
            raise DataError(
                Message(
                    "data.target_text_regression", where=where, name=name, value=_plain(example)
                )
            )
        return values.astype(np.float32), task, None
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise DataError(
            Message(
                "data.too_many_classes",
                where=where,
                name=name,
                count=len(classes),
                limit=MAX_CLASSES,
            )
        )
    if text:
        names = [str(c) for c in classes]
    elif is_bool:
        names = ["False" if c == 0 else "True" for c in classes]
    else:
        names = [str(int(c)) if float(c).is_integer() else str(c) for c in classes]
    return y.astype(np.int64), task, names


def _plain(v: Any) -> str:
    """A cell value as people write it: 1 or 1.5 or 'yes', never numpy's np.float64(1.0)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return repr(v) if isinstance(v, str) else str(v)


def features_from_frame(
    df: pd.DataFrame, where: str, chosen: dict[str, str] | None = None
) -> tuple[np.ndarray, list[str], list[Column]]:
    """The column-type pass (``engine.data.columns``), then the used columns as features: NaN
    stays (``prepare`` imputes), inf is an error. Returns (x, feature names, columns)."""
    columns = column_pass(df, chosen, where)
    used = [c for c in columns if c.kind in USED]
    if not used and columns:  # every column an ID, free text or empty: say which
        shown = ", ".join(repr(c.name) for c in columns[:10])
        raise DataError(Message("data.only_ignored", where=where, columns=shown))
    x, names = encode(df, used, where)
    return x, names, columns


def dataset_from_frame(
    df: pd.DataFrame,
    *,
    source: str,
    target: str | None,
    task: str,
    columns: dict[str, str] | None = None,
) -> RawDataset:
    """A RawDataset from a table: pick the target, drop rows without one, encode the rest."""
    where = Path(source).name  # messages name the file, never the server's folders
    chosen = columns
    if df.shape[0] == 0:
        raise DataError(Message("data.no_rows", where=where))
    if df.shape[1] < 2:
        raise DataError(Message("data.one_column", where=where, count=int(df.shape[1])))
    columns = [c for c in df.columns]
    candidates: list[dict[str, Any]] = []
    clear = True
    if target is None:
        tcol, target_why = guess_target(df)
        candidates, clear = target_candidates(df, tcol)
    else:
        tcol, target_why = pick_target(columns, target, where), None
    t = df[tcol]
    keep = t.notna().to_numpy()
    warnings: list[dict[str, Any]] = []
    if not keep.all():
        dropped = int((~keep).sum())
        if dropped == len(df):
            raise DataError(Message("data.target_empty", where=where, name=str(tcol)))
        warnings.append(
            warning("T1", Message("report.no_target_rows", count=dropped, column=str(tcol)))
        )
    if not keep.all():
        # The report describes the rows that are used; the warning above counts the rest.
        df = df.loc[keep].reset_index(drop=True)
        t = df[tcol]
    y, task, class_names = encode_target(t, task, str(tcol), where)
    split, scol = split_column(df, tcol, where)
    x, names, kinds = features_from_frame(df.drop(columns=[tcol, *scol]), where, chosen)
    return RawDataset(
        x=x,
        y=y,
        modality="tabular",
        task=task,
        feature_names=names,
        class_names=class_names,
        source=source,
        target=str(tcol),
        frame=df,
        load_warnings=warnings,
        split=split,
        target_why=target_why,
        columns=[c.to_dict() for c in kinds],
        target_candidates=candidates,
        target_clear=clear,
    )


SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def split_column(df: pd.DataFrame, tcol: Any, where: str) -> tuple[np.ndarray | None, list[Any]]:
    """A column named ``split`` (any case, not the target) says which rows are train / val /
    test: (the normalised values, [that column]), or (None, []) when there is none. It is not
    a feature."""
    cols = [c for c in df.columns if str(c).lower() == "split" and c != tcol]
    if not cols:
        return None, []
    raw = df[cols[0]]
    names = raw.astype(str).str.strip().str.lower()
    mapped = names.map(SPLIT_ALIASES)
    bad = raw[mapped.isna() | raw.isna()]
    if len(bad):
        odd = ", ".join(repr(str(v)) for v in pd.unique(bad.astype(str))[:5])
        raise DataError(Message("data.split_values", where=where, values=odd, count=len(bad)))
    return mapped.to_numpy(dtype=object), cols[:1]
