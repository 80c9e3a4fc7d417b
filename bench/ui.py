"""Benchmark of the run-detail page's chart data: a 1,000,000-step run vs. a 1,000-step run.

    .venv/bin/python bench/ui.py [--steps 1000000] [--repeat 7] [--quick]

Builds a temporary store with two runs of 5 keys logged at every step (train/loss, lr,
grad/norm, ratio/median, ratio/max) plus per-epoch val/loss, val/acc and LR-cut events, through
the real ``MetricWriter``. Then times, in this one invocation, what the server does to draw the
run page, for both runs (median of ``--repeat``, the two runs timed alternately so that a busy
machine slows both alike):

* chart data: ``app.charts.run_chart_data`` with no cache (first load of the page), and
  the part of it spent in the store's reader (``jobs.store.reader.series`` of the charted keys);
* live refresh: the same with the page's cache, when no new point has arrived;
* chart spec: building the Altair charts from that data and converting them the way
  ``st.altair_chart`` does (Vega-Lite spec + Arrow datasets), the rest of the server's work.

Target (issue 5): chart data for the big run ≤ 0.3 s and within 3× of the small run.

``--quick`` is a smoke run (seconds): a 50,000-step big run and 3 repeats. It prints the same
table and target line, but exits 0 whatever the targets say (they are for the full sizes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The repo root replaces this script's folder on the path: bench/ holds modules named like the
# standard library's (bench/queue.py), which would shadow it for torch and friends.
sys.path[0] = str(Path(__file__).resolve().parents[1])

KEYS = ("train/loss", "lr", "grad/norm", "ratio/median", "ratio/max")
TARGET_S = 0.3
TARGET_RATIO = 3.0


def build_run(db_file: Path, steps: int, epochs: int = 100) -> tuple[int, dict]:
    """A run with ``steps`` steps × 5 keys, ``epochs`` validation points and LR cuts."""
    from engine.config import resolve_config
    from jobs.store import registry
    from jobs.store.db import connect
    from jobs.store.writer import MetricWriter

    db = connect(db_file)
    spec = resolve_config("sutskever").to_dict()
    run_id = registry.create_run(db, spec=spec, preset="sutskever", name=f"{steps} steps")
    rng = np.random.default_rng(steps)
    s = np.arange(1, steps + 1)
    loss = 2.0 * np.exp(-s / (steps / 5)) + 0.05 * rng.standard_normal(steps) + 0.1
    loss[rng.integers(0, steps, 20)] += 5.0  # spikes the chart must keep
    every = max(1, steps // epochs)
    cuts = {every * e for e in range(10, epochs, 15)}
    lr = np.empty(steps)
    current = 0.1
    for i in range(steps):
        if i + 1 in cuts:
            current /= 2
        lr[i] = current
    norm = np.abs(1.0 + 0.3 * rng.standard_normal(steps))
    ratio = 1e-3 * np.exp(0.3 * rng.standard_normal(steps))
    cols = [loss.tolist(), lr.tolist(), norm.tolist(), ratio.tolist(), (ratio * 3).tolist()]
    with MetricWriter(db_file, run_id, flush_points=50_000, flush_interval=2.0) as w:
        for i, step in enumerate(s.tolist()):
            w.log(step, dict(zip(KEYS, (c[i] for c in cols), strict=True)))
            if step % every == 0:
                epoch = step // every
                w.log(
                    step,
                    {
                        "val/loss": float(loss[i]) + 0.05,
                        "val/acc": 1 - float(loss[i]) / 3,
                        "train/epoch_loss": float(loss[i]),
                        "epoch": epoch,
                    },
                )
                if step in cuts:
                    w.event(
                        step,
                        "lr_cut",
                        "validation loss plateaued (T7)",
                        {"tip": "T7", "old_lr": lr[i - 1], "new_lr": lr[i], "epoch": epoch},
                    )
    return run_id, spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None, help="default 1,000,000 (50,000: --quick)")
    p.add_argument("--small", type=int, default=1_000)
    p.add_argument("--repeat", type=int, default=None, help="default 11, or 3 with --quick")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 50_000 if args.quick else 1_000_000
    if args.repeat is None:
        args.repeat = 3 if args.quick else 11

    with tempfile.TemporaryDirectory(prefix="tb-bench-ui-") as tmp:
        os.environ["TRAINBOARD_HOME"] = tmp
        from app import charts
        from jobs import service
        from jobs.store import reader
        from jobs.store.db import connect, db_path

        try:  # exactly what st.altair_chart does with a chart (private: fall back if it moves)
            from streamlit.elements.vega_charts import (
                _convert_altair_to_vega_lite_spec as to_vega,
            )
        except ImportError:

            def to_vega(chart):
                return chart.to_dict()

        db_file = db_path()
        t0 = time.perf_counter()
        big, spec = build_run(db_file, args.steps)
        build_s = time.perf_counter() - t0
        small, _ = build_run(db_file, args.small, epochs=min(100, args.small // 10))
        db = connect(db_file)
        print(
            f"store: {args.steps:,} + {args.small:,} steps × {len(KEYS)} keys written in "
            f"{build_s:.1f} s ({db_file.stat().st_size / 2**20:.0f} MiB)\n"
        )

        runs = ((f"{args.steps:,} steps", big), (f"{args.small:,} steps", small))
        keys = {r: [k for k in service.metric_keys(db, r) if charts.panel_of(k)] for _, r in runs}
        caches = {}
        for _, run_id in runs:  # warm imports, then the live page's cache
            charts.run_chart_data(db, run_id, spec=spec)
            caches[run_id] = charts.RunCache(run_id)
            charts.run_chart_data(db, run_id, spec=spec, cache=caches[run_id])
        # Big and small are timed alternately, so a busy machine slows both alike.
        times: dict[tuple[int, str], list[float]] = {}
        datas = {}

        def timed(run_id: int, what: str, fn):
            t = time.perf_counter()
            out = fn()
            times.setdefault((run_id, what), []).append(time.perf_counter() - t)
            return out

        for i in range(args.repeat):
            for _, r in runs:
                datas[r] = timed(r, "cold", lambda r=r: charts.run_chart_data(db, r, spec=spec))
                timed(
                    r, "live", lambda r=r: charts.run_chart_data(db, r, spec=spec, cache=caches[r])
                )
                timed(r, "read", lambda r=r: reader.series(db, r, keys[r]))
                if i < max(3, args.repeat // 2):
                    timed(
                        r,
                        "spec",
                        lambda r=r: [to_vega(c) for c in charts.run_charts(datas[r]).values()],
                    )
        med = {k: statistics.median(v) for k, v in times.items()}
        rows = [
            (
                label,
                datas[r].points,
                datas[r].events.shape[0],
                med[r, "cold"],
                med[r, "read"],
                med[r, "live"],
                med[r, "spec"],
            )
            for label, r in runs
        ]

        print(
            f"{'run':>16} {'points drawn':>13} {'events':>7} {'chart data':>11} "
            f"{'(store read)':>13} {'live refresh':>13} {'chart spec':>11}"
        )
        for label, pts, ev, cold, read, live, spec_s in rows:
            print(
                f"{label:>16} {pts:>13,} {ev:>7} {cold:>10.3f}s {read:>12.3f}s {live:>12.3f}s "
                f"{spec_s:>10.3f}s"
            )
        big_s, small_s = rows[0][3], rows[1][3]
        ratio = big_s / small_s
        ok_abs, ok_ratio = big_s <= TARGET_S, ratio <= TARGET_RATIO
        print(
            f"\ntarget: chart data of the big run ≤ {TARGET_S} s: {big_s:.3f} s "
            f"{'OK' if ok_abs else 'MISSED'}; within {TARGET_RATIO:g}× of the small run: "
            f"{ratio:.2f}× {'OK' if ok_ratio else 'MISSED'}"
        )
        print(
            "(chart spec = Altair build + Streamlit's conversion, mostly a fixed cost per panel: "
            "each key is capped at 2,000 points, so it hardly depends on the run's length)"
        )
        db.close()
        if args.quick:
            print("(--quick: the targets are for the full sizes; the exit status ignores them)")
            return 0
        return 0 if ok_abs and ok_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
