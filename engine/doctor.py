"""The training doctor: pre-flight checks and live rules, each tied to a tip id.

Rules decide, the loop acts (STYLE #5): every rule here is a side-effect-free function of the
recent history that returns findings; ``engine.train`` turns them into ``doctor`` / ``preflight``
events. Pre-flight checks take the model and a little data and also return findings.

Each finding that has one concrete fix carries it as ``change`` (config dotted field → value,
e.g. ``{"optim.lr": 0.033}``), computed from the current settings the rule is given; a rule
never suggests a value the run already has (``change`` is then ``{}``).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from engine import optim
from engine.messages import Message, as_json
from engine.schedule import simulate_plateau_cuts


@dataclass
class Finding:
    tip: str  # "T6"
    severity: str  # "info" | "warning" | "error"
    rule: str  # short machine name, e.g. "ratio_low"
    message: Message  # what we saw, in plain words (a code with its numbers)
    suggestion: Message | str = ""  # the change to try ("" when there is none)
    passed: bool | None = None  # pre-flight checks: pass/fail; live rules: None
    data: dict[str, Any] = field(default_factory=dict)
    # The suggestion as config overrides, e.g. {"optim.lr": 0.033}; {} when there is no single
    # setting to change or the run already has it.
    change: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON: ``message``/``suggestion`` in English, and their codes and
        params as ``message_msg``/``suggestion_msg`` (None without one), for the dashboard."""
        out = asdict(self)
        out["message"], out["suggestion"] = str(self.message), str(self.suggestion)
        out["message_msg"] = as_json(self.message)
        out["suggestion_msg"] = as_json(self.suggestion)
        return out


def _sig(x: float) -> float:
    """Three significant digits: a suggested LR of 0.0333, not 0.03333333."""
    return float(f"{x:.3g}")


def _new(change: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``change`` as a whole (so applying it alone gives the intended setup), or {} when the run
    already has every value in it: a change never repeats the run's own configuration."""
    return {} if all(k in current and current[k] == v for k, v in change.items()) else change


def next_step(ladder: Sequence[dict[str, Any]], current: dict[str, Any]) -> dict[str, Any]:
    """The next step up a ladder of fixes (in the order to try them): the first rung the run has
    not reached; {} when it has reached every rung.

    A value is reached when the run has it, or, for numbers, has at least it (a run with
    dropout 0.4 has passed the rung "dropout 0.3", so the next step is never a step back)."""

    def reached(key: str, value: Any) -> bool:
        if key not in current:
            return False
        have = current[key]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, have))
        return have >= value if numbers else have == value

    for rung in ladder:
        if not all(reached(k, v) for k, v in rung.items()):
            return dict(rung)
    return {}


def _describe_change(change: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in change.items())


# ------------------------------------------------------------------ pre-flight


def check_init_loss(
    init_loss: float,
    task: str,
    n_classes: int | None,
    *,
    init: str = "default",
    init_scale: float = 1.0,
) -> Finding:
    """T8 (and Karpathy's recipe): an untrained classifier should score about log K.
    ``init``/``init_scale``: the run's ``model.init``/``model.init_scale``, for the change."""
    if task == "classification" and n_classes:
        expected = math.log(n_classes)
        ok = abs(init_loss - expected) <= max(0.5 * expected, 0.25)
        msg = Message(
            "doctor.init_loss", init_loss=init_loss, n_classes=n_classes, expected=expected
        )
    else:
        # standardized regression targets: predicting ~0 gives MSE ≈ 1
        expected, ok = 1.0, init_loss <= 3.0
        msg = Message("doctor.init_loss_regression", init_loss=init_loss)
    current = {"model.init": init, "model.init_scale": init_scale}
    fix = (
        {"model.init": "normal-0.02"}
        if init != "normal-0.02"
        else {"model.init": "scaled", "model.init_scale": 0.1}
    )
    return Finding(
        "T8",
        "info" if ok else "warning",
        "init_loss",
        msg,
        "" if ok else Message("doctor.init_loss.fix", change=_describe_change(_new(fix, current))),
        passed=ok,
        data={
            "init_loss": init_loss,
            "expected": expected,
            "n_classes": n_classes if task == "classification" and n_classes else None,
        },
        change={} if ok else _new(fix, current),
    )


