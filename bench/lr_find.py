"""The LR range test's suggestion against the LR that trains best in a grid (issue 23, §1).

    .venv/bin/python bench/lr_find.py [--dataset NAME ...] [--preset sutskever]
                                      [--seeds 0 1 2] [--grid 1e-4 3e-4 ...] [--quick]

For each builtin dataset: the range test (``engine.lr_find.lr_find``) with the preset's model,
optimizer and batch size, over 3 data orders; then the same preset trained to the end at every
LR of the grid (``optim.lr`` set, everything else the preset's, the baselines off), each over the
seeds, through ``run_training`` as a queued run would. "Trains best" is the lowest best-epoch
validation loss averaged over the seeds (continuous, unlike a test accuracy on ~100 rows); the
test-split metric is printed beside it. The baseline in the same invocation is the preset's own
LR: both are printed as a ratio to the best grid LR, and the target is the suggestion within
×3 of it.

``--quick`` is a smoke run (seconds): breast-cancer, seed 0, a 3-point grid, 3 epochs a run; it
prints the same table and exits 0 whatever the target says.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402

from engine import MemorySink, resolve_config, run_training  # noqa: E402
from engine.api import prepare_for  # noqa: E402
from engine.auto import DataFacts  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.lr_find import AGREE, RULES, lr_find  # noqa: E402

DATASETS = ["breast-cancer", "diabetes"]
GRID = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]  # ×√10 steps, rounded
QUICK_GRID = [1e-3, 1e-2, 1e-1]
QUICK_EPOCHS = 3


def grid_run(source: str, preset: str, lr: float, seed: int, epochs: int | None) -> dict:
    raw = load_dataset(source)
    over: dict[str, object] = {"optim.lr": lr, "train.seed": seed, "train.baselines": False}
    if epochs is not None:
        over["train.epochs"] = epochs
    cfg = resolve_config(preset, dataset=source, overrides=over, facts=DataFacts.from_raw(raw))
    res = run_training(cfg, sink=MemorySink(), raw=raw)
    s = res.summary
    loss = s.get("best_val_loss")
    ok = res.status != "diverged" and loss is not None and math.isfinite(loss)
    return {
        "val_loss": loss if ok else math.inf,  # a diverged seed rules its LR out
        "test": s.get("test_metric"),
        "metric": s.get("metric", ""),
        "status": str(res.status),
    }


def bench(name: str, preset: str, seeds: list[int], grid: list[float], epochs: int | None) -> bool:
    source = f"builtin:{name}"
    raw = load_dataset(source)
    cfg = resolve_config(preset, dataset=source, facts=DataFacts.from_raw(raw))
    t0 = time.perf_counter()
    found = lr_find(cfg, prepare_for(cfg, raw))
    t_find = time.perf_counter() - t0
    print(
        f"\n{name} ({preset}: {cfg.optim.name}, batch {cfg.train.batch_size}, "
        f"preset LR {cfg.optim.lr:.3g}), range test {t_find:.1f} s, "
        f"{len(found.curves)} orders, stops: {', '.join(c.stop for c in found.curves)}"
    )
    print(
        "  rules (median over orders):",
        "  ".join(f"{r} {found.rules.get(r, math.nan):.3g}" for r in RULES),
    )
    print(f"  {found.message()}")
    rows = []
    t0 = time.perf_counter()
    for lr in grid:
        runs = [grid_run(source, preset, lr, s, epochs) for s in seeds]
        losses = [r["val_loss"] for r in runs]
        tests = [r["test"] for r in runs if r["test"] is not None]
        rows.append(
            {
                "lr": lr,
                "val_loss": statistics.fmean(losses)
                if all(map(math.isfinite, losses))
                else math.inf,
                "test": statistics.fmean(tests) if len(tests) == len(runs) else math.nan,
                "metric": runs[0]["metric"],
                "diverged": sum(r["status"] == "diverged" for r in runs),
            }
        )
    t_grid = time.perf_counter() - t0
    best = min(rows, key=lambda r: r["val_loss"])
    print(f"  grid: {len(grid)} LRs × {len(seeds)} seeds in {t_grid:.0f} s")
    print(f"  {'LR':>8}  {'val loss':>9}  {'test ' + best['metric']:>9}  diverged")
    for r in rows:
        mark = "  ← best" if r is best else ""
        print(
            f"  {r['lr']:>8.3g}  {r['val_loss']:>9.4f}  {r['test']:>9.4f}  "
            f"{r['diverged']}/{len(seeds)}{mark}"
        )
    ratio_preset = cfg.optim.lr / best["lr"]
    print(f"  preset LR {cfg.optim.lr:.3g} / best {best['lr']:.3g} = {ratio_preset:.2f}×")
    for r in RULES:
        if r in found.rules:
            print(f"  {r:<8} {found.rules[r]:.3g} / best = {found.rules[r] / best['lr']:.2f}×")
    if found.lr is None:
        print("  suggestion: none (no reliable suggestion): MISS")
        return False
    ratio = found.lr / best["lr"]
    ok = 1 / AGREE <= ratio <= AGREE
    print(
        f"  suggestion {found.lr:.3g} / best {best['lr']:.3g} = {ratio:.2f}× "
        f"(target within ×{AGREE:g}): {'PASS' if ok else 'MISS'}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", nargs="+", default=None)
    ap.add_argument("--preset", default="sutskever")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--grid", nargs="+", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None, help="cap each grid run's epochs")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(1)  # a shared 2-core machine: one thread is the steadier measure
    if a.quick:
        names, seeds, grid, epochs = a.dataset or ["breast-cancer"], [0], QUICK_GRID, QUICK_EPOCHS
    else:
        names, seeds, grid, epochs = a.dataset or DATASETS, a.seeds, a.grid or GRID, a.epochs
    passed = [bench(n, a.preset, seeds, grid, epochs) for n in names]
    print(
        f"\n{sum(passed)}/{len(passed)} datasets: suggestion within ×{AGREE:g} of the best grid LR"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
