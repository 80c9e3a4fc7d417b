"""Compare's A/B report (issue 23, §2): one A/B group over paired seeds, read from
``service.ab_report``: the verdict, each arm's mean ± 95% CI on the held-out test metric and the
best validation metric, the paired difference with its CI, p-value and sign test, the runs seed
by seed, and each arm's curves with per-step CI bands (N in the legend).

The page (``app/screens/compare.py``) only picks the group and calls :func:`show`."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app import engine_text, i18n, ui
from app.i18n import N_, _
from jobs import service

# The scores an A/B group is judged on, in the order shown: the held-out test split (the
# honest one, and the verdict's) and the best validation score (the epoch was picked on it).
SCORES = {"test": N_("test (held out)"), "best_val": N_("best validation")}
ARM_COLORS = {"A": "#1f77b4", "B": "#ff7f0e"}


def group_label(g: dict[str, Any]) -> str:
    """A group in the picker: what B changes, the dataset, the seeds and how many are done."""
    change = ", ".join(g["change"]) or _("nothing (identical arms)")
    return _("{change} on {dataset} · {seeds} seeds · {done}/{runs} runs over").format(
        change=ui.short(change, 80),
        dataset=ui.short(g["dataset"], 40),
        seeds=g["seeds"],
        done=g["over"],
        runs=g["runs"],
    )


def _value(metric: str | None, v: float | None) -> str:
    return service.format_metric(metric, v)


def _ci(metric: str | None, low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "—"
    return f"{_value(metric, low)} – {_value(metric, high)}"


def _diff(metric: str | None, v: float | None) -> float | None:
    """A difference B − A as a number (a column, not text: a leading minus sign would read as
    a spreadsheet formula in the table's CSV): points for accuracy, else the metric's units."""
    if v is None:
        return None
    return round(v * 100, 2) if metric == "acc" else float(f"{v:.4g}")


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3g}"


def arms_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per score and arm: N, mean, 95% CI."""
    metric = report["metric"]
    rows = []
    for key, label in SCORES.items():
        s = report["scores"][key]
        for arm in ("A", "B"):
            a = s[arm.lower()]
            rows.append(
                {
                    "score": _(label),
                    "arm": f"{arm}: {_arm_name(report, arm)}",
                    "N": a.n,
                    "mean": _value(metric, a.mean),
                    "95% CI": _ci(metric, a.low, a.high),
                }
            )
    return pd.DataFrame(rows)


def diff_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per score: the paired difference B − A, its CI, the t-test's and sign test's p,
    the pairs each arm won, and the verdict on that score."""
    metric = report["metric"]
    rows = []
    for key, label in SCORES.items():
        s = report["scores"][key]
        d = s["diff"]
        rows.append(
            {
                "score": _(label),
                "pairs": d.n,
                "B − A": _diff(metric, d.mean),
                "CI low": _diff(metric, d.low),
                "CI high": _diff(metric, d.high),
                "p (paired t)": _p(d.p_value),
                "p (sign test)": _p(d.sign_p),
                "B won / A won / tied": f"{d.b_wins} / {d.a_wins} / {d.ties}",
                "verdict": engine_text.text(s["verdict"].message),
            }
        )
    return pd.DataFrame(rows)


ARMS_COLUMNS = {
    "score": N_("score"),
    "arm": N_("arm"),
    "mean": N_("mean over seeds"),
    "95% CI": N_("95% CI"),
}
DIFF_COLUMNS = {
    "score": N_("score"),
    "B − A": N_("B − A"),
    "CI low": N_("95% CI low"),
    "CI high": N_("95% CI high"),
    "pairs": N_("seed pairs"),
    "p (paired t)": N_("p (paired t-test)"),
    "p (sign test)": N_("p (sign test)"),
    "B won / A won / tied": N_("B won / A won / tied"),
    "verdict": N_("verdict"),
}
RUNS_COLUMNS = {
    "seed": N_("seed"),
    "A": N_("A: run"),
    "A test": N_("A: test"),
    "A best": N_("A: best validation"),
    "B": N_("B: run"),
    "B test": N_("B: test"),
    "B best": N_("B: best validation"),
}


def _arm_name(report: dict[str, Any], arm: str) -> str:
    if report.get("tip"):
        return (
            _("{tip} on").format(tip=report["tip"])
            if arm == "A"
            else _("{tip} off").format(tip=report["tip"])
        )
    return _("as is") if arm == "A" else _("with the change")


def runs_table(report: dict[str, Any]) -> pd.DataFrame:
    metric = report["metric"]
    rows = []
    for r in report["pairs"]:
        row: dict[str, Any] = {"seed": r["seed"]}
        for arm in ("A", "B"):
            run = r[arm]
            row[arm] = (
                f"#{run['id']} {i18n.status(run['status'])}" if run else "—"
            )  # a seed one arm lacks (cancelled before it was queued)
            row[f"{arm} test"] = _value(metric, run["test"]) if run else "—"
            row[f"{arm} best"] = _value(metric, run["best"]) if run else "—"
        rows.append(row)
    return pd.DataFrame(rows)


def show(db, group_id: str, live: bool = False) -> None:
    """The whole report for ``group_id``; ``live``: the page refreshes it (some run was
    active when the page was drawn), so the last run's end redraws the page once, which then
    stops refreshing."""
    report = service.ab_report(db, group_id)
    if report is None:
        st.info(_("This A/B group has no runs any more."))
        return
    if live and not report["active"]:
        st.rerun()
    _verdict(report)
    st.caption(_changes_caption(report))
    st.subheader(_("Each arm: mean ± 95% confidence interval"))
    ui.dataframe(
        arms_table(report), hide_index=True, width="stretch", column_config=ui.headers(ARMS_COLUMNS)
    )
    st.subheader(_("Paired difference, seed by seed"))
    headers = dict(DIFF_COLUMNS)
    if report["metric"] == "acc":  # the differences are in percentage points
        headers["B − A"] = N_("B − A (points)")
    ui.dataframe(
        diff_table(report), hide_index=True, width="stretch", column_config=ui.headers(headers)
    )
    st.caption(
        _(
            "Seed s runs in both arms with the same split, batch order and initial weights, so "
            "each seed gives one difference B − A. The 95% CI and p-value are the paired "
            "t-test's; the sign test counts only which arm won each pair (with 5 pairs its "
            "smallest possible p is 0.0625)."
        )
    )
    _curves(db, report)
    with st.expander(_("Runs, seed by seed")):
        ui.dataframe(
            runs_table(report),
            hide_index=True,
            width="stretch",
            column_config=ui.headers(RUNS_COLUMNS),
        )


def _verdict(report: dict[str, Any]) -> None:
    v = report["scores"]["test"]["verdict"]
    text = _("Verdict on the held-out test {metric}: {verdict}").format(
        metric=_(report["metric_name"]) if report["metric_name"] else "",
        verdict=engine_text.text(v.message),
    )
    kind = {"b_better": "success", "a_better": "success", "no_difference": "info"}
    getattr(st, kind.get(v.decision, "warning"))(text)
    if report["active"]:
        st.caption(
            _("{active} of {runs} runs are still queued or running; the numbers update.").format(
                active=report["active"], runs=report["runs"]
            )
        )


def _changes_caption(report: dict[str, Any]) -> str:
    if not report["change"]:
        return _("A and B have identical settings: any difference is chance.")
    parts = [f"{c['setting']}: {c['A']} → {c['B']}" for c in report["change"]]
    return _("B differs from A in: {changes}").format(changes="; ".join(parts))


def _curves(db, report: dict[str, Any]) -> None:
    keys = service.ab_metric_keys(db, report["group_id"])
    if not keys:
        st.info(_("None of these runs has logged metrics yet."))
        return
    st.subheader(_("Curves: mean of each arm with its 95% band"))
    default = "val/loss" if "val/loss" in keys else keys[0]
    if st.session_state.get("ab_key") not in keys:
        st.session_state["ab_key"] = default
    key = st.selectbox(_("Metric"), keys, key="ab_key")
    bands = service.ab_bands(db, report["group_id"], key)
    chart = band_chart(bands, key, names={a: _arm_name(report, a) for a in ("A", "B")})
    if chart is None:
        st.info(_("None of these runs has logged {key} yet.").format(key=key))
    else:
        st.altair_chart(chart, width="stretch")


def band_chart(
    bands: dict[str, dict[str, Any]], key: str, names: dict[str, str]
) -> alt.LayerChart | None:
    """Each arm's mean curve with its per-step 95% band; the legend names the arm and its N
    ("A: T2 on (N=5)"). None when neither arm has points."""
    frames = []
    for arm, b in bands.items():
        if b["rows"]:
            label = _("{arm}: {name} (N={n})").format(arm=arm, name=names[arm], n=b["n"])
            frames.append(pd.DataFrame(b["rows"]).assign(arm=label, key=arm))
    if not frames:
        return None
    frame = pd.concat(frames, ignore_index=True)
    domain = list(dict.fromkeys(frame["arm"]))
    colors = [ARM_COLORS[k] for k in dict.fromkeys(frame["key"])]
    color = alt.Color(
        "arm", type="nominal", title=None, scale=alt.Scale(domain=domain, range=colors)
    )
    base = alt.Chart(frame).encode(alt.X("step", type="quantitative", title=_("step")), color)
    area = base.mark_area(opacity=0.2).encode(
        alt.Y("low", type="quantitative", title=key, scale=alt.Scale(zero=False)), alt.Y2("high")
    )
    line = base.mark_line(strokeWidth=2).encode(
        alt.Y("mean", type="quantitative"),
        tooltip=[
            alt.Tooltip("arm", type="nominal", title=_("arm")),
            alt.Tooltip("step", type="quantitative", title=_("step")),
            alt.Tooltip("mean", type="quantitative", format=".4g", title=_("mean over seeds")),
            alt.Tooltip("low", type="quantitative", format=".4g", title=_("95% CI low")),
            alt.Tooltip("high", type="quantitative", format=".4g", title=_("95% CI high")),
            alt.Tooltip("n", type="quantitative", title=_("runs at this step")),
        ],
    )
    return (area + line).properties(
        title=key, height=340, usermeta={"embedOptions": {"renderer": "svg"}}
    )