def check_standardized(
    x_train: torch.Tensor, modality: str, *, standardize: bool = False
) -> Finding:
    """T2: after preprocessing, each input dimension should have mean ≈ 0 and spread ≈ 1.
    ``standardize``: the run's ``data.standardize``, for the change."""
    dims = {"tabular": (0,), "image": (0, 2, 3), "sequence": (0, 1)}[modality]
    x = x_train.double()
    finite = torch.nan_to_num(x)
    mean = finite.mean(dim=dims)
    std = finite.std(dim=dims)
    live = std > 1e-8  # constant columns stay at 0 and are reported by the dataset report
    worst_mean = float(mean[live].abs().max()) if live.any() else 0.0
    worst_std = float((std[live] - 1).abs().max()) if live.any() else 0.0
    ok = worst_mean < 0.1 and worst_std < 0.5
    return Finding(
        "T2",
        "info" if ok else "warning",
        "inputs_standardized",
        Message("doctor.inputs_standardized", max_abs_mean=worst_mean, max_std_dev=worst_std),
        "" if ok else Message("doctor.inputs_standardized.fix"),
        passed=ok,
        data={"max_abs_mean": worst_mean, "max_std_dev": worst_std},
        change={} if ok else _new({"data.standardize": True}, {"data.standardize": standardize}),
    )


GRADCHECK_ENTRIES = 4  # entries sampled from each parameter tensor (and 8 from the input)


def gradcheck_model(model: nn.Module, x: torch.Tensor, *, seed: int = 0) -> Finding:
    """T10: the analytic gradient against central finite differences, in float64, for every
    parameter tensor (``GRADCHECK_ENTRIES`` sampled entries of each weight and bias) and for
    sampled input entries, on 2 rows of ``x`` in eval mode (dropout off).

    The rows get a little seeded noise so no unit sits exactly on a ReLU kink or a max-pool tie
    (an all-zero row with zero biases would, and finite differences are wrong there). A failure
    names the parameters and their layers; only a custom (non-PyTorch) module is "your code"."""
    m = copy.deepcopy(model).double().cpu().eval()
    gen = torch.Generator().manual_seed(seed)
    rows = x[:2].detach().double().cpu()
    rows = rows + 0.1 * torch.randn(rows.shape, generator=gen, dtype=torch.float64)
    tensors = dict(m.named_parameters())
    failed: list[tuple[str, str]] = []
    for name, p in [*tensors.items(), ("input", rows)]:
        k = 2 * GRADCHECK_ENTRIES if name == "input" else GRADCHECK_ENTRIES
        idx = torch.randperm(p.numel(), generator=gen)[:k]
        base = p.detach().flatten()

        def fn(vals: torch.Tensor, name: str = name, base: torch.Tensor = base, idx=idx):
            t = base.index_put((idx,), vals).view(
                (rows if name == "input" else tensors[name]).shape
            )
            if name == "input":
                return m(t)
            return functional_call(m, {name: t}, (rows,))

        ok, err = gradcheck_fn(fn, (base[idx].clone().requires_grad_(True),))
        if not ok:
            failed.append((name, err))
    return _gradcheck_finding(m, failed)


def _gradcheck_finding(m: nn.Module, failed: list[tuple[str, str]]) -> Finding:
    if not failed:
        return Finding(
            "T10",
            "info",
            "gradcheck",
            Message("doctor.gradcheck_passed"),
            passed=True,
        )
    custom = _custom_modules(m)
    where = [Message("doctor.gradcheck_where", param=n, layer=_layer_of(m, n)) for n, _ in failed]
    why = (
        Message("doctor.gradcheck.fix_custom", modules=", ".join(custom))
        if custom
        else Message("doctor.gradcheck.fix_builtin")
    )
    return Finding(
        "T10",
        "error" if custom else "warning",
        "gradcheck",
        Message("doctor.gradcheck_failed", where=where, error=failed[0][1]),
        why,
        passed=False,
        data={
            "failed": [n for n, _ in failed],
            "custom_modules": custom,
            "where": "; ".join(where),
            "error": failed[0][1],
        },
    )


