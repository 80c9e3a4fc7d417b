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

from engine.schedule import simulate_plateau_cuts


@dataclass
class Finding:
    tip: str  # "T6"
    severity: str  # "info" | "warning" | "error"
    rule: str  # short machine name, e.g. "ratio_low"
    message: str  # what we saw, in plain words
    suggestion: str = ""  # the change to try
    passed: bool | None = None  # pre-flight checks: pass/fail; live rules: None
    data: dict[str, Any] = field(default_factory=dict)
    # The suggestion as config overrides, e.g. {"optim.lr": 0.033}; {} when there is no single
    # setting to change or the run already has it.
    change: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sig(x: float) -> float:
    """Three significant digits: a suggested LR of 0.0333, not 0.03333333."""
    return float(f"{x:.3g}")


def _new(change: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``change`` as it is, or {} when the run already has every value in it."""
    return {} if all(k in current and current[k] == v for k, v in change.items()) else change


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
        what = f"log({n_classes}) = {expected:.3f}"
    else:
        # standardized regression targets: predicting ~0 gives MSE ≈ 1
        expected, ok, what = 1.0, init_loss <= 3.0, "about 1.0 (standardized targets)"
    msg = f"loss at initialisation is {init_loss:.3f}; expected {what}"
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
        ""
        if ok
        else "the initial weights are too large or too small: try model.init=normal-0.02 or model.init=scaled with a smaller init_scale",
        passed=ok,
        data={"init_loss": init_loss, "expected": expected},
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
        f"inputs after preprocessing: largest |mean| {worst_mean:.3f}, largest |std − 1| {worst_std:.3f}",
        ""
        if ok
        else "turn data.standardize on; big offsets make weight updates huge and correlated",
        passed=ok,
        data={"max_abs_mean": worst_mean, "max_std_dev": worst_std},
        change={} if ok else _new({"data.standardize": True}, {"data.standardize": standardize}),
    )


def gradcheck_model(model: nn.Module, x: torch.Tensor) -> Finding:
    """T10: torch.autograd.gradcheck in float64 on a 2-sample input, through the inputs and the
    output layer's bias (checking every weight numerically would take minutes on real models)."""
    m = copy.deepcopy(model).double().cpu().eval()
    xin = x[:2].detach().double().cpu().requires_grad_(True)
    last_bias = [p for n, p in m.named_parameters() if n.endswith("bias")][-1:]
    ok, err = gradcheck_fn(lambda inp, *_: m(inp), (xin, *last_bias))
    return Finding(
        "T10",
        "info" if ok else "error",
        "gradcheck",
        "gradient check passed (analytic = numerical gradients, float64)"
        if ok
        else f"gradient check FAILED: {err}",
        "" if ok else "a layer computes its gradient wrongly; check any custom autograd code",
        passed=ok,
    )


def gradcheck_fn(
    fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
) -> tuple[bool, str]:
    """Run torch.autograd.gradcheck without raising; returns (passed, first line of the error)."""
    try:
        ok = torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)
        return bool(ok), ""
    except RuntimeError as e:  # gradcheck raises GradcheckError (a RuntimeError) on mismatch
        return False, str(e).strip().splitlines()[0]


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
            "activation scale: too few layers to compare",
            passed=True,
        )
    first, last = stds[0][1], stds[-2][1] if len(stds) > 2 else stds[-1][1]
    ratio = last / first if first > 0 else 0.0
    ok = 1e-2 <= ratio <= 1e2
    return Finding(
        "T8",
        "info" if ok else "warning",
        "activation_scale",
        f"activation spread changes ×{ratio:.3g} from the first to the last hidden layer",
        ""
        if ok
        else "the signal vanishes or explodes through depth: try model.init=scaled with init_scale 1",
        passed=ok,
        data={"layers": stds},
        change={}
        if ok
        else _new(
            {"model.init": "scaled", "model.init_scale": 1.0},
            {"model.init": init, "model.init_scale": init_scale},
        ),
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
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
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
    detail = f"accuracy {acc:.0%}" if acc is not None else f"loss {first:.3g} → {final:.3g}"
    return Finding(
        "T10",
        "info" if ok else "warning",
        "overfit_one_batch",
        f"memorising one batch of 16: {detail}"
        + ("" if ok else " — it should reach 100% / near-zero loss"),
        ""
        if ok
        else "check the labels, the loss and the gradients; a model that can't memorise 16 examples won't learn the dataset",
        passed=ok,
        data={"first_loss": first, "last_loss": last},
    )


# ------------------------------------------------------------------ live rules


def rule_ratio(
    summary_ratios: Sequence[float], low: float, high: float, window: int, *, lr: float
) -> Finding | None:
    """T6: the median update/weight ratio stayed outside [low, high] for `window` measurements.
    ``lr``: the optimizer's LR now, which the change raises ×3 (at most 10) or lowers ÷3."""
    if len(summary_ratios) < window:
        return None
    recent = summary_ratios[-window:]
    if all(r < low for r in recent):
        return Finding(
            "T6",
            "warning",
            "ratio_low",
            f"update/weight ratio has stayed below {low:g} (now {recent[-1]:.2g}): learning is very slow",
            "raise the learning rate (e.g. ×3)",
            data={"ratio": recent[-1]},
            change=_new({"optim.lr": _sig(min(lr * 3, 10.0))}, {"optim.lr": lr}),
        )
    if all(r > high for r in recent):
        return Finding(
            "T6",
            "warning",
            "ratio_high",
            f"update/weight ratio has stayed above {high:g} (now {recent[-1]:.2g}): learning is unstable",
            "lower the learning rate (e.g. ÷3) or clip gradients (T9)",
            data={"ratio": recent[-1]},
            change=_new({"optim.lr": _sig(lr / 3)}, {"optim.lr": lr}),
        )
    return None


GRAD_HISTORY = 100  # rule_exploding compares with the median of this many earlier norms


def rule_exploding(
    grad_norms: Sequence[float],
    factor: float,
    min_history: int = 10,
    *,
    clip_norm: float | None,
    lr: float,
) -> Finding | None:
    """T9: the newest gradient norm is `factor`× the running median of the earlier ones.
    The change clips the gradient (``clip_norm``: the run's ``train.clip_norm``), or when it
    already is, lowers ``lr`` (the optimizer's LR now) ÷3."""
    if len(grad_norms) <= min_history:
        return None
    med = statistics.median(grad_norms[-GRAD_HISTORY - 1 : -1])
    last = grad_norms[-1]
    if med > 0 and last > factor * med:
        return Finding(
            "T9",
            "warning",
            "exploding_gradient",
            f"gradient norm jumped to {last:.3g}, {last / med:.0f}× its recent median {med:.3g}",
            "clip the gradient norm (train.clip_norm=5) or lower the learning rate",
            data={"norm": last, "median": med},
            change={"train.clip_norm": 5.0}
            if clip_norm is None
            else _new({"optim.lr": _sig(lr / 3)}, {"optim.lr": lr}),
        )
    return None


def rule_plateau(
    val_losses: Sequence[float], *, factor: float, patience: int, threshold: float
) -> Finding | None:
    """T7 for runs with a fixed LR: where the real ReduceLROnPlateau would have cut just now."""
    cuts = simulate_plateau_cuts(val_losses, factor=factor, patience=patience, threshold=threshold)
    if cuts and cuts[-1][0] == len(val_losses) - 1:
        return Finding(
            "T7",
            "info",
            "plateau",
            f"validation loss has not improved for {patience + 1} epochs: a scheduled run would cut the LR here",
            "turn schedule.enabled on so the LR is divided by 2 on plateaus",
            change={"schedule.enabled": True},  # the loop runs this rule on fixed-LR runs only
        )
    return None


def rule_overfitting(
    train_losses: Sequence[float],
    val_losses: Sequence[float],
    window: int = 3,
    *,
    dropout: float,
    noise_std: float,
) -> Finding | None:
    """T13/T12: validation loss rose `window` epochs in a row while training loss kept falling.
    The change adds dropout (the run's ``model.dropout``), or when it has some, input noise
    (``augment.noise_std``)."""
    if len(val_losses) <= window or len(train_losses) <= window:
        return None
    v = val_losses[-window - 1 :]
    t = train_losses[-window - 1 :]
    if all(b > a for a, b in zip(v, v[1:], strict=False)) and all(
        b < a for a, b in zip(t, t[1:], strict=False)
    ):
        return Finding(
            "T13",
            "warning",
            "overfitting",
            f"validation loss rose {window} epochs in a row while training loss fell: the model is memorising",
            "add dropout (model.dropout=0.3), augmentation (T12) or more data; early stopping keeps the best weights",
            change={"model.dropout": 0.3}
            if dropout < 0.3
            else _new({"augment.noise_std": 0.05}, {"augment.noise_std": noise_std}),
        )
    return None


def rule_divergence(
    train_losses: Sequence[float], initial: float | None, *, lr: float
) -> Finding | None:
    """T5: the training loss is far above where it started. ``lr``: the optimizer's LR now,
    which the change lowers ÷10."""
    if initial is None or not train_losses or not math.isfinite(initial):
        return None
    last = train_losses[-1]
    if math.isfinite(last) and last > 3 * max(initial, 1e-8):
        return Finding(
            "T5",
            "warning",
            "loss_rising",
            f"training loss {last:.3g} is over 3× its starting value {initial:.3g}",
            "lower the learning rate (e.g. ÷10)",
            change=_new({"optim.lr": _sig(lr / 10)}, {"optim.lr": lr}),
        )
    return None
