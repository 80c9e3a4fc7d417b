"""The column-type pass: what each column of a table is, why, and how it becomes features (T1, T2).

Real tables hold more than numbers and a few categories: dates, IDs, free text, yes/no answers
and numbers written as text ("1,234", "12%", "$5"). Before anything is encoded, every feature
column gets one kind, with a reason a beginner can read:

* ``number``: used as it is (numbers written as text are parsed: thousands separators, a
  currency sign, a percent sign divides by 100; a few marker cells such as "?" become missing);
* ``boolean``: true/false, yes/no, y/n → 1/0;
* ``category``: text with at most ``MAX_CATEGORIES`` values, one-hot;
* ``date``: dates and times (ISO, and day/month or month/day when the values say which) →
  year, elapsed days since 1970, and month, weekday and day of year as cyclic sin/cos pairs (and
  the hour, when the cells hold times);
* ``id``: unique per row, or a running number: it tells one row from another and nothing about
  the target, so it is ignored;
* ``text``: free text with too many distinct values to one-hot: ignored (Trainboard trains no
  text model);
* ``ignore``: empty, or ignored because the user said so.

A user overrides any guess with ``data.columns`` (``{"column": "ignore" | "number" | "boolean"
| "category" | "date"}``), on the Datasets and New run pages or with ``--set``; an override that
the values can't support is refused with a message naming the column. pandas parses the
dates; the rules here are written out (rather than a library's type sniffing) because each
choice must come with its reason and its tip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engine.data.base import DataError
from engine.messages import Message

MAX_CATEGORIES = 50  # one-hot cap for a text feature column
KINDS = ("number", "boolean", "category", "date", "id", "text", "ignore")
USED = ("number", "boolean", "category", "date")  # the kinds that become features
SETTABLE = ("ignore", "number", "boolean", "category", "date")  # what data.columns may say
ID_MIN_ROWS = 20  # fewer rows: "unique per row" says nothing
TRUE_WORDS = frozenset({"true", "yes", "y", "t", "是", "对", "對"})
FALSE_WORDS = frozenset({"false", "no", "n", "f", "否", "错", "錯"})
_NUMBER_TEXT = re.compile(r"^[\s$€£¥₹+-]*\(?[\d.,\s]+\)?\s*%?\s*$")
_DATE_LIKE = re.compile(r"\d{1,4}[-/.年]\d{1,2}(?:[-/.月]\d{1,4})?|\d{4}-\d{2}")
MIN_PARSED = 0.95  # share of non-empty cells that must parse for a column to be numbers / dates
MAX_MARKERS = 5  # distinct non-numeric markers ("?", "n/a") a number column may hold


@dataclass
class Column:
    """One column's kind, the reason, and (for used kinds) how it is encoded."""

    name: str
    kind: str
    why: Message
    tip: str = "T1"
    chosen: bool = False  # set by the user (data.columns), not guessed
    categories: list[str] = field(default_factory=list)  # category: one-hot order
    dayfirst: bool = False  # date: 03/04/2020 is 3 April
    has_time: bool = False  # date: the cells hold times, so the hour is a feature too

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "why": str(self.why),
            "why_msg": self.why.to_json(),
            "tip": self.tip,
            "chosen": self.chosen,
        }


def _word(c: Any) -> str:
    return str(c).replace("\ufeff", "").strip().lower().replace(" ", "").replace("-", "_")


def is_id_name(name: Any) -> bool:
    w = _word(name)
    return (
        w in ("id", "index", "uuid", "key", "编号", "編號")
        or w.endswith("_id")
        or (w.endswith("id") and len(w) <= 4)
    )