def _is_builtin(mod: nn.Module) -> bool:
    return type(mod).__module__.startswith("torch.")


def _layer_of(m: nn.Module, pname: str) -> Message:
    if pname == "input":
        return Message("doctor.gradcheck_input")
    owner = m.get_submodule(pname.rpartition(".")[0])
    kind = "doctor.gradcheck_builtin" if _is_builtin(owner) else "doctor.gradcheck_custom"
    return Message("doctor.gradcheck_layer", layer=type(owner).__name__, kind=Message(kind))


def _custom_modules(m: nn.Module) -> list[str]:
    """Modules that compute something themselves: not PyTorch's, and not only a container
    (their forward is more than calling children, which we can't see: a module with its own
    parameters or with no children counts)."""
    out = []
    for name, mod in m.named_modules():
        if _is_builtin(mod):
            continue
        own = any(True for _ in mod.parameters(recurse=False))
        if own or not any(True for _ in mod.children()):
            out.append(f"{name or 'the model'} ({type(mod).__name__})")
    return out


def gradcheck_fn(
    fn: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> tuple[bool, str]:
    """The analytic Jacobian of ``fn`` at ``inputs`` (float64) against central finite
    differences, the comparison torch.autograd.gradcheck makes (``|a - n| <= atol + rtol |n|``
    for every entry); returns (passed, the first line of what failed), never raises.

    Written here rather than calling torch.autograd.gradcheck: torch's builds the analytic
    Jacobian with ``torch.autograd.grad`` given output gradients, and that call imports torch's
    symbolic shapes and sympy the first time (0.2 s, most of a small run's pre-flight). One
    backward pass per scalar output gives the same rows and imports nothing."""
    wrt = [t for t in inputs if t.requires_grad]
    with torch.enable_grad():
        out = fn(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    for j, o in enumerate(outs):
        flat = o.reshape(-1)
        analytic = [torch.zeros(t.numel(), flat.numel(), dtype=torch.float64) for t in wrt]
        for r in range(flat.numel()):
            grads = torch.autograd.grad(flat[r], wrt, retain_graph=True, allow_unused=True)
            for a, g in zip(analytic, grads, strict=True):
                if g is not None:
                    a[:, r] = g.reshape(-1).to(torch.float64)
        for i, (t, a) in enumerate(zip(wrt, analytic, strict=True)):
            numeric = torch.zeros_like(a)
            entries = t.data.view(-1)
            with torch.no_grad():
                for k in range(t.numel()):
                    orig = entries[k].item()
                    entries[k] = orig + eps
                    plus = _output(fn(*inputs), j)
                    entries[k] = orig - eps
                    minus = _output(fn(*inputs), j)
                    entries[k] = orig
                    numeric[k] = (plus - minus) / (2 * eps)
            if not torch.allclose(a, numeric, rtol=rtol, atol=atol):
                return False, f"Jacobian mismatch for output {j} with respect to input {i},"
    return True, ""


def _output(out: torch.Tensor | tuple[torch.Tensor, ...], j: int) -> torch.Tensor:
    return (out[j] if isinstance(out, tuple) else out).reshape(-1).to(torch.float64)


MIN_BATCHES = 4  # T3: fewer batches per epoch than this: too few updates
MAX_BATCH = 4096  # T3: above this a batch is "very large" whatever the data


def check_batch_size(batch_size: int, train_rows: int) -> Finding:
    """T3 with the run's own batch size (``train.batch_size``) and training rows: a batch at
    most 1/MIN_BATCHES of the rows (at least 4 full batches per epoch), at most MAX_BATCH,
    and a multiple of 8 (what accelerators handle best). The change is a multiple of 8 that
    fixes the first problem found (a smaller batch when there are two)."""
    problems: list[Message] = []
    params = {
        "batch_size": batch_size,
        "train_rows": train_rows,
        "min_batches": MIN_BATCHES,
    }
    fix: int | None = None
    batches = math.ceil(train_rows / max(1, min(batch_size, train_rows)))
    if batch_size * MIN_BATCHES > train_rows:
        fix = max(8, (train_rows // MIN_BATCHES) // 8 * 8)
        code = "doctor.batch_size.few_batches" if batches > 1 else "doctor.batch_size.few_batch"
        problems.append(Message(code, batches=batches, **params))
    if batch_size > MAX_BATCH:
        fix = fix or MAX_BATCH
        problems.append(Message("doctor.batch_size.huge", batch_size=batch_size))
    if batch_size % 8:
        fix = fix or max(8, round(batch_size / 8) * 8)
        problems.append(Message("doctor.batch_size.not_8", batch_size=batch_size))
    change = _new({"train.batch_size": fix}, {"train.batch_size": batch_size}) if fix else {}
    ok = not problems
    return Finding(
        "T3",
        "info" if ok else "warning",
        "batch_size",
        Message("doctor.batch_size_ok", batches=batches, **params)
        if ok
        else Message("doctor.batch_size", batch_size=batch_size, problems=problems),
        "" if ok or not change else Message("doctor.try", change=_describe_change(change)),
        passed=ok,
        data={
            "batch_size": batch_size,
            "train_rows": train_rows,
            "batches": batches,
            "min_batches": MIN_BATCHES,
            "max_batch": MAX_BATCH,
        },
        change=change,
    )


def check_activation_scale(
    model: nn.Module, x: torch.Tensor, *, init: str = "default", init_scale: float = 1.0
) -> Finding:
    """T8: in deep nets small random weights shrink the signal layer by layer; measure it.
    ``init``/``init_scale``: the run's ``model.init``/``model.init_scale``, for the change."""
    stds: list[tuple[str, float]] = []
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear | nn.Conv2d):
            hooks.append(
                mod.register_forward_hook(
                    lambda m, i, o, name=name: stds.append((name, float(o.detach().float().std())))
                )
            )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[:256])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if len(stds) < 2:
        return Finding(
            "T8",
            "info",
            "activation_scale",
            Message("doctor.activation_scale_few"),
            passed=True,
        )
    first, last = stds[0][1], stds[-2][1] if len(stds) > 2 else stds[-1][1]
    ratio = last / first if first > 0 else 0.0
    ok = 1e-2 <= ratio <= 1e2
    change = {} if ok else _init_step(init, init_scale)
    return Finding(
        "T8",
        "info" if ok else "warning",
        "activation_scale",
        Message("doctor.activation_scale", ratio=ratio),
        ""
        if ok
        else Message("doctor.activation_scale.fix", change=_describe_change(change))
        if change
        else Message("doctor.activation_scale.fix_init"),
        passed=ok,
        data={"layers": stds, "ratio": ratio},
        change=change,
    )


def _init_step(init: str, init_scale: float) -> dict[str, Any]:
    """T8's step for a signal that vanishes or explodes through depth: the scaled init at scale
    1 ({} when the run has it: then no single setting is the obvious next try)."""
    return _new(
        {"model.init": "scaled", "model.init_scale": 1.0},
        {"model.init": init, "model.init_scale": init_scale},
    )


def overfit_one_batch(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    task: str,
    steps: int = 200,
) -> Finding:
    """Karpathy's check beside T10: a working model memorises 16 examples within a few hundred
    Adam steps. Trains a throwaway copy; the real model is untouched."""
    model = make_model()
    model.train()
    opt = optim.make(torch.optim.Adam, model.parameters(), lr=3e-3)
    xb, yb = x[:16], y[:16]
    with torch.no_grad():
        first = float(loss_fn(model(xb), yb))
    last = first
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        last = float(loss.detach())
    model.eval()
    with torch.no_grad():
        out = model(xb)
        final = float(loss_fn(out, yb))
        acc = float((out.argmax(1) == yb).float().mean()) if task == "classification" else None
    ok = (acc == 1.0) if acc is not None else final < 0.05 * max(first, 1e-8)
    detail = (
        Message("doctor.overfit_one_batch.accuracy", accuracy=acc)
        if acc is not None
        else Message("doctor.overfit_one_batch.loss", first_loss=first, final_loss=final)
    )
    return Finding(
        "T10",
        "info" if ok else "warning",
        "overfit_one_batch",
        Message(
            "doctor.overfit_one_batch" if ok else "doctor.overfit_one_batch_failed", detail=detail
        ),
        "" if ok else Message("doctor.overfit_one_batch.fix"),
        passed=ok,
        data={"first_loss": first, "last_loss": last, "final_loss": final, "accuracy": acc},
    )


# ------------------------------------------------------------------ live rules


def ratio_interval(ratio_every: int, total_steps: int) -> int:
    """T6: steps between update/weight ratio readings. ``train.ratio_every``, but often enough
    that a run gets about 10 readings however short it is: min(ratio_every, max(1, total // 10)).
    A run of 3+ epochs with 10+ steps in all gets at least 10, enough for ``doctor.ratio_window``
    (5) readings in a row (at 50 steps apart a wine-sized run would get none)."""
    return max(1, min(ratio_every, total_steps // 10))


RATIO_FAR = 10  # T6: this far outside the band, 2 readings are enough


def rule_ratio(
    summary_ratios: Sequence[float],
    low: float,
    high: float,
    window: int,
    *,
    lr: float,
    base_lr: float | None = None,
    train_losses: Sequence[float] | None = None,
) -> Finding | None:
    """T6: the median update/weight ratio stayed outside [low, high] for `window` measurements,
    or for 2 in a row more than RATIO_FAR× outside it (a run whose updates are as big as its
    weights may diverge before `window` readings).

    ``lr``: the optimizer's LR now; ``base_lr``: the run's starting LR (``optim.lr``). Once the
    schedule has cut the LR (``lr`` below ``base_lr``), small updates are the cut's planned
    effect, not slow learning: no ``ratio_low``. The suggested LR is a new *starting* LR, so it
    is relative to ``base_lr`` (×3, at most 10; or ÷3): "raise" always means higher than the
    run started with (relative to the LR after the cuts it was 20× lower).

    "Unstable" needs a symptom: ``train_losses`` (one mean per epoch) that stopped falling. Big
    updates while the epoch loss keeps falling are a bold LR doing its job (seen on healthy runs
    of real tables), so ``ratio_high`` then stays quiet, unless the ratio is RATIO_FAR× above
    the band, where a run may diverge before an epoch ends. Without ``train_losses`` (a direct
    call) the ratio alone decides."""
    start = lr if base_lr is None else base_lr
    cut = base_lr is not None and lr < base_lr * (1 - 1e-6)
    recent = summary_ratios[-window:]
    far = summary_ratios[-2:]
    far_low = len(far) == 2 and all(r < low / RATIO_FAR for r in far)
    far_high = len(far) == 2 and all(r > high * RATIO_FAR for r in far)
    if far_low or far_high:
        recent = far
    elif len(recent) < window:
        return None
    if all(r < low for r in recent) and not cut:
        change = _new({"optim.lr": _sig(min(start * 3, 10.0))}, {"optim.lr": start})
        return Finding(
            "T6",
            "warning",
            "ratio_low",
            Message("doctor.ratio_low", low=low, ratio=recent[-1]),
            Message("doctor.ratio_low.fix", change=_describe_change(change))
            if change
            else Message("doctor.ratio_low.fix_max"),
            data={"ratio": recent[-1], "low": low, "high": high},
            change=change,
        )
    if all(r > high for r in recent) and (far_high or not _falling(train_losses)):
        change = _new({"optim.lr": _sig(start / 3)}, {"optim.lr": start})
        return Finding(
            "T6",
            "warning",
            "ratio_high",
            Message("doctor.ratio_high", high=high, ratio=recent[-1]),
            Message("doctor.ratio_high.fix", change=_describe_change(change)),
            data={"ratio": recent[-1], "low": low, "high": high},
            change=change,
        )
    return None


FALLING_WINDOW = 3  # epochs: the loss is still falling if these reached a new low


def _falling(train_losses: Sequence[float] | None) -> bool:
    """Whether the epoch training loss is still falling: one of its last FALLING_WINDOW epochs
    set a new low (an epoch mean is noisy, so one epoch above the last is no evidence). With
    too few epochs there is no evidence either way, so it counts as falling (no alarm)."""
    if train_losses is None:
        return False
    k = FALLING_WINDOW
    if len(train_losses) <= k:
        return True
    return min(train_losses[-k:]) < min(train_losses[:-k])


GRAD_HISTORY = 100  # rule_exploding compares with the median of this many earlier norms
CLIP_AT = 5.0  # T9: the advice's bound on the gradient norm (5, or 15), and the suggested one


def rule_exploding(
    grad_norms: Sequence[float],
    factor: float,
    min_history: int = 10,
    *,
    clip_norm: float | None,
    lr: float,
) -> Finding | None:
    """T9: the newest gradient norm is `factor`× the running median of the earlier ones, and
    over the bound clipping would hold it to (the run's ``clip_norm``, else CLIP_AT).

    The bound is what makes it an explosion worth clipping: near convergence most batches are
    already fit and give tiny gradients, so the median collapses, while a batch that is still
    misfit gives an ordinary gradient (1.3 or 3.7, no bigger than those training started
    with) that is 10× the median: seen on healthy small-data runs of the wine and
    breast-cancer tables. Clipping at 5 would not touch it, so "clip at 5" would change
    nothing. Norms that explode reach hundreds and more.

    The next step: clip the gradient at 5 (``clip_norm``: the run's ``train.clip_norm``); when
    it already clips, lower ``lr`` (the optimizer's LR now) ÷3."""
    if len(grad_norms) <= min_history:
        return None
    history = grad_norms[-GRAD_HISTORY - 1 : -1]
    med = statistics.median(history)
    last = grad_norms[-1]
    bound = CLIP_AT if clip_norm is None else clip_norm
    if not (med > 0 and last > factor * med and last > bound):
        return None
    if clip_norm is None:
        change: dict[str, Any] = {"train.clip_norm": CLIP_AT}
        suggestion = Message("doctor.exploding_gradient.fix")
    else:
        change = _new({"optim.lr": _sig(lr / 3)}, {"optim.lr": lr})
        suggestion = Message(
            "doctor.exploding_gradient.fix_lr",
            clip_norm=clip_norm,
            change=_describe_change(change),
        )
    return Finding(
        "T9",
        "warning",
        "exploding_gradient",
        Message("doctor.exploding_gradient", norm=last, times=last / med, median=med),
        suggestion,
        data={"norm": last, "median": med, "times": last / med, "clip_norm": clip_norm},
        change=change,
    )


def rule_range_test(
    suggested: float | None,
    lr: float,
    *,
    first_cut_epoch: int,
    best_epoch: int,
    best_lr: float | None,
) -> Finding | None:
    """T5 then T7, at the end of a finished run whose LR came from the LR range test
    (``optim.range_test_lr``, set by New run's "Use this LR"): how that LR fared against the
    plateau schedule. A note, not advice (severity info, no suggestion, never "Start here"):
    a cut is the schedule's normal work, so a cut LR does not make the range test wrong, and
    a run that never needed one says only that the LR suited it. None when the run has no
    range-test LR, its LR was changed after the test, or it has no best epoch."""
    if suggested is None or best_epoch <= 0 or best_lr is None:
        return None
    if not math.isclose(lr, suggested, rel_tol=1e-6):
        return None  # lr was edited after "Use this LR": there is nothing to compare
    if first_cut_epoch == 0 or first_cut_epoch >= best_epoch:
        message = Message("doctor.range_test_held", lr=lr, best=best_epoch)
    else:
        message = Message(
            "doctor.range_test_cut", lr=lr, held=first_cut_epoch, best=best_epoch, best_lr=best_lr
        )
    return Finding(
        "T5",
        "info",
        "range_test_lr",
        message,
        data={
            "lr": lr,
            "first_cut_epoch": first_cut_epoch,
            "best_epoch": best_epoch,
            "best_lr": best_lr,
        },
    )


def rule_plateau(
    val_losses: Sequence[float],
    *,
    factor: float,
    patience: int,
    threshold: float,
    schedule_enabled: bool = False,
) -> Finding | None:
    """T7 for runs with a fixed LR: where the real ReduceLROnPlateau would have cut just now.
    ``schedule_enabled``: the run's ``schedule.enabled``; a scheduled run gets no finding (its
    scheduler cuts for real, and the change would be a value it already has)."""
    if schedule_enabled:
        return None
    cuts = simulate_plateau_cuts(val_losses, factor=factor, patience=patience, threshold=threshold)
    if cuts and cuts[-1][0] == len(val_losses) - 1:
        return Finding(
            "T7",
            "info",
            "plateau",
            Message("doctor.plateau", epochs=patience + 1),
            Message("doctor.plateau.fix", factor=factor),
            data={"epochs": patience + 1, "factor": factor},
            change={"schedule.enabled": True},
        )
    return None


# T13 then T12: the fixes for overfitting, in the order to try them (see next_step).
OVERFIT_LADDER: tuple[dict[str, Any], ...] = (
    {"model.dropout": 0.3},
    {"augment.noise_std": 0.05},
    {"model.dropout": 0.5},
)


def rule_overfitting(
    train_losses: Sequence[float],
    val_losses: Sequence[float],
    window: int = 3,
    *,
    dropout: float,
    noise_std: float,
    best_val_accuracy: float | None = None,
    majority_share: float | None = None,
    val_scores: Sequence[float] | None = None,
    higher_is_better: bool = True,
    min_drop: float = 0.0,
) -> Finding | None:
    """T13/T12: validation loss rose `window` epochs in a row while training loss kept falling.
    The change is the next step of OVERFIT_LADDER the run (``model.dropout``,
    ``augment.noise_std``) has not reached; none once it has them all.

    Memorising needs something learned first: a classifier whose best validation accuracy is
    no better than always answering the largest class (``majority_share`` of the training
    rows) has learned nothing to forget, and its falling training loss has another cause
    (unscaled inputs, T2; a bad init, T8), so the rule stays quiet.

    And memorising means the validation *score* got worse, not only its loss: ``val_scores``
    (one per epoch: accuracy, or RMSE with ``higher_is_better=False``) whose newest value is
    worse than the best one before the window by more than ``min_drop`` (the loop passes 1.5
    rows' worth of accuracy, or 2 % of the RMSE: one validation row changing its mind is
    noise, not memorising). A rising validation loss at a steady 100 %
    accuracy is growing confidence, which early stopping already handles (it was a false
    alarm on a healthy run of the wine table).

    Both sides of that comparison are means of ``window`` epochs (:func:`_score_drop`): one
    lucky epoch early on, while the LR was high and the scores jumped about, is no yardstick
    (iris under small-data: 100 % once, 93 % for most of the run; barley: one low RMSE, then
    a plateau that crept up by 0.1 % over three epochs)."""
    if len(val_losses) <= window or len(train_losses) <= window:
        return None
    if (
        best_val_accuracy is not None
        and majority_share is not None
        and best_val_accuracy <= majority_share + 0.01
    ):
        return None
    v = val_losses[-window - 1 :]
    t = train_losses[-window - 1 :]
    if not (
        all(b > a for a, b in zip(v, v[1:], strict=False))
        and all(b < a for a, b in zip(t, t[1:], strict=False))
    ):
        return None
    if val_scores is not None and len(val_scores) > window:
        drop = _score_drop(val_scores, window, higher_is_better)
        if drop <= min_drop:
            return None
    change = next_step(OVERFIT_LADDER, {"model.dropout": dropout, "augment.noise_std": noise_std})
    return Finding(
        "T13",
        "warning",
        "overfitting",
        Message("doctor.overfitting", window=window),
        Message("doctor.overfitting.fix", change=_describe_change(change))
        if change
        else Message("doctor.overfitting.fix_data"),
        data={"window": window},
        change=change,
    )


def _score_drop(scores: Sequence[float], window: int, higher_is_better: bool) -> float:
    """How much worse the mean of the last ``window`` scores is than the best mean of
    ``window`` consecutive scores before them (fewer when there are fewer before)."""
    before, latest = scores[:-window], statistics.fmean(scores[-window:])
    k = min(window, len(before))
    means = [statistics.fmean(before[i : i + k]) for i in range(len(before) - k + 1)]
    best = max(means) if higher_is_better else min(means)
    return best - latest if higher_is_better else latest - best


def rule_divergence(
    train_losses: Sequence[float], initial: float | None, *, lr: float
) -> Finding | None:
    """T5: the epoch's training loss is over 3× where it started. ``train_losses``: one mean
    training loss per epoch; ``initial``: the same kind of average at the start, i.e. the first
    epoch's (the loop passes ``train_losses[0]``; one logged step is far noisier than an epoch
    mean and made healthy runs look like they were rising). ``lr``: the optimizer's LR now,
    which the change lowers ÷10. A loss at or below its start never fires."""
    if initial is None or not train_losses or not math.isfinite(initial):
        return None
    last = train_losses[-1]
    if math.isfinite(last) and last > 3 * max(initial, 1e-8):
        change = _new({"optim.lr": _sig(lr / 10)}, {"optim.lr": lr})
        return Finding(
            "T5",
            "warning",
            "loss_rising",
            Message("doctor.loss_rising", loss=last, initial=initial),
            Message("doctor.loss_rising.fix", change=_describe_change(change)),
            data={"loss": last, "initial": initial},
            change=change,
        )
    return None


MIN_ROWS_NEVER_PREDICTED = 5  # a class needs this many validation rows before it can fire
LEARNED_NOTHING_EPOCHS = 5  # a shorter run may simply not have started learning


def rule_never_predicted(
    cm: Sequence[Sequence[int]],
    class_names: Sequence[str] | None,
    *,
    class_weight: str,
    epochs: int | None = None,
) -> Finding | None:
    """T1: a class with at least MIN_ROWS_NEVER_PREDICTED validation rows that the best model
    never predicts (``cm``: the validation confusion matrix, rows true, columns predicted). The
    change: class weights, when the run had them off; else more examples of that class.

    ``epochs``: how many the run trained (None: not known). A run shorter than
    LEARNED_NOTHING_EPOCHS may not have learned the class yet, whatever its data (the quick
    preset's 3 epochs on the balanced wine table missed one), so neither fix would be the
    cause: no finding."""
    if epochs is not None and epochs < LEARNED_NOTHING_EPOCHS:
        return None
    missed = [
        (i, sum(row))
        for i, row in enumerate(cm)
        if sum(row) >= MIN_ROWS_NEVER_PREDICTED and sum(r[i] for r in cm) == 0
    ]
    if not missed:
        return None
    i, rows = max(missed, key=lambda m: m[1])
    name = str(class_names[i]) if class_names else str(i)
    change = {"train.class_weight": "auto"} if class_weight == "off" else {}
    return Finding(
        "T1",
        "warning",
        "class_never_predicted",
        Message("doctor.class_never_predicted", name=name, rows=rows),
        Message("doctor.class_never_predicted.fix")
        if change
        else Message("doctor.class_never_predicted.fix_data"),
        data={"class": name, "rows": rows, "classes_missed": len(missed)},
        change=change,
    )


def rule_learned_nothing(
    val_accuracy: float,
    majority_share: float,
    train_losses: Sequence[float],
    *,
    noise: float,
) -> Finding | None:
    """T1 at the end of a classifier's run of at least LEARNED_NOTHING_EPOCHS epochs: with its
    best weights it does no better on the validation rows than always answering the largest
    class (``majority_share`` of the training rows, plus ``noise``: 1.5 rows' worth). Either the
    labels don't go with the rows (shuffled or misaligned), or the columns can't predict the
    target. When a scale, init or LR finding explains it, the findings panel shows this one
    under that one (``jobs.runs.views.EXPLAINED_BY``)."""
    if len(train_losses) < LEARNED_NOTHING_EPOCHS or val_accuracy > majority_share + noise:
        return None
    return Finding(
        "T1",
        "warning",
        "learned_nothing",
        Message("doctor.learned_nothing", accuracy=val_accuracy, share=majority_share),
        Message("doctor.learned_nothing.fix"),
        data={"accuracy": val_accuracy, "majority_share": majority_share},
    )
