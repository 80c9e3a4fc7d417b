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

from engine.data.base import TASKS, DataError, RawDataset

TARGET_NAMES = ("target", "label", "y", "class")
MAX_AUTO_CLASSES = 20
MAX_CLASSES = 1000
MAX_CATEGORIES = 50  # one-hot cap for a text feature column


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
        more = f" (and {len(columns) - 20} more)" if len(columns) > 20 else ""
        raise DataError(
            f"{where}: there is no target column {target!r}. Columns: {shown}{more}. "
            "Pick one of these as the target."
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


def _looks_unfit(s: pd.Series) -> str | None:
    """Why a column is a poor guess for the target (an ID, a date, free text), or None."""
    v = s.dropna()
    n = len(v)
    if n == 0 or v.nunique() <= 1:
        return None  # empty or constant: its own message ("empty in every row") says more
    name = _word(s.name)
    if name in NOT_TARGET_WORDS or name.endswith("_id") or name.endswith("id") and len(name) <= 4:
        return "named like an ID or a date"
    if is_text(v):
        sample = v.astype(str).head(200)
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.9 and sample.str.contains(r"\d").mean() > 0.9:
            return "a date"
        if v.nunique() > max(MAX_AUTO_CLASSES, 0.5 * n):
            return "free text or an ID (almost every row differs)"
        return None
    if pd.api.types.is_numeric_dtype(v) and n > MAX_AUTO_CLASSES and v.nunique() == n:
        whole = np.all(np.mod(v.to_numpy(dtype="float64"), 1) == 0)
        if whole and (v.is_monotonic_increasing or v.is_monotonic_decreasing):
            return "a running number (an ID)"
    return None


def guess_target(df: pd.DataFrame) -> tuple[Any, str]:
    """The column a person would predict, and why in a few words, for a table whose target was
    not given: a column named like a label (target, label, class, outcome, 标签, 類別 …); else the
    last column, unless it looks like an ID, a date or free text (a table whose last column is
    ``year`` predicts its first column instead); else the first such-fit column from the end."""
    columns = list(df.columns)
    named = [c for c in columns if _word(c) in TARGET_WORDS]
    fit = [c for c in named if _looks_unfit(df[c]) is None]
    if fit:
        return fit[0], f"its name, {str(fit[0])!r}, says it is the label"
    last, first = columns[-1], columns[0]
    why_not = _looks_unfit(df[last])
    if why_not is None:
        return last, "the last column (no column is named like a label)"
    if _looks_unfit(df[first]) is None:
        return first, f"the first column: the last one, {str(last)!r}, looks like {why_not}"
    for c in reversed(columns[1:-1]):
        if _looks_unfit(df[c]) is None:
            return (
                c,
                f"the last column that is not an ID, a date or free text ({str(last)!r} is {why_not})",
            )
    return last, "the last column (no column is named like a label)"


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


def encode_target(
    s: pd.Series, task: str, name: str, where: str
) -> tuple[np.ndarray, str, list[str] | None]:
    """Encode NaN-free target values: (y, task, class_names)."""
    if task not in ("auto", *TASKS):
        raise DataError(f"task must be one of 'auto', 'classification', 'regression', not {task!r}")
    text = is_text(s)
    is_bool = pd.api.types.is_bool_dtype(s)
    if text:
        values = s.astype(str).to_numpy()
    else:
        values = s.to_numpy(dtype="float64")
        if np.isinf(values).any():
            raise DataError(
                f"{where}: target column {name!r} holds infinite values; fix or remove those rows."
            )
    if task == "auto":
        task = "classification" if text or is_bool else auto_task(values)
    if len(np.unique(values)) < 2:
        raise DataError(
            f"{where}: target column {name!r} has the same value ({_plain(values[0])}) in every row, so there is "
            "nothing to learn. Pick another target column or add rows with other values."
        )
    if task == "regression":
        if text:
            example = values[0]
            raise DataError(
                f"{where}: target column {name!r} holds text (e.g. {_plain(example)}), so it can't be a "
                "regression target. Use task='classification' or pick a numeric target column."
            )
        return values.astype(np.float32), task, None
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"{where}: target column {name!r} has {len(classes)} distinct values, too many for "
            f"classification (at most {MAX_CLASSES}). Use task='regression' or another column."
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


def _text_column_error(s: pd.Series, col: str, where: str) -> DataError:
    n_distinct = s.nunique(dropna=True)
    bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()]
    if len(bad) <= 0.1 * s.notna().sum() and len(bad) > 0:
        odd = ", ".join(repr(v) for v in pd.unique(bad)[:5])
        return DataError(
            f"{where}: column {col!r} is mostly numbers but holds text values ({odd}). If these "
            "mark missing values, leave those cells empty instead."
        )
    return DataError(
        f"{where}: column {col!r} is text with {n_distinct} distinct values, more than the "
        f"{MAX_CATEGORIES} Trainboard turns into one-hot features. Drop the column or group its "
        "values into fewer categories."
    )


