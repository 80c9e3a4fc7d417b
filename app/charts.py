"""Chart data and Altair charts for the run-detail and compare pages.

Two halves, kept apart so the data half can be timed without a browser (``bench/ui.py``):

* :func:`run_chart_data` reads a run's series (at most ``max_points`` per key, spike-preserving,
  from the store's downsampled levels) and events into small DataFrames. Given the
  :class:`RunCache` of the previous refresh, it reads only points after the last step it has and
  events after the last event id it has.
* :func:`panel_chart` and friends turn those frames into layered Altair charts: a faint raw
  line under an EMA-smoothed one, a min/max band where the data is downsampled, and vertical
  rules with labels for events (LR cuts "LR 0.1 → 0.05", early stop, doctor warnings, and the
  "a cut would have helped here" marks of fixed-LR runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import sqlite_utils

from app import engine_text
from app.i18n import N_, _
from jobs import service
from jobs.service import EventKind, SeriesData

MAX_POINTS = 2000

# Panels of the run page: which keys each one draws. Titles and labels are msgids, drawn in
# the session's language (app.i18n).
PANELS: dict[str, dict[str, Any]] = {
    "loss": {"title": N_("Loss (train and validation)"), "log": False},
    "metric": {"title": N_("Validation metric"), "log": False},
    "lr": {"title": N_("Learning rate (log scale)"), "log": True},
    "ratio": {
        "title": N_("Update / weight ratio per layer (log scale; target ≈ 1e-3, T6)"),
        "log": True,
    },
    "grad": {"title": N_("Gradient norm before clipping (T9)"), "log": False},
}
# Every event kind drawn on the charts: its colour and its fixed label (None: the label is
# built from the event's data in event_label). One table, so a new kind is added in one place.
EVENT_STYLE: dict[str, tuple[str, str | None]] = {
    EventKind.LR_CUT: ("#d62728", None),
    EventKind.LR_FLOOR: ("#8c564b", N_("LR floor: stop")),
    EventKind.EARLY_STOP: ("#9467bd", N_("early stop")),
    EventKind.DOCTOR: ("#ff7f0e", None),
    EventKind.DIVERGED: ("#000000", N_("diverged")),
    EventKind.CLIP_BURST: ("#bcbd22", N_("clip burst (T9)")),
    EventKind.CANCELLED: ("#7f7f7f", N_("cancelled")),
    EventKind.RELEASED: ("#7f7f7f", N_("worker stopped: requeued")),
    EventKind.RESUMED: ("#17becf", N_("resumed")),
    EventKind.SWEEP_PAUSED: ("#bcbd22", N_("sweep: paused at a rung")),
    EventKind.SWEEP_PROMOTED: ("#2ca02c", N_("sweep: promoted")),
    EventKind.CHECKPOINT_FAILED: ("#e377c2", N_("checkpoint not saved")),
    # the model bundle's parity check (issue 21), at the run's last step; a failed one is
    # labelled apart (event_label), as its bundle is not offered
    EventKind.BUNDLE: ("#1f77b4", N_("model bundle checked")),
}
# The doctor's live rules as the short names drawn on the charts ("⚠ T6 ratio high").
RULE_NAMES = {
    "ratio_low": N_("ratio low"),
    "ratio_high": N_("ratio high"),
    "exploding_gradient": N_("exploding gradient"),
    "plateau": N_("plateau"),
    "overfitting": N_("overfitting"),
    "loss_rising": N_("loss rising"),
}
# "A cut would have helped here" marks of fixed-LR runs: recorded by the engine as it trains
# (its shadow ReduceLROnPlateau), drawn dashed, apart from the events above.
HINT_KIND = EventKind.PLATEAU_HINT
EVENT_KINDS = tuple(EVENT_STYLE)  # what the run page draws as events
EVENT_COLORS = {kind: color for kind, (color, _) in EVENT_STYLE.items()} | {HINT_KIND: "#aaaaaa"}


def panel_of(key: str) -> str | None:
    if key in ("train/loss", "train/epoch_loss", "val/loss", "val/member_mean_loss"):
        return "loss"
    if key in ("val/acc", "val/rmse") or key.startswith("val/member_mean_"):
        return "metric"
    if key == "lr":
        return "lr"
    if key.startswith("ratio/"):
        return "ratio"
    if key == "grad/norm":
        return "grad"
    return None


@dataclass
class RunCache:
    """What a live page already holds for one run: its series and events so far."""

    run_id: int
    series: dict[str, SeriesData] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_event_id: int | None = None
    reads: int = 0  # how many refreshes filled this cache (for tests and the bench)


@dataclass
class ChartData:
    """Everything the run page draws, as small DataFrames."""

    frames: dict[str, pd.DataFrame]  # panel -> long frame: series, step, value, vmin, vmax, ema
    events: pd.DataFrame  # step, kind, label, message, tip
    hints: pd.DataFrame  # plateau marks for fixed-LR runs (same columns as events)
    clip_bound: float | None
    points: int  # total points drawn (≤ max_points per key)
    last_step: int | None


def _merge(old: SeriesData, new: SeriesData) -> SeriesData:
    if not len(new):
        return old
    return SeriesData(
        old.key,
        old.step + new.step,
        old.value + new.value,
        old.vmin + new.vmin,
        old.vmax + new.vmax,
        downsampled=old.downsampled or new.downsampled,
        level=old.level,
    )


def load_series(
    db: sqlite_utils.Database,
    run_id: int,
    keys: list[str],
    cache: RunCache | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, SeriesData]:
    """The run's series for ``keys``; with a cache, only points after its last step per key.

    A cached series that has grown past ``max_points`` by appending is read again whole, so
    the store picks a coarser level and the chart stays within its point budget."""
    if cache is None:
        return service.series(db, run_id, keys, max_points=max_points)
    have = cache.series
    since = {k: have[k].last_step for k in keys if k in have}
    fresh = service.series(db, run_id, keys, max_points=max_points, since_step=since)
    out: dict[str, SeriesData] = {}
    regrow = []
    for k in keys:
        merged = _merge(have[k], fresh[k]) if k in have else fresh[k]
        if len(merged) > max_points:
            regrow.append(k)
        else:
            out[k] = merged
    if regrow:
        out.update(service.series(db, run_id, regrow, max_points=max_points))
    cache.series = out
    return out


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's smoothing); NaN points skipped."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out = np.empty(len(values))
    acc, weight = 0.0, 0.0
    for i, v in enumerate(values.tolist()):
        if v == v and math.isfinite(v):
            acc = smoothing * acc + (1 - smoothing) * v
            weight = smoothing * weight + (1 - smoothing)
        out[i] = acc / weight if weight > 0 else math.nan
    return out


def series_frame(s: SeriesData, smoothing: float) -> pd.DataFrame:
    values = np.asarray(s.value, dtype=float)
    return pd.DataFrame(
        {
            "series": s.key,
            "step": np.asarray(s.step, dtype=np.int64),
            "value": values,
            "vmin": np.asarray(s.vmin, dtype=float),
            "vmax": np.asarray(s.vmax, dtype=float),
            "ema": ema(values, smoothing) if smoothing > 0 else values,
            "downsampled": s.downsampled,
        }
    )


def event_label(e: dict[str, Any]) -> str:
    """The label of an event's mark on the charts, in the session's language."""
    d = e.get("data") or {}
    kind = e["kind"]
    if kind == EventKind.LR_CUT and "old_lr" in d:
        return _("LR {old} → {new}").format(old=f"{d['old_lr']:.3g}", new=f"{d['new_lr']:.3g}")
    if kind == HINT_KIND:
        return _("cut would help: {old} → {new}").format(
            old=f"{d.get('old_lr', 0):.3g}", new=f"{d.get('new_lr', 0):.3g}"
        )
    if kind == EventKind.DOCTOR:
        rule = str(d.get("rule", ""))
        name = _(RULE_NAMES[rule]) if rule in RULE_NAMES else rule
        return f"⚠ {d.get('tip', '')} {name}".strip()
    if kind == EventKind.BUNDLE and d.get("ok") is False:
        return _("model bundle failed its check")
    label = EVENT_STYLE.get(kind, ("", None))[1]
    return _(label) if label else kind


def _events_frame(evts: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [
        {
            "step": int(e["step"] or 0),
            "kind": e["kind"],
            "label": event_label(e),
            "message": engine_text.event_message(e),
            "tip": (e.get("data") or {}).get("tip", ""),
        }
        for e in evts
    ]
    return pd.DataFrame(rows, columns=["step", "kind", "label", "message", "tip"])


def run_chart_data(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    spec: dict[str, Any] | None = None,
    cache: RunCache | None = None,
    max_points: int = MAX_POINTS,
    smoothing: float = 0.6,
) -> ChartData:
    """Build the run page's chart data. Pass the same ``cache`` on every live refresh."""
    spec = spec or {}
    keys = [k for k in service.metric_keys(db, run_id) if panel_of(k)]
    series = load_series(db, run_id, keys, cache, max_points)
    if cache is not None:
        new = service.events(
            db, run_id, since_id=cache.last_event_id, kinds=(*EVENT_KINDS, HINT_KIND)
        )
        cache.events += new
        if new:
            cache.last_event_id = new[-1]["id"]
        cache.reads += 1
        evts = cache.events
    else:
        evts = service.events(db, run_id, kinds=(*EVENT_KINDS, HINT_KIND))
    by_panel: dict[str, list[pd.DataFrame]] = {}
    points, last = 0, None
    for k, s in series.items():
        if not len(s):
            continue
        points += len(s)
        last = s.last_step if last is None else max(last, s.last_step)
        # The LR is a step function set by the schedule: smoothing it would only blur the cuts.
        by_panel.setdefault(panel_of(k), []).append(
            series_frame(s, 0.0 if k == "lr" else smoothing)
        )
    frames = {p: pd.concat(fs, ignore_index=True) for p, fs in by_panel.items()}
    return ChartData(
        frames=frames,
        events=_events_frame([e for e in evts if e["kind"] != HINT_KIND]),
        hints=_events_frame([e for e in evts if e["kind"] == HINT_KIND]),
        clip_bound=(spec.get("train") or {}).get("clip_norm"),
        points=points,
        last_step=last,
    )


