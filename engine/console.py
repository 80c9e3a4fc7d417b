"""Local, in-process training from the command line: ``trainboard train``.

A progress bar while it runs, every event as a line (LR cuts, doctor findings…), a summary
table at the end, and the checkpoint + resolved config written to the output folder.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.auto import DataFacts
from engine.config import add_set_option, list_presets, resolve_config
from engine.data.builtins import BUILTINS  # the names only: the parser of every command
from engine.errors import DataError, EngineError
from engine.faults import FaultHook
from engine.messages import stop_words
from engine.threads import ThreadPolicy
from engine.vocab import EventKind

_STYLE = {
    EventKind.LR_CUT: "cyan",
    EventKind.DOCTOR: "yellow",
    EventKind.DIVERGED: "bold red",
    EventKind.EARLY_STOP: "green",
    EventKind.LR_FLOOR: "green",
    EventKind.CLIP_BURST: "magenta",
    EventKind.PREFLIGHT: "dim",
    EventKind.CANCELLED: "red",
    EventKind.PLATEAU_HINT: "dim cyan",
}


class ConsoleSink:
    """A sink that draws a progress bar over epochs and prints events as they happen."""

    def __init__(self, epochs: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.bar.add_task("train", total=1.0, info="")
        self.epochs = epochs
        self.last: dict[str, float] = {}

    def __enter__(self) -> ConsoleSink:
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def log(self, step: int, values: dict[str, float]) -> None:
        self.last.update(values)
        parts = [f"step {step}"]
        for key in ("train/loss", "val/loss", "val/acc", "val/rmse", "lr"):
            if key in self.last:
                parts.append(f"{key} {self.last[key]:.4g}")
        self.bar.update(self.task, info="  ".join(parts))

    def event(self, step: int, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        style = _STYLE.get(kind, "")
        self.bar.console.print(
            f"[{style}]{kind:>13}[/] {message}" if style else f"{kind:>13} {message}"
        )

    def progress(self, fraction: float) -> None:
        """Called by the engine after each epoch with the fraction of epochs done."""
        self.bar.update(self.task, completed=fraction)


def add_train_args(p: argparse.ArgumentParser) -> None:
    names = ", ".join(pr.name for pr in list_presets())
    p.add_argument(
        "--preset", default="auto", help=f"one of: {names} (default: auto, fitted to the data)"
    )
    p.add_argument(
        "--dataset",
        required=True,
        help=f"a file (.csv .tsv .parquet .npz .zip) or builtin:NAME ({', '.join(BUILTINS)})",
    )
    p.add_argument(
        "--target",
        default=None,
        help="target column (default: target/label/y/class, else the last column)",
    )
    add_set_option(p, "override a setting, e.g. --set optim.lr=0.05 (repeatable)")
    p.add_argument(
        "--out", default=None, help="output folder (default: ./trainboard-runs/<preset>-<time>)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for this run (default: 1 for small models, else every core; "
        "also TRAINBOARD_THREADS)",
    )


def inferred(raw: Any, *, explicit_target: bool) -> str:
    """One line saying what Trainboard inferred from the file, before any training."""
    how = "as asked" if explicit_target else "inferred; change it with --target"
    target = f"target column {raw.target!r} ({how})" if raw.target else "target array"
    if raw.task == "classification":
        task = f"classification into {len(raw.class_names or [])} classes"
    else:
        task = "regression (a number per row)"
    shape = "×".join(str(d) for d in raw.x.shape[1:])
    return (
        f"[bold]data:[/] {len(raw.y):,} rows of {raw.modality} inputs ({shape}); {target}; "
        f"task: {task}"
    )


def summary_table(title: str, result: Any) -> Table:
    """The run's summary as a table: status, stop reason, best and test scores, baselines."""
    table = Table(title=f"{title}: {result.status}")
    table.add_column("")
    table.add_column("value", justify="right")
    s = result.summary
    rows = [
        ("status", result.status),
        ("stopped because", stop_words(s["stop_reason"])),
        ("epochs", s["epochs"]),
        ("steps", s["steps"]),
        ("best epoch", s["best_epoch"]),
        (
            f"best val {s['metric']}",
            f"{s['best_val_metric']:.4f}" if s["best_val_metric"] is not None else "—",
        ),
        ("best val loss", f"{s['best_val_loss']:.4f}" if s["best_val_loss"] is not None else "—"),
        (
            f"test {s['metric']} (held out, scored once)",
            f"{s['test_metric']:.4f}" if s.get("test_metric") is not None else "—",
        ),
        ("LR cuts (T7)", s["lr_cuts"]),
        ("final LR", f"{s['final_lr']:.3g}"),
        ("samples/s", f"{s['samples_per_s']:.0f}"),
        ("seconds", f"{s['seconds']:.1f}"),
    ]
    if "ensemble_gain" in s:
        rows += [
            (f"mean member {s['metric']}", f"{s['member_mean_metric']:.4f}"),
            ("ensemble gain (T14)", f"{s['ensemble_gain']:+.4f}"),
        ]
    for b in (s.get("baselines") or {}).values():  # scikit-learn on the same split
        rows.append((f"test {s['metric']}: {b['model']} (baseline)", f"{b['test_metric']:.4f}"))
    for k, v in rows:
        table.add_row(k, str(v))
    return table


