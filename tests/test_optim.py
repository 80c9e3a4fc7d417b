"""engine/optim.py: torch.optim's optimizers without their torch.compile guards (issue 20, §7).
The same arithmetic bit for bit, the same checkpoint format both ways, the LR schedule still
drives them, and a whole run imports no torch._dynamo."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine import optim

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}),
    (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (torch.optim.Adam, {"lr": 3e-3}),
    (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.01}),
]


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, 5, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(("cls", "kwargs"), CASES)
def test_the_plain_optimizer_matches_torchs_bit_for_bit_and_shares_its_checkpoints(cls, kwargs):
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    theirs = copy.deepcopy(ours)
    o1, o2 = optim.make(cls, ours.parameters(), **kwargs), cls(theirs.parameters(), **kwargs)
    assert type(o1) is not cls and isinstance(o1, cls)  # the guards really are skipped
    _train(ours, o1, 30, seed=1)
    _train(theirs, o2, 30, seed=1)
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True)
    )
    # a checkpoint written by one loads into the other, and both go on identically
    o1.load_state_dict(copy.deepcopy(o2.state_dict()))
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))
    _train(ours, o1, 10, seed=2)
    _train(theirs, o2, 10, seed=2)
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters(), strict=True)
    )


def test_the_plateau_schedule_cuts_the_plain_optimizers_lr():
    opt = optim.make(torch.optim.SGD, [torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    for _ in range(3):
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_a_compiled_run_keeps_torchs_own_class():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert type(optim.make(torch.optim.AdamW, params, compiled=True, lr=0.1)) is torch.optim.AdamW


def test_a_whole_run_imports_no_torch_dynamo(tmp_path):
    """The figure this module exists for, checked without a timing: `trainboard train`'s
    library path (load, split, auto preset, train with the LR schedule, checkpoints, baselines)
    leaves torch._dynamo unloaded."""
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from engine import MemorySink, resolve_config, run_training\n"
        "from engine.auto import DataFacts\n"
        "from engine.data import load_dataset\n"
        "raw = load_dataset('builtin:breast-cancer')\n"
        "cfg = resolve_config('auto', dataset='builtin:breast-cancer', facts=DataFacts.from_raw(raw),\n"
        "                     overrides={'train.epochs': 3})\n"
        f"run_training(cfg, sink=MemorySink(), raw=raw, run_dir=Path({str(tmp_path)!r}))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout[-2000:]