def parse_numbers(s: pd.Series) -> tuple[pd.Series, list[str]]:
    """Text cells read as numbers: ``(values with NaN where a cell is no number, the distinct
    cells that were not numbers)``. "1,234" → 1234, "$5" → 5, "12%" → 0.12, "(3)" → -3."""
    text = s.dropna().astype(str).str.strip()
    text = text[text != ""]
    looks = text.str.match(_NUMBER_TEXT)
    cleaned = text.where(looks).str.replace(r"[\s$€£¥₹,]", "", regex=True)
    negative = cleaned.str.startswith("(") & cleaned.str.endswith(")")
    percent = cleaned.str.endswith("%")
    cleaned = cleaned.str.strip("()%")
    values = pd.to_numeric(cleaned, errors="coerce")
    values = values.where(~negative, -values).where(~percent, values / 100)
    odd = sorted(set(text[values.isna()]))
    return values.reindex(s.index), odd


def _date_order(sample: pd.Series) -> bool:
    """Whether dates written a/b/yyyy are day first: some first part above 12 says so."""
    parts = sample.str.extract(r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}")
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    return bool((first > 12).any() and not (second > 12).any())


_YEAR_FIRST = r"^\s*\d{4}[-/.]"  # 2020-01-05, 2020/01/05, 2020.01.05: never day first


def parse_dates(s: pd.Series, dayfirst: bool) -> pd.Series:
    """Text cells as naive UTC datetimes (NaT where a cell is no date). ``utc=True``: a zoned
    time is converted to UTC and a plain one read as UTC, then the zone dropped, so a column
    mixing zoned and plain times (or two offsets) parses instead of making pandas raise
    "Mixed timezones detected". Year-first cells are read year-month-day even in a day-first
    column: pandas' ``dayfirst`` swaps an ISO date's month and day (2020-01-05 → 1 May), and
    the bundle's predict.py (engine.bundle_predict.read_day) reads them as ISO."""
    text = s.astype(str).where(s.notna())

    def read(cells: pd.Series, first: bool) -> pd.Series:
        return pd.to_datetime(cells, errors="coerce", format="mixed", dayfirst=first, utc=True)

    with np.errstate(all="ignore"):
        out = read(text, dayfirst)
        if dayfirst:
            iso = text.str.match(_YEAR_FIRST, na=False)
            if iso.any():
                out = out.where(~iso, read(text.where(iso), False))
    return out.dt.tz_convert(None)


def _as_date(s: pd.Series) -> tuple[bool, bool, bool]:
    """(is a date column, day first, has times) from the text cells."""
    if pd.api.types.is_datetime64_any_dtype(s):
        v = s.dropna()
        return True, False, bool((v.dt.hour + v.dt.minute).any())
    text = s.dropna().astype(str).str.strip()
    if text.empty:
        return False, False, False
    sample = text.head(500)
    if sample.str.contains(_DATE_LIKE).mean() < MIN_PARSED:
        return False, False, False
    dayfirst = _date_order(sample)
    parsed = parse_dates(sample, dayfirst)
    if parsed.notna().mean() < MIN_PARSED:
        return False, False, False
    p = parsed.dropna()
    return True, dayfirst, bool((p.dt.hour + p.dt.minute).any())


