"""The one call the queue, the CLI and notebooks use: config in, trained run out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.data.base import RawDataset
from engine.data.loaders import load_dataset
from engine.data.prepare import prepare
from engine.data.report import dataset_report
from engine.faults import FaultHook
from engine.messages import Message
from engine.sink import Sink
from engine.threads import ThreadPolicy
from engine.train import TrainResult, train
from engine.vocab import EventKind, RunStatus

__all__ = ["TrainResult", "prepare_for", "run_training", "warm_up"]


def warm_up() -> None:
    """Import now what a run would import on first use, for a process that waits for its run
    (the queue's standby runner, ``jobs.queue.runner --standby``), so the run doesn't pay it.

    Importing this module already loads torch and the data layer. Left are the scikit-learn
    modules ``engine.baselines`` imports; with them loaded, the run fits its baselines in this
    process when it ends (a fraction of a second) instead of starting a child for them. Neither
    torch._dynamo (a run's optimizer skips torch.compile's guards, ``engine.optim``; a run with
    ``train.compile`` pays for compiling anyway) nor sympy (the T10 gradient check no longer
    goes through ``torch.autograd.grad`` with output gradients) is among them. A test checks
    that a run after this imports none of the heavy libraries."""
    import sklearn.ensemble  # noqa: F401
    import sklearn.exceptions  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import threadpoolctl  # noqa: F401


def prepare_for(cfg: Config, raw: RawDataset) -> Any:
    """``engine.data.prepare`` with the config's data settings and seed (the split included)."""
    d = cfg.data
    return prepare(
        raw,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        seed=cfg.train.seed,
        standardize=d.standardize,
        log1p=d.log1p,
        max_rows=d.max_rows,
    )


def run_training(
    config: Config | dict[str, Any],
    *,
    sink: Sink,
    should_stop: Callable[[], bool] | None = None,
    run_dir: Path | None = None,
    device: str = "cpu",
    resume: bool = True,
    faults: FaultHook | None = None,
    threads: ThreadPolicy | None = None,
    raw: RawDataset | None = None,
) -> TrainResult:
    """Load the dataset named in the config, prepare it (T1/T2), train, report through ``sink``.

    Raises ``ConfigError`` / ``DataError`` for bad input (nothing trained), ``CheckpointError``
    when a checkpoint exists but can't be resumed. ``faults``: the reliability suite's fault
    injection (``FaultHook.from_env(os.environ)``); None injects nothing. ``threads``: the CPU
    thread policy (``ThreadPolicy.from_env(os.environ)``); None leaves torch's setting alone.
    ``raw``: the dataset, when the caller has already loaded it from ``config.data``."""
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    d = cfg.data
    if raw is None:
        raw = load_dataset(d.dataset, target=d.target, task=d.task, columns=d.columns)
    data = prepare_for(cfg, raw)
    report = dataset_report(
        raw,
        batch_size=cfg.train.batch_size,
        log1p=d.log1p,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
    )  # T3 judged at the run's batch, T2 at its log1p setting
    for w in report.warnings:  # T1/T2 findings of the dataset report go on the run's timeline too
        sink.event(
            0,
            EventKind.PREFLIGHT,
            Message.from_json(w["msg"]) if w.get("msg") else w["message"],
            {
                "tip": w["tip"],
                "severity": w.get("severity", "warning"),
                "rule": "dataset_report",
                "passed": None,
            },
        )
    result = train(
        cfg,
        data,
        sink=sink,
        should_stop=should_stop,
        device=device,
        run_dir=run_dir,
        resume=resume,
        faults=faults,
        threads=threads,
    )
    if run_dir is not None and result.status == RunStatus.FINISHED:
        from engine.bundle import bundle_run  # issue 21: the run's model, usable without us

        bundle_std = faults.bundle_std if faults is not None else None
        step = int(result.summary.get("steps") or 0)
        result.summary["bundle"] = bundle_run(
            cfg, raw, data, result.summary, run_dir, sink, step, break_std=bundle_std
        )
    return result