# --- Altair ----------------------------------------------------------------------------------


# Channels are built as Altair objects, never as "field:Q" strings or dicts: Altair resolves a
# string or dict against the whole Vega-Lite schema (thousands of schema hashes per channel),
# which made building the run page's charts take ~0.5 s; objects skip that lookup.
# Tick labels with 4 significant digits at most: a flat series (a constant 44.9% accuracy)
# made Vega label its ticks 0.4492753744125….
Y_AXIS = alt.Axis(format=".4~g")
_STEP = alt.X("step", type="quantitative", title="step")  # English; _step() translates
# Categorical colours that can be told apart (Vega's tableau10), and dash patterns on top, so
# runs stay distinguishable in grey print and for colour-blind readers.
PALETTE = "tableau10"
DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [12, 4], [4, 4, 1, 4]]
# Legends at the bottom in columns, labels never cut (Vega-Lite's default cuts at 160 px).
LEGEND = {"orient": "bottom", "columns": 3, "labelLimit": 1000, "symbolStrokeWidth": 2}


def _step(domain: tuple[float, float] | None) -> alt.X:
    """The step axis; with ``domain`` fixed, so the panels of one run line up."""
    title = _("step")
    if domain is None:
        return _STEP if title == "step" else alt.X("step", type="quantitative", title=title)
    return alt.X(
        "step", type="quantitative", title=title, scale=alt.Scale(domain=list(domain), nice=False)
    )