def cmd_train(args: argparse.Namespace) -> int:
    from engine.api import run_training  # torch import only when training
    from engine.data.loaders import load_dataset

    console = Console(stderr=True)
    try:
        # Resolved twice: first for the data settings (a --set may change the task), then, once
        # the data is known, with its facts (the auto preset derives its settings from them).
        first = resolve_config(
            args.preset, dataset=args.dataset, target=args.target, overrides=args.overrides
        )
        d = first.data
        raw = load_dataset(d.dataset, target=d.target, task=d.task, columns=d.columns)
        cfg = resolve_config(
            args.preset,
            dataset=args.dataset,
            target=args.target,
            overrides=args.overrides,
            facts=DataFacts.from_raw(raw),
        )
    except DataError as e:
        console.print(f"[bold red]cannot train:[/] {e}")
        return 2
    except EngineError as e:
        console.print(f"[bold red]config error:[/] {e}")
        return 2
    console.print(inferred(raw, explicit_target=args.target is not None), soft_wrap=True)
    try:
        threads = ThreadPolicy.from_env(os.environ, threads=args.threads)
    except ValueError as e:
        console.print(f"[bold red]config error:[/] {e}")
        return 2
    out = Path(args.out or f"trainboard-runs/{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    sink = ConsoleSink(cfg.train.epochs, console)
    # What is loaded by now (torch, pandas, scikit-learn, the table) stays until the process
    # ends, so move it out of the garbage collector's sight: its full passes during the run
    # would scan all of it again and again, for nothing. gc.freeze is Python's documented tool
    # for this; it changes no result, only what the collector looks at.
    gc.freeze()
    try:
        with sink:
            # The reliability suite's fault injection, off unless its variables are set.
            result = run_training(
                cfg,
                sink=sink,
                run_dir=out,
                device=args.device,
                resume=False,
                faults=FaultHook.from_env(os.environ),
                threads=threads,
                raw=raw,
            )
    except (DataError, EngineError) as e:
        console.print(f"[bold red]cannot train:[/] {e}")
        return 2
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        return 130
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str))
    Console().print(summary_table(f"{cfg.preset} on {args.dataset}", result))
    console.print(f"checkpoint, model and resolved config in [bold]{out}[/]")
    # Once more before the process ends (the run imported more, e.g. the baselines'
    # scikit-learn): the interpreter's last collections at exit then skip the heap, which took
    # 1.4-1.8 s on the 178-row table, more than its 50 epochs. Everything the run wrote is
    # closed by now, and Python promises no finalizer for objects alive at exit anyway.
    gc.freeze()
    return 0 if result.status == "finished" else 1
