"""What each column of a table is, and the user's own choice: shown on Datasets and New run.

The dataset report holds the column-type pass (``engine.data.columns``): each feature
column's guessed kind and why. Here a user sees it as a table and can ignore a column or give
it another kind. The choice is kept per dataset for this browser session (both pages show and
change the same one) and travels in the run's config as ``data.columns``, like the target.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app import engine_text, ui
from app.i18n import N_, _
from jobs.service import Message

GUESS = "auto"
CHOICES = {
    GUESS: N_("as guessed"),
    "ignore": N_("ignore"),
    "number": N_("number"),
    "boolean": N_("yes/no"),
    "category": N_("category"),
    "date": N_("date"),
}
MAX_EDITABLE = 60  # more columns than this: change them with --set data.columns=…
_STORE = "column_choices"  # session: {dataset id: {column: kind}}


def kinds(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    return list((dataset.get("report") or {}).get("column_kinds") or [])


def chosen(dataset: dict[str, Any]) -> dict[str, str]:
    """The kinds this browser chose for the dataset's columns (``data.columns``)."""
    return dict(st.session_state.get(_STORE, {}).get(dataset["id"], {}))


def _kind_word(kind: str) -> str:
    return engine_text.text(Message(f"kind.{kind}"))


def table(dataset: dict[str, Any]) -> None:
    """Every feature column with its kind and why (the user's choice where there is one)."""
    cols = kinds(dataset)
    if not cols:
        st.caption(
            _(
                "This dataset was added before column kinds were recorded; add the file again to see them."
            )
            if (dataset.get("report") or {}).get("modality") == "tabular"
            else _("Not a table: there are no columns to describe.")
        )
        return
    mine = chosen(dataset)
    rows = [
        {
            "column": c["name"],
            "kind": _kind_word(mine.get(c["name"], c["kind"])),
            "why": _("your choice")
            if c["name"] in mine
            else engine_text.text(c["why"], c.get("why_msg")),
        }
        for c in cols
    ]
    ui.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        column_config=ui.headers({"column": _("Column"), "kind": _("Kind"), "why": _("Why")}),
    )


def editor(dataset: dict[str, Any], where: str) -> dict[str, str]:
    """A kind picker per column (in an expander); returns the choice, ``data.columns``."""
    cols = kinds(dataset)
    if not cols:
        return {}
    mine = chosen(dataset)
    label = (
        _("Change column kinds ({n} chosen)").format(n=len(mine))
        if mine
        else _("Change column kinds")
    )
    with st.expander(label, expanded=False):
        if len(cols) > MAX_EDITABLE:
            st.caption(
                _(
                    "{n} columns: too many to list here; set kinds with data.columns under More settings."
                ).format(n=len(cols))
            )
            return mine
        st.caption(
            _(
                "Ignore a column, or say what it is when the guess is wrong. Your choice goes into the run's settings (data.columns)."
            )
        )
        options = list(CHOICES)
        for i, c in enumerate(cols):
            name = c["name"]
            key = f"colkind_{where}_{dataset['id']}_{i}"
            st.selectbox(
                ui.plain(name, 80),
                options,
                index=options.index(mine.get(name, GUESS)),
                format_func=lambda k, c=c: (
                    _(CHOICES[k])
                    if k != GUESS
                    else _("as guessed: {kind}").format(kind=_kind_word(c["kind"]))
                ),
                key=key,
                # a callback runs before the page is drawn, so the table above shows the choice
                on_change=_pick,
                args=(dataset["id"], name, key),
            )
    return chosen(dataset)


def _pick(dataset_id: int, name: str, key: str) -> None:
    mine = st.session_state.setdefault(_STORE, {}).setdefault(dataset_id, {})
    if st.session_state[key] == GUESS:
        mine.pop(name, None)
    else:
        mine[name] = st.session_state[key]