class PanelChart(alt.LayerChart):
    """A layer chart that skips Altair's JSON-schema validation when rendered.

    Streamlit calls ``to_dict()`` with Altair's default ``validate=True``: a jsonschema walk of
    the whole spec that cost ~0.1 s per chart on every live refresh. The charts' structure is
    fixed by this module and validated in the tests (``to_dict(validate=True)``), so a render
    need not repeat it. Pass ``validate=True`` to validate explicitly."""

    def to_dict(self, validate: bool = False, **kwargs: Any) -> dict[str, Any]:
        return super().to_dict(validate, **kwargs)


LABEL_ROWS = 3
LABEL_WIDTH = 0.12  # of the x range: about one label's width at the default chart size


def labelled(events: pd.DataFrame, xmax: float | None) -> pd.DataFrame:
    """The events (sorted by step) that get a text label, each with its row (``ypos``): at most
    LABEL_ROWS within any LABEL_WIDTH of the x range, one per row."""
    width = LABEL_WIDTH * (xmax or float(events["step"].max() or 1))
    kept: list[int] = []
    steps: list[float] = []
    for i, step in zip(events.index, events["step"], strict=True):
        if sum(1 for s in steps if step - s < width) < LABEL_ROWS:
            kept.append(i)
            steps.append(step)
    out = events.loc[kept]
    return out.assign(ypos=[4 + 12 * (i % LABEL_ROWS) for i in range(len(out))])


