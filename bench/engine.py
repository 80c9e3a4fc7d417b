"""Engine throughput vs. a plain hand-written PyTorch loop, in one invocation.

    .venv/bin/python bench/engine.py [--device cuda] [--quick]

For an MLP on 200k×64 synthetic rows and an LSTM on a sequence task, both loops train the same
model on the same in-memory tensors with the same batch size, and both validate once per epoch.
The engine runs with all monitoring on (loss/grad-norm logging every 10 steps, the T6 update
ratio every 50 steps, doctor rules, LR schedule, best-weights tracking; preflight off because it
runs once per run, not per step). Runs alternate plain/engine and the best of the repeats on each
side is reported (noise only ever slows a run down). Then a K=10 ensemble (torch.func stacked)
against one member and against ten members trained one after another.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue` (used by torch and multiprocessing): swap it for the repo root.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from engine.config import resolve_config  # noqa: E402
from engine.data import Prepared, Preprocessor  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.sink import MemorySink  # noqa: E402
from engine.train import train  # noqa: E402


def synthetic(n: int, shape: tuple[int, ...], classes: int | None, seed: int = 0) -> Prepared:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    if classes:
        w = torch.randn(math.prod(shape), classes, generator=g)
        y = (x.flatten(1) @ w).argmax(1)
    else:
        y = x[:, :, 0].mean(1)
    nv = n // 10
    feat = shape[-1]
    pre = Preprocessor(
        torch.zeros(feat), torch.ones(feat), torch.zeros(feat, dtype=torch.bool), torch.zeros(feat)
    )
    modality = "tabular" if len(shape) == 1 else "sequence"
    return Prepared(
        x[nv:],
        y[nv:],
        x[:nv],
        y[:nv],
        pre,
        "classification" if classes else "regression",
        modality,
        classes,
        shape,
        [],
        None,
        None,
        1.0 if not classes else None,
    )


def plain_loop(cfg, data: Prepared, device: torch.device) -> float:
    """What a careful person writes by hand: shuffle, forward, mean loss, backward, step (+ clip
    when the config clips, since that is part of training, not monitoring), validate per epoch."""
    out = data.n_classes or 1
    model = build_model(cfg.model, data.input_shape, out, data.modality, seed=cfg.train.seed).to(
        device
    )
    opt = (
        torch.optim.SGD(
            model.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
        )
        if cfg.optim.name == "sgd"
        else torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    )
    x, y = data.x_train.to(device), data.y_train.to(device)
    xv, yv = data.x_val.to(device), data.y_val.to(device)
    bs = cfg.train.batch_size
    n = len(x)
    loss_fn = (
        (lambda o, t: F.cross_entropy(o, t))
        if data.task == "classification"
        else (lambda o, t: F.mse_loss(o.squeeze(-1), t))
    )
    samples = 0
    t0 = time.perf_counter()
    for _ in range(cfg.train.epochs):
        model.train()
        perm = torch.randperm(n).to(device)
        for i in range(math.ceil(n / bs)):
            idx = perm[i * bs : (i + 1) * bs]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip_norm)
            opt.step()
            samples += len(idx)
        model.eval()
        with torch.no_grad():
            float(loss_fn(model(xv), yv))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples / (time.perf_counter() - t0)


def engine_loop(cfg, data: Prepared, device: torch.device) -> float:
    t0 = time.perf_counter()
    res = train(cfg, data, sink=MemorySink(), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    steps = res.summary["steps"]
    bs = cfg.train.batch_size
    n = len(data.x_train)
    samples = (steps // math.ceil(n / bs)) * n * cfg.ensemble.members
    return samples / (time.perf_counter() - t0)


def compare(
    name: str, cfg, data: Prepared, device: torch.device, repeats: int
) -> tuple[str, float, float, float]:
    plain, eng = [], []
    plain_loop(cfg, data, device)  # warm-up (allocator, kernels)
    for _ in range(repeats):
        plain.append(plain_loop(cfg, data, device))
        eng.append(engine_loop(cfg, data, device))
    # The best of the repeats on each side: on a shared machine other processes only ever slow a
    # run down, so the fastest repeat is the closest to what the code itself costs.
    p, e = max(plain), max(eng)
    return name, p, e, e / p


def fixed(cfg_overrides: dict, preset: str = "sutskever"):
    base = {
        "train.preflight": False,
        "schedule.enabled": True,
        "train.early_stop_patience": None,
        "schedule.lr_floor": 0.0,
    }
    return resolve_config(preset, overrides=base | cfg_overrides)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows_mlp = 20_000 if args.quick else 200_000
    print(
        f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), torch {torch.__version__}"
    )

    results = []
    mlp_data = synthetic(rows_mlp, (64,), 10)
    mlp_cfg = fixed(
        {
            "model.kind": "mlp",
            "model.hidden": [256, 256],
            "train.epochs": 2,
            "train.batch_size": 128,
        }
    )
    results.append(
        compare(
            f"MLP 64-256-256-10, {rows_mlp // 1000}k rows, batch 128",
            mlp_cfg,
            mlp_data,
            dev,
            args.repeats,
        )
    )

    seq_rows = 4_000 if args.quick else 12_000
    seq_data = synthetic(seq_rows, (50, 2), None)
    lstm_cfg = fixed(
        {
            "model.kind": "lstm",
            "model.rnn_hidden": 64,
            "train.epochs": 2,
            "train.batch_size": 64,
            "train.clip_norm": 5.0,
            "optim.lr": 0.003,
        },
        preset="sequence",
    )
    results.append(
        compare(
            f"LSTM h64, {seq_rows // 1000}k seqs × 50 steps, batch 64, clip 5",
            lstm_cfg,
            seq_data,
            dev,
            args.repeats,
        )
    )

    print()
    print(
        f"{'workload':<52} {'plain samples/s':>16} {'engine samples/s':>17} {'ratio':>7}  target ≥ 0.97"
    )
    for name, p, e, r in results:
        print(f"{name:<52} {p:>16,.0f} {e:>17,.0f} {r:>7.3f}  {'PASS' if r >= 0.97 else 'MISS'}")

    # ---- T14: K=10 stacked vs one member vs ten sequential members
    ens_rows = 5_000 if args.quick else 20_000
    ens_data = synthetic(ens_rows, (64,), 10, seed=1)
    base = {
        "model.kind": "mlp",
        "model.hidden": [128, 128],
        "train.epochs": 3,
        "train.batch_size": 128,
    }

    def timed(cfg) -> float:
        t0 = time.perf_counter()
        train(cfg, ens_data, sink=MemorySink(), device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    timed(fixed(base))  # warm-up
    one = min(timed(fixed(base)) for _ in range(args.repeats))
    stacked = min(timed(fixed(base | {"ensemble.members": 10})) for _ in range(args.repeats))
    sequential = sum(timed(fixed(base | {"train.seed": s})) for s in range(10))
    print()
    print(f"T14 ensemble, MLP 64-128-128-10 on {ens_rows // 1000}k rows, 3 epochs:")
    print(f"  one member            {one:7.2f} s")
    print(f"  K=10 stacked (vmap)   {stacked:7.2f} s   = {stacked / one:5.2f}× one member")
    print(
        f"  10 members in a row   {sequential:7.2f} s   → stacked is {sequential / stacked:5.2f}× faster than sequential"
    )


if __name__ == "__main__":
    main()
