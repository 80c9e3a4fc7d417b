"""New run's "Find a learning rate" (issue 23 §1): the range test's plot, its verdict and
"Use this LR".

The test runs on a worker as a queued run (``jobs.service.queue_lr_find``); this module shows
the one the form queued last (its id in ``st.session_state[RUN_KEY]``): the smoothed loss
against the LR on a log axis, the band of the 3 data orders (lowest to highest) around their
mean, and the three rules' suggestions as marked rules. "Use this LR" puts the suggestion in
the form's learning-rate field (a callback, so it is set before the field is drawn again) and
marks the field with tip T5 and the test's run.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import engine_text, ui
from app.i18n import N_, _
from jobs import service

RUN_KEY = "nr_lr_find_run"  # the LR test the form queued last
USED_KEY = "nr_lr_from_test"  # {"run": id, "lr": value, "field": widget key}: the LR in use
RULE_WORDS = {
    "valley": N_("valley"),
    "steepest": N_("steepest descent"),
    "minimum": N_("minimum ÷ 10"),
}


def chart(found: Any) -> alt.LayerChart:
    """Loss against LR (log axis): the orders' band, their mean, and a rule per suggestion."""
    band = pd.DataFrame(found.band())
    band = band[band["lr"] > 0]
    x = alt.X("lr:Q", scale=alt.Scale(type="log"), title=_("Learning rate (log scale)"))
    area = (
        alt.Chart(band)
        .mark_area(opacity=0.25)
        .encode(x=x, y=alt.Y("lo:Q", title=_("smoothed loss")), y2="hi:Q")
    )
    line = alt.Chart(band).mark_line().encode(x=x, y="mean:Q")
    marks = pd.DataFrame(
        [
            {"lr": v, "rule": _(RULE_WORDS[r]) + f" {v:.3g}"}
            for r, v in found.rules.items()
            if r in RULE_WORDS and v > 0
        ]
    )
    layers: list[alt.Chart] = [area, line]
    if not marks.empty:
        rules = (
            alt.Chart(marks)
            .mark_rule(strokeDash=[4, 3])
            .encode(x="lr:Q", color=alt.Color("rule:N", title=_("suggestions")))
        )
        layers.append(rules)
    if found.lr is not None:
        chosen = pd.DataFrame([{"lr": found.lr}])
        layers.append(alt.Chart(chosen).mark_rule(size=3, color="green").encode(x="lr:Q"))
    return alt.layer(*layers).properties(height=280)


def _wait(run_id: int) -> None:
    if service.get_run(ui.db(), run_id)["status"] in service.TERMINAL:
        st.rerun()  # the whole page: the plot replaces the notice


def _use(lr: float, run_id: int, field: str) -> None:
    st.session_state[field] = float(f"{lr:.3g}")
    st.session_state[USED_KEY] = {"run": run_id, "lr": float(f"{lr:.3g}"), "field": field}


def section(db: Any, lr_field: str) -> None:
    """The range test the form queued last, if any: its state, or its plot and verdict with
    "Use this LR" (which fills ``lr_field``, the form's learning-rate widget key)."""
    run_id = st.session_state.get(RUN_KEY)
    if run_id is None:
        return
    try:
        run = service.get_run(db, run_id)
    except service.RunNotFound:
        st.session_state.pop(RUN_KEY, None)
        return
    st.markdown("**" + _("Learning-rate range test (T5): run {id}").format(id=run_id) + "**")
    if run["status"] not in service.TERMINAL:
        st.info(
            _(
                "The range test is {status} on the queue (about 300 short steps); its plot "
                "appears here when it has finished."
            ).format(status=_(service.STATUS_WORDS[run["status"]]))
        )
        ui.live(lambda: _wait(run_id), active=True)  # every 2 s, until the test is over
        return
    found = service.lr_find_result(run)
    if found is None:
        reason = engine_text.run_error(run) or _(run["status"])
        st.warning(_("The range test did not finish: {reason}").format(reason=reason))
        return
    show(found)
    if found.lr is None:
        return
    st.button(
        _("Use this LR ({lr:.3g})").format(lr=found.lr),
        key="nr_lr_use",
        on_click=_use,
        args=(found.lr, run_id, lr_field),
    )


def show(found: Any) -> None:
    """A finished range test: its plot, what the plot shows, and its verdict (New run, and Run
    detail for a run that is a range test)."""
    st.altair_chart(chart(found), width="stretch")
    st.caption(
        _(
            "The loss on fixed training rows while the LR rises from 1e-7 to 10; the band is "
            "the spread over {orders} data orders, the dashed lines the three rules' picks."
        ).format(orders=len(found.curves))
    )
    verdict = engine_text.text(found.message())
    (st.success if found.lr is not None else st.warning)(verdict)


def from_test(lr_field: str, value: float) -> float | None:
    """The range test's LR while the form's LR field still holds it, else None. The queued run
    carries it as ``optim.range_test_lr``, and the doctor compares it with the plateau cuts."""
    used = st.session_state.get(USED_KEY)
    if not used or used.get("field") != lr_field or abs(value - used["lr"]) > 1e-12:
        return None
    return float(used["lr"])


def used_note(lr_field: str, value: float) -> None:
    """Under the form: where its LR came from, while the field still holds the test's value."""
    used = st.session_state.get(USED_KEY)
    if from_test(lr_field, value) is None:
        return
    st.caption(
        "🔎 "
        + _("Learning rate {lr:.3g} from the range test of run {id} (tip T5).").format(
            lr=used["lr"], id=used["run"]
        )
    )