def features_from_frame(df: pd.DataFrame, where: str) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as they are, text columns one-hot (capped); inf is an error, NaN stays."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            v = s.to_numpy(dtype="float64", na_value=np.nan)
            if np.isinf(v).any():
                raise DataError(
                    f"{where}: column {col!r} holds infinite values ({int(np.isinf(v).sum())} "
                    "cells). Replace them with real numbers or leave the cells empty."
                )
            if np.nanmax(np.abs(v), initial=0.0) > np.finfo(np.float32).max:
                raise DataError(
                    f"{where}: column {col!r} holds values too large for 32-bit floats; rescale it."
                )
            blocks.append(v[:, None])
            names.append(str(col))
        else:
            cats = pd.unique(s.dropna().astype(str))
            if len(cats) > MAX_CATEGORIES:
                raise _text_column_error(s, str(col), where)
            cats = sorted(cats)
            as_str = s.astype(str).where(s.notna(), None)
            # A missing text cell becomes all zeros; the report counts it as missing.
            blocks.append(np.stack([(as_str == c).to_numpy(dtype="float64") for c in cats], 1))
            names.extend(f"{col}={c}" for c in cats)
    if not blocks:
        raise DataError(f"{where}: there are no feature columns besides the target.")
    return np.concatenate(blocks, axis=1).astype(np.float32), names


def dataset_from_frame(
    df: pd.DataFrame, *, source: str, target: str | None, task: str
) -> RawDataset:
    """A RawDataset from a table: pick the target, drop rows without one, encode the rest."""
    where = Path(source).name  # messages name the file, never the server's folders
    if df.shape[0] == 0:
        raise DataError(f"{where}: the table has no rows.")
    if df.shape[1] < 2:
        raise DataError(
            f"{where}: the table has {df.shape[1]} column; it needs at least one feature column "
            "and a target column. (For a text file, check the separator.)"
        )
    columns = [c for c in df.columns]
    if target is None:
        tcol, target_why = guess_target(df)
    else:
        tcol, target_why = pick_target(columns, target, where), None
    t = df[tcol]
    keep = t.notna().to_numpy()
    warnings: list[dict[str, Any]] = []
    if not keep.all():
        dropped = int((~keep).sum())
        if dropped == len(df):
            raise DataError(f"{where}: the target column {tcol!r} is empty in every row.")
        warnings.append(
            {
                "tip": "T1",
                "message": f"{dropped} row(s) have no value in the target column {tcol!r} and "
                "were left out.",
            }
        )
    if not keep.all():
        # The report describes the rows that are used; the warning above counts the rest.
        df = df.loc[keep].reset_index(drop=True)
        t = df[tcol]
    y, task, class_names = encode_target(t, task, str(tcol), where)
    split, scol = split_column(df, tcol, where)
    x, names = features_from_frame(df.drop(columns=[tcol, *scol]), where)
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
        raise DataError(
            f"{where}: the split column must say train, val or test in every row; it also holds "
            f"{odd} ({len(bad)} rows). Fix those cells, or rename the column if it is a feature."
        )
    return mapped.to_numpy(dtype=object), cols[:1]