def infer(s: pd.Series, name: str) -> Column:
    """The kind a person would give this column, with the reason."""
    v = s.dropna()
    n = len(s)
    if v.empty:
        return Column(name, "ignore", Message("column.empty"))
    if pd.api.types.is_bool_dtype(s):
        return Column(name, "boolean", Message("column.boolean"))
    if pd.api.types.is_numeric_dtype(s):
        unique = v.nunique() == len(v) and n >= ID_MIN_ROWS
        f = v.to_numpy(dtype="float64")
        whole = bool(np.isfinite(f).all()) and bool(np.all(np.mod(f, 1) == 0))
        running = whole and bool(np.all(np.diff(f) == 1))  # 1, 2, 3 …: a row number
        if unique and whole and (is_id_name(name) or running):
            return Column(name, "id", Message("column.id_running"))
        return Column(name, "number", Message("column.number"), tip="T2")
    if pd.api.types.is_datetime64_any_dtype(s):
        _ok, _first, times = _as_date(s)
        return Column(name, "date", Message("column.date"), has_time=times)
    text = v.astype(str).str.strip()
    words = set(text.str.lower())
    if words <= TRUE_WORDS | FALSE_WORDS and words & TRUE_WORDS and words & FALSE_WORDS:
        return Column(name, "boolean", Message("column.yes_no"))
    values, odd = parse_numbers(s)
    parsed = values.notna().sum() / max(len(text), 1)
    if parsed >= MIN_PARSED or (parsed >= 0.5 and 0 < len(odd) <= MAX_MARKERS):
        if odd:
            shown = ", ".join(repr(o[:20]) for o in odd[:MAX_MARKERS])
            return Column(name, "number", Message("column.number_markers", values=shown), tip="T2")
        return Column(name, "number", Message("column.number_text"), tip="T2")
    is_date, dayfirst, times = _as_date(s)
    if is_date:
        return Column(name, "date", Message("column.date"), dayfirst=dayfirst, has_time=times)
    distinct = text.nunique()
    if distinct <= MAX_CATEGORIES:
        return Column(name, "category", Message("column.category", count=int(distinct)))
    if (
        distinct == len(text)
        and n >= ID_MIN_ROWS
        and (is_id_name(name) or text.str.len().max() <= 40)
    ):
        return Column(name, "id", Message("column.id_unique"))
    return Column(name, "text", Message("column.text", count=int(distinct), limit=MAX_CATEGORIES))


def _chosen(s: pd.Series, name: str, kind: str, where: str) -> Column:
    """The kind the user set (``data.columns``), checked against the values."""
    if kind == "ignore":
        return Column(name, "ignore", Message("column.ignored_by_user"), chosen=True)
    if kind == "number":
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            return Column(name, "number", Message("column.number_by_user"), tip="T2", chosen=True)
        values, _odd = parse_numbers(s)
        if values.notna().sum() < 0.5 * s.notna().sum():
            raise DataError(Message("data.column_not_numbers", where=where, column=name))
        return Column(name, "number", Message("column.number_by_user"), tip="T2", chosen=True)
    if kind == "date":
        ok, dayfirst, times = _as_date(s)
        if not ok:
            raise DataError(Message("data.column_not_dates", where=where, column=name))
        return Column(
            name,
            "date",
            Message("column.date_by_user"),
            dayfirst=dayfirst,
            has_time=times,
            chosen=True,
        )
    if kind == "boolean":
        if s.dropna().astype(str).str.strip().str.lower().nunique() > 2:
            raise DataError(Message("data.column_not_boolean", where=where, column=name))
        return Column(name, "boolean", Message("column.boolean_by_user"), chosen=True)
    distinct = s.dropna().astype(str).nunique()
    if distinct > MAX_CATEGORIES:
        raise DataError(
            Message(
                "data.too_many_categories",
                where=where,
                column=name,
                count=int(distinct),
                limit=MAX_CATEGORIES,
            )
        )
    return Column(name, "category", Message("column.category_by_user"), chosen=True)


def column_pass(df: pd.DataFrame, chosen: dict[str, str] | None, where: str) -> list[Column]:
    """One :class:`Column` per column of ``df`` (the features: target and split removed).
    ``chosen``: the user's kinds by column name (``data.columns``); a name the table lacks is
    refused, so a typo never silently does nothing."""
    chosen = dict(chosen or {})
    names = [str(c) for c in df.columns]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        shown = ", ".join(repr(c) for c in names[:20])
        raise DataError(
            Message("data.column_unknown", where=where, column=unknown[0], columns=shown)
        )
    bad = {c: k for c, k in chosen.items() if k not in SETTABLE}
    if bad:
        ((column, kind),) = list(bad.items())[:1]
        raise DataError(
            Message(
                "data.column_kind",
                where=where,
                column=column,
                kind=kind,
                kinds=", ".join(SETTABLE),
            )
        )
    out = []
    for col in df.columns:
        name = str(col)
        s = df[col]
        out.append(_chosen(s, name, chosen[name], where) if name in chosen else infer(s, name))
    for c in out:
        if c.kind == "category":
            c.categories = sorted(pd.unique(df[c.name].dropna().astype(str).str.strip()))
    return out