def _rules(
    events: pd.DataFrame,
    dashed: bool = False,
    xmax: float | None = None,
    x: alt.X | None = None,
) -> list:
    if events.empty:
        return []
    x = x if x is not None else _step(None)
    # Colours come from the frame (scale=None) so events never join the series' colour legend.
    events = events.assign(color=events["kind"].map(EVENT_COLORS).fillna("#444444"))
    color = alt.Color("color", type="nominal", scale=None, legend=None)
    rule = (
        alt.Chart(events)
        .mark_rule(strokeWidth=1.5, strokeDash=[4, 4] if dashed else [1, 0])
        .encode(
            x,
            color,
            tooltip=[
                alt.Tooltip("step", type="quantitative", title=_("step")),
                alt.Tooltip("kind", type="nominal", title=_("kind")),
                alt.Tooltip("message", type="nominal", title=_("message")),
            ],
        )
    )
    layers = [rule]
    # Labels near the right edge go on the left of their rule, so the plot does not clip them;
    # successive labels step down three rows, so close rules don't print over each other, and
    # where more than three fall within a label's width the rest keep their rule and tooltip
    # but no text (7–9 late LR cuts used to smear into one unreadable line).
    events = labelled(events.sort_values("step"), xmax)
    right = events["step"] > 0.7 * xmax if xmax else pd.Series(False, index=events.index)
    for part, align, dx in ((events[~right], "left", 3), (events[right], "right", -3)):
        if not part.empty:
            layers.append(
                alt.Chart(part)
                .mark_text(align=align, baseline="top", dx=dx, fontSize=10)
                .encode(
                    x,
                    alt.Y("ypos", type="quantitative", scale=None),
                    alt.Text("label", type="nominal"),
                    color,
                )
            )
    return layers