def _cyclic(values: pd.Series, period: float, name: str) -> list[tuple[str, np.ndarray]]:
    angle = 2 * np.pi * values.to_numpy(dtype="float64", na_value=np.nan) / period
    return [(f"{name}.sin", np.sin(angle)), (f"{name}.cos", np.cos(angle))]


def encode(df: pd.DataFrame, columns: list[Column], where: str) -> tuple[np.ndarray, list[str]]:
    """The used columns as float features (NaN where a cell is missing; ``prepare`` imputes)."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for c in columns:
        s = df[c.name] if c.name in df.columns else df[_original(df, c.name)]
        feats: list[tuple[str, np.ndarray]] = []
        if c.kind == "number":
            if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                v = s.to_numpy(dtype="float64", na_value=np.nan)
            else:
                v = parse_numbers(s)[0].to_numpy(dtype="float64", na_value=np.nan)
            _check_finite(v, c.name, where)
            feats = [(c.name, v)]
        elif c.kind == "boolean":
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                v = s.astype("float64").to_numpy(na_value=np.nan)
            else:
                low = s.astype(str).str.strip().str.lower().where(s.notna())
                v = low.map(
                    lambda w: 1.0 if w in TRUE_WORDS else 0.0 if w in FALSE_WORDS else np.nan
                )
                if v.isna().sum() > s.isna().sum():  # two other words (user's choice): sorted
                    words = sorted(low.dropna().unique())
                    v = low.map({w: float(i) for i, w in enumerate(words)})
                v = v.to_numpy(dtype="float64", na_value=np.nan)
            feats = [(c.name, v)]
        elif c.kind == "category":
            as_str = s.astype(str).str.strip().where(s.notna(), None)
            # A missing text cell becomes all zeros; the report counts it as missing.
            feats = [
                (f"{c.name}={k}", (as_str == k).to_numpy(dtype="float64")) for k in c.categories
            ]
        elif c.kind == "date":
            d = s if pd.api.types.is_datetime64_any_dtype(s) else parse_dates(s, c.dayfirst)
            if getattr(d.dt, "tz", None) is not None:
                d = d.dt.tz_convert(None)
            elapsed = (d - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400
            feats = [
                (f"{c.name}.year", d.dt.year.to_numpy(dtype="float64", na_value=np.nan)),
                (f"{c.name}.days", elapsed.to_numpy(dtype="float64", na_value=np.nan)),
                *_cyclic(d.dt.month - 1, 12, f"{c.name}.month"),
                *_cyclic(d.dt.day_of_week, 7, f"{c.name}.weekday"),
                *_cyclic(d.dt.day_of_year - 1, 366, f"{c.name}.day_of_year"),
            ]
            if c.has_time:
                feats += _cyclic(d.dt.hour + d.dt.minute / 60, 24, f"{c.name}.hour")
        for fname, v in feats:
            blocks.append(np.asarray(v, dtype="float64")[:, None])
            names.append(fname)
    if not blocks:
        raise DataError(Message("data.no_features", where=where))
    return np.concatenate(blocks, axis=1).astype(np.float32), names


def _original(df: pd.DataFrame, name: str) -> Any:
    return next(c for c in df.columns if str(c) == name)


def _check_finite(v: np.ndarray, name: str, where: str) -> None:
    if np.isinf(v).any():
        count = int(np.isinf(v).sum())
        raise DataError(Message("data.infinite", where=where, column=name, count=count))
    if np.nanmax(np.abs(v), initial=0.0) > np.finfo(np.float32).max:
        raise DataError(Message("data.too_large", where=where, column=name))