def panel_chart(
    frame: pd.DataFrame,
    *,
    title: str,
    log: bool = False,
    events: pd.DataFrame | None = None,
    hints: pd.DataFrame | None = None,
    band: tuple[float, float, float] | None = None,
    hline: float | None = None,
    steps: bool = False,
    height: int = 260,
    x_domain: tuple[float, float] | None = None,
    runs: list[str] | None = None,
) -> PanelChart:
    """A layered chart of one panel: raw (faint) + EMA lines per series, the min/max band where
    downsampled, event rules with labels, an optional target band (lo, mid, hi) and a
    horizontal rule (e.g. the clip bound). ``steps`` draws step functions (the LR) as steps.
    ``x_domain`` fixes the step axis (the panels of one run share it); ``runs`` (the series, in
    order) gives each its own palette colour and dash pattern (compare)."""
    y_scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    if log:  # a log axis can't show zeros or negatives
        frame = frame[(frame["value"] > 0) & (frame["vmin"] > 0)]
    x = _step(x_domain)
    legend = alt.Legend(**LEGEND)
    color_scale = alt.Scale(scheme=PALETTE, domain=runs) if runs else alt.Scale(scheme=PALETTE)
    channels: list[Any] = [
        x,
        alt.Color("series", type="nominal", title=None, legend=legend, scale=color_scale),
    ]
    if runs:
        dashes = [DASHES[i % len(DASHES)] for i in range(len(runs))]
        channels.append(
            alt.StrokeDash(
                "series",
                type="nominal",
                title=None,
                legend=legend,
                scale=alt.Scale(domain=runs, range=dashes),
            )
        )
    base = alt.Chart(frame).encode(*channels)
    layers: list[alt.Chart] = []
    if band is not None:
        lo, mid, hi = band
        zone = alt.Chart(pd.DataFrame({"lo": [lo], "hi": [hi], "mid": [mid]}))
        layers.append(
            zone.mark_rect(color="#2ca02c", opacity=0.08).encode(
                alt.Y("lo", type="quantitative"), alt.Y2("hi")
            )
        )
        layers.append(
            zone.mark_rule(color="#2ca02c", strokeDash=[6, 3]).encode(
                alt.Y("mid", type="quantitative")
            )
        )
    if bool(frame["downsampled"].any()):
        layers.append(
            base.transform_filter("datum.downsampled")
            .mark_area(opacity=0.15)
            .encode(
                alt.Y("vmin", type="quantitative", scale=y_scale, title=None, axis=Y_AXIS),
                alt.Y2("vmax"),
            )
        )
    shape = {"interpolate": "step-after"} if steps else {}
    layers.append(
        base.mark_line(opacity=0.25, strokeWidth=1, **shape).encode(
            alt.Y("value", type="quantitative", scale=y_scale, title=None, axis=Y_AXIS)
        )
    )
    layers.append(
        base.mark_line(strokeWidth=2, **shape).encode(
            alt.Y("ema", type="quantitative", scale=y_scale, title=None, axis=Y_AXIS),
            tooltip=[
                alt.Tooltip("series", type="nominal", title=_("series")),
                alt.Tooltip("step", type="quantitative", title=_("step")),
                alt.Tooltip("value", type="quantitative", format=".4g", title=_("value")),
                alt.Tooltip("ema", type="quantitative", format=".4g", title=_("smoothed")),
            ],
        )
    )
    if hline is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"y": [hline]}))
            .mark_rule(color="#d62728", strokeDash=[6, 3])
            .encode(alt.Y("y", type="quantitative"))
        )
    xmax = float(frame["step"].max()) if len(frame) else None
    if x_domain is not None:
        xmax = float(x_domain[1])
    if events is not None:
        layers += _rules(events, xmax=xmax, x=x)
    if hints is not None:
        layers += _rules(hints, dashed=True, xmax=xmax, x=x)
    # SVG, not canvas: event labels become real text in the page (selectable, readable by
    # screen readers and by the browser test); ≤ 2,000 points per line is light for SVG.
    return PanelChart(layer=layers).properties(
        title=title, height=height, usermeta={"embedOptions": {"renderer": "svg"}}
    )


def run_charts(data: ChartData, *, log_loss: bool = False) -> dict[str, PanelChart]:
    """Every panel of the run page that has data, in display order; ``log_loss``: the loss
    panel on a log axis (the Run detail page's toggle)."""
    charts: dict[str, alt.LayerChart] = {}
    # One step axis for every panel of the run, so a cut in the loss lines up with the LR's.
    domain = (0.0, float(max(data.last_step or 0, 1)))
    for panel, opts in PANELS.items():
        frame = data.frames.get(panel)
        if frame is None or frame.empty:
            continue
        kwargs: dict[str, Any] = {}
        if panel == "ratio":
            kwargs["band"] = (1e-4, 1e-3, 1e-2)
        if panel == "lr":
            kwargs["steps"] = True
        if panel == "grad" and data.clip_bound:
            kwargs["hline"] = float(data.clip_bound)
        charts[panel] = panel_chart(
            frame,
            title=_(opts["title"]),
            log=opts["log"] or (panel == "loss" and log_loss),
            events=data.events,
            hints=data.hints,
            x_domain=domain,
            **kwargs,
        )
    return charts


def compare_chart(frames: dict[str, pd.DataFrame], key: str, log: bool = False) -> PanelChart:
    """Several runs' ``key`` on the same axes, raw faint + smoothed: each run (named in the
    legend by the keys of ``frames``, e.g. "#3 my-run") with its own colour and dash."""
    named = {name: f for name, f in frames.items() if not f.empty}
    frame = pd.concat([f.assign(series=name) for name, f in named.items()], ignore_index=True)
    return panel_chart(frame, title=key, log=log, height=340, runs=list(named))
