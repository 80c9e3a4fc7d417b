"""The learning-rate range test (issue 23, §1; T5): which LR to start a run at.

Leslie Smith's range test as fastai's ``lr_find`` runs it: train the run's own model, optimizer
and batch size for about 100 steps while the LR rises exponentially from 1e-7 to 10, smooth the
loss (fastai's exponential moving average with bias correction), and stop once the smoothed
loss is 4× its minimum. One difference: the loss read after each step is the model's loss on
512 fixed training rows, not the step's own batch (see :func:`range_test` for why). The weights, the optimizer's state and torch's random state are put back
afterwards, so the test leaves the model as it found it.

Three rules read the curve, all at once:

- **valley** (fastai's default since 2.5): the middle of the curve's longest falling stretch;
- **steepest**: where the loss falls fastest per decade of LR (d loss / d log LR is lowest);
- **minimum ÷ 10**: a tenth of the LR at the lowest loss, the classic rule of thumb.

The test runs over 3 data orders (the same initial weights, batches drawn in 3 orders); each
rule's figure is the median over the orders, and the spread over the orders is the plot's band.
The suggestion is the middle of the three rules. It says "no reliable suggestion", and why, as
a :class:`Message`, instead of a number when: the loss never fell; it never diverged (the curve
has no right edge, so valley and minimum read a cut-off curve); the rules disagree by more than
×3; or the orders' suggestions do.

Why our own code: fastai's ``LRFinder`` needs a fastai ``Learner`` and Lightning's
``Tuner.lr_find`` a ``LightningModule``; neither is a dependency, and the loop is 30 lines
around the run's own ``engine.nets`` model and ``engine.optim`` optimizer. The rules follow
fastai's ``valley``, ``steep`` and ``minimum`` (fastai/callback/schedule.py), re-written here
over plain lists; the smoothing is fastai's ``AvgSmoothLoss``.

The rules and :func:`judge` are pure and torch-free (the dashboard and ``jobs`` read a stored
result with :meth:`LRFindResult.from_dict`); only :func:`range_test` and :func:`lr_find` import
torch, when called.
"""

from __future__ import annotations

import copy
import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.errors import ConfigError
from engine.messages import Message

__all__ = [
    "LRFindResult",
    "RangeCurve",
    "judge",
    "lr_find",
    "minimum",
    "range_test",
    "smooth",
    "steepest",
    "suggest",
    "valley",
]

START_LR = 1e-7  # fastai's defaults: 8 decades in 100 steps, ×1.2 a step
END_LR = 10.0
STEPS = 100
ORDERS = 3  # data orders the test repeats over
BETA = 0.98  # fastai's AvgSmoothLoss
DIVERGE = 4.0  # stop once the smoothed loss is this many times its minimum (fastai's stop_div)
AGREE = 3.0  # the rules, and the data orders, must agree within this factor
FELL = 0.9  # the loss "fell" when its minimum is under this share of where the curve starts
SKIP_START = 0.1  # fastai reads lrs[num_it // 10 : -5]: the first tenth is the smoother's warm-up
SKIP_END = 5  # ... and the last 5 points are the divergence itself
MIN_POINTS = 5  # fewer points than this left to read: nothing to suggest
# Bounds checked at the door, before anything is built (hostile or mistyped input).
STEP_BOUNDS = (20, 1000)
ORDER_BOUNDS = (1, 10)
LR_BOUNDS = (1e-10, 100.0)
STOP_EVERY = 10  # steps between asks of should_stop (it may read a database)
PROBE_ROWS = 512  # the fixed training rows the loss is measured on after each step
VALLEY_FALL = 0.01  # valley: a fall counts when it is this share of the curve's starting loss

RULES = ("valley", "steepest", "minimum")


# ---- the curve ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeCurve:
    """One pass of the range test: the LR and the loss at each step, raw and smoothed, and why
    it stopped: ``diverged`` (4× the minimum, or a NaN/inf loss), ``end`` (the last LR reached),
    or ``cancelled``."""

    order: int
    lrs: list[float]
    losses: list[float]  # smoothed
    raw: list[float]
    stop: str
    planned: int = STEPS  # the steps the schedule had, had it not stopped

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeCurve:
        return cls(
            int(d["order"]),
            [float(v) for v in d["lrs"]],
            [float(v) for v in d["losses"]],
            [float(v) for v in d["raw"]],
            str(d["stop"]),
            int(d.get("planned", STEPS)),
        )


def smooth(raw: Sequence[float], beta: float = BETA) -> list[float]:
    """fastai's smoothed loss: an exponential moving average of ``raw``, divided by
    1 - beta^n so the first points are not pulled towards 0."""
    out, avg = [], 0.0
    for n, x in enumerate(raw, start=1):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta**n))
    return out


def lr_schedule(steps: int, start: float = START_LR, end: float = END_LR) -> list[float]:
    """``steps`` LRs rising exponentially from ``start`` to ``end`` (both included)."""
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


# ---- the three rules (pure) -------------------------------------------------------------------


def valley(lrs: Sequence[float], losses: Sequence[float], fall: float = VALLEY_FALL) -> float:
    """fastai's valley: the longest (not necessarily contiguous) falling run of losses, and the
    point about halfway along it. fastai measures the run from ``end - length`` (one before its
    first point) and steps ``int(s) + int(s / 2)`` with ``s = span / 3`` from there; both are
    kept, so the same curve gives fastai's index.

    One change: a point is lower only when it is lower by ``fall`` × the curve's first loss
    (fastai: by anything). fastai's curve is the training batches' loss, whose noise breaks a
    "falling run" wherever the loss is flat; ours is measured on fixed rows (:func:`range_test`)
    and falls by a hair at every tiny LR, so without a floor the run starts at the first point
    and the valley lands decades too low (3.6e-4 against steepest 0.038 on breast-cancer; with
    fall=0 the fastai rule exactly)."""
    n = len(losses)
    floor = fall * abs(losses[0]) if n else 0.0
    run = [1] * n  # run[i]: the longest falling run that ends at point i
    end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] - floor and run[i] < run[j] + 1:
                run[i] = run[j] + 1
        if run[i] > run[end]:
            end = i
    start = max(0, end - run[end])
    third = (end - start) / 3
    return float(lrs[start + int(third) + int(third / 2)])


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The LR where the loss falls fastest per decade: the lowest d loss / d log LR, read
    between consecutive points (fastai's ``steep``)."""
    slopes = [
        (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i]))
        for i in range(len(lrs) - 1)
    ]
    return float(lrs[min(range(len(slopes)), key=slopes.__getitem__)])


def minimum(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A tenth of the LR at the lowest loss (fastai's ``minimum``)."""
    return float(lrs[min(range(len(losses)), key=losses.__getitem__)]) / 10


def trimmed(curve: RangeCurve) -> tuple[list[float], list[float]]:
    """The part of a curve the rules read: without the smoother's warm-up (the first tenth of
    the planned steps) and, when it diverged, the last 5 points (the divergence itself)."""
    lo = int(curve.planned * SKIP_START)
    hi = len(curve.lrs) - (SKIP_END if curve.stop == "diverged" else 0)
    return curve.lrs[lo:hi], curve.losses[lo:hi]


def suggest(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    """The three rules on one (trimmed) curve: {"valley", "steepest", "minimum"} → LR."""
    return {
        "valley": valley(lrs, losses),
        "steepest": steepest(lrs, losses),
        "minimum": minimum(lrs, losses),
    }


# ---- the verdict ----------------------------------------------------------------------------


@dataclass
class LRFindResult:
    """What the test found: the curves, each rule's LR (median over the orders) and its range
    over the orders, the suggestion (None when there is no reliable one) and the reasons
    (:class:`Message`) why not."""

    curves: list[RangeCurve]
    rules: dict[str, float] = field(default_factory=dict)
    spread: dict[str, list[float]] = field(default_factory=dict)  # rule → [lowest, highest]
    per_order: list[dict[str, float]] = field(default_factory=list)
    lr: float | None = None
    reasons: list[Message] = field(default_factory=list)

    @property
    def reliable(self) -> bool:
        return self.lr is not None

    def message(self) -> Message:
        """One line for a timeline or a terminal: the suggestion, or why there is none."""
        if self.lr is not None:
            return Message(
                "lr_find.suggest",
                lr=self.lr,
                orders=len(self.curves),
                **{r: self.rules[r] for r in RULES},
            )
        return Message("lr_find.unreliable", reasons=list(self.reasons))

    def band(self) -> list[dict[str, float]]:
        """Per step (the same LR in every order): the lowest, mean and highest smoothed loss
        over the orders that got that far; the plot's agreement band."""
        out = []
        for i in range(max((len(c.lrs) for c in self.curves), default=0)):
            vals = [c.losses[i] for c in self.curves if i < len(c.losses)]
            lr = next(c.lrs[i] for c in self.curves if i < len(c.lrs))
            out.append({"lr": lr, "lo": min(vals), "mean": statistics.fmean(vals), "hi": max(vals)})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "curves": [asdict(c) for c in self.curves],
            "rules": dict(self.rules),
            "spread": {k: list(v) for k, v in self.spread.items()},
            "per_order": [dict(p) for p in self.per_order],
            "lr": self.lr,
            "reasons": [r.to_json() for r in self.reasons],
            "message": self.message().to_json(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRFindResult:
        return cls(
            curves=[RangeCurve.from_dict(c) for c in d.get("curves", [])],
            rules=dict(d.get("rules", {})),
            spread={k: list(v) for k, v in d.get("spread", {}).items()},
            per_order=[dict(p) for p in d.get("per_order", [])],
            lr=d.get("lr"),
            reasons=[Message.from_json(r) for r in d.get("reasons", [])],
        )


def _ratio(values: Sequence[float]) -> float:
    return max(values) / min(values)


def judge(curves: Sequence[RangeCurve], *, agree: float = AGREE) -> LRFindResult:
    """The suggestion from the curves of one test (pure): each rule on each order's trimmed
    curve, the median over the orders, then the middle of the three rules; or no suggestion
    and the reasons why not."""
    res = LRFindResult(curves=list(curves))
    readable = [(c, *trimmed(c)) for c in curves]
    readable = [(c, lrs, ls) for c, lrs, ls in readable if len(ls) >= MIN_POINTS]
    if not readable:
        first = curves[0] if curves else None
        res.reasons.append(
            Message(
                "lr_find.too_short",
                steps=len(first.lrs) if first else 0,
                lr=first.lrs[-1] if first and first.lrs else 0.0,
            )
        )
        return res
    fell = [min(ls) < FELL * ls[0] for _, _, ls in readable]
    if not any(fell):
        _, _, ls = readable[0]
        res.reasons.append(Message("lr_find.never_fell", best=min(ls), start=ls[0]))
        return res
    res.per_order = [suggest(lrs, ls) for _, lrs, ls in readable]
    res.rules = {r: statistics.median(p[r] for p in res.per_order) for r in RULES}
    res.spread = {
        r: [min(p[r] for p in res.per_order), max(p[r] for p in res.per_order)] for r in RULES
    }
    if not any(c.stop == "diverged" for c, _, _ in readable):
        res.reasons.append(
            Message("lr_find.never_diverged", end=max(c.lrs[-1] for c, _, _ in readable))
        )
    if (ratio := _ratio(list(res.rules.values()))) > agree:
        res.reasons.append(Message("lr_find.rules_disagree", ratio=ratio, limit=agree, **res.rules))
    middles = [statistics.median(p.values()) for p in res.per_order]
    if len(middles) > 1 and (ratio := _ratio(middles)) > agree:
        res.reasons.append(
            Message(
                "lr_find.orders_disagree",
                orders=len(middles),
                ratio=ratio,
                limit=agree,
                lo=min(middles),
                hi=max(middles),
            )
        )
    if not res.reasons:
        res.lr = statistics.median(res.rules.values())
    return res


# ---- running it ------------------------------------------------------------------------------


def check_bounds(*, steps: int, orders: int, start_lr: float, end_lr: float) -> None:
    """Raise :class:`ConfigError` naming the first argument out of its bounds."""
    for name, value, (lo, hi) in (
        ("steps", steps, STEP_BOUNDS),
        ("orders", orders, ORDER_BOUNDS),
        ("start_lr", start_lr, LR_BOUNDS),
        ("end_lr", end_lr, LR_BOUNDS),
    ):
        if not (isinstance(value, int | float) and lo <= value <= hi):
            raise ConfigError(Message("lr_find.bounds", name=name, lo=lo, hi=hi))
    if not start_lr < end_lr:
        raise ConfigError(Message("lr_find.lr_order", start=start_lr, end=end_lr))


def range_test(
    net: Any,
    opt: Any,
    x: Any,
    y: Any,
    *,
    batch_size: int,
    order: int = 0,
    steps: int = STEPS,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    clip_norm: float | None = None,
    loss_scale: float = 1.0,
    should_stop: Callable[[], bool] | None = None,
    probe: int = PROBE_ROWS,
    beta: float = BETA,
) -> RangeCurve:
    """One pass over ``x``/``y`` (tensors on the net's device) with batches drawn in the order
    seeded by ``order``. The loss recorded after each step is the model's loss on ``probe``
    fixed training rows (the same rows in every order), in evaluation mode; 0 records the
    step's own batch loss, as fastai does. Why: a batch of 8 or 16 rows gives a loss whose
    noise is larger than the fall being measured (diabetes at batch 8: ±0.4 around a fall from
    1.0 to 0.5), and the steepest-descent rule then reads the noise (it picked 1.4e-6 there);
    torch-lr-finder's ``val_loader`` option measures on fixed rows for the same reason. ``net`` is an ``engine.nets.Single`` (``forward_loss``, ``clip``,
    ``state_dict``), ``opt`` its torch optimizer. Afterwards the weights, the optimizer's
    state (its LR included) and torch's random state are as they were, even on an error."""
    import torch

    check_bounds(steps=steps, orders=1, start_lr=start_lr, end_lr=end_lr)
    weights = net.state_dict()  # clones
    opt_state = copy.deepcopy(opt.state_dict())
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    was_training = getattr(getattr(net, "model", None), "training", True)
    gen = torch.Generator(device="cpu").manual_seed(1_000_003 * (order + 1))
    n = len(x)
    bs = min(batch_size, n)
    lrs: list[float] = []
    raw: list[float] = []
    losses: list[float] = []  # smoothed as smooth(raw) does, step by step, to stop in time
    stop = "end"
    try:
        net.train_mode(True)
        perm, pos = torch.randperm(n, generator=gen), 0
        if probe:
            rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:probe]
            px, py = x[rows.to(x.device)], y[rows.to(x.device)]
        best = math.inf
        avg = 0.0
        for i, lr in enumerate(lr_schedule(steps, start_lr, end_lr)):
            if should_stop is not None and i % STOP_EVERY == 0 and should_stop():
                stop = "cancelled"
                break
            if pos + bs > n:  # a new epoch: a fresh order, drawn from the same generator
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos : pos + bs].to(x.device)
            pos += bs
            for g in opt.param_groups:
                g["lr"] = lr
            loss = net.forward_loss(x[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm is not None:
                net.clip(clip_norm)  # T9: the run clips, so the test does too
            opt.step()
            if probe:
                net.train_mode(False)
                with torch.no_grad():
                    loss = net.forward_loss(px, py)
                net.train_mode(True)
            value = float(loss.detach()) * loss_scale
            if not math.isfinite(value):
                stop = "diverged"
                break
            avg = beta * avg + (1 - beta) * value
            s = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            losses.append(s)
            best = min(best, s)
            if s > DIVERGE * best:
                stop = "diverged"
                break
    finally:
        net.load_state_dict(weights)
        opt.load_state_dict(opt_state)
        opt.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        net.train_mode(was_training)
    return RangeCurve(order=order, lrs=lrs, losses=losses, raw=raw, stop=stop, planned=steps)


def lr_find(
    cfg: Any,
    data: Any,
    *,
    device: Any = "cpu",
    orders: int = ORDERS,
    steps: int = STEPS,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
    should_stop: Callable[[], bool] | None = None,
    on_curve: Callable[[RangeCurve], None] | None = None,
    probe: int = PROBE_ROWS,
    beta: float = BETA,
    threads: Any = None,
) -> LRFindResult:
    """The range test for a run's config (``engine.config.Config``) on its prepared data
    (``engine.api.prepare_for``): the run's model, built from its seed, its optimizer and its
    batch size, repeated over ``orders`` data orders; ``on_curve`` sees each curve as it ends.

    An ensemble is tested as one member: its members are the same net from other seeds and
    share one LR. Augmentation is not applied (the test reads how the loss responds to the LR,
    not how well the net generalises), nor are bf16 and ``train.compile`` (100 steps would not
    repay a compile). ``threads``: the CPU thread policy (``engine.threads.ThreadPolicy``),
    applied once for the model's size as a run applies it; None leaves torch's setting."""
    import torch

    from engine import nets
    from engine.config import apply_overrides
    from engine.models import resolve_kind
    from engine.threads import ThreadGovernor, step_work

    check_bounds(steps=steps, orders=orders, start_lr=start_lr, end_lr=end_lr)
    cfg = apply_overrides(cfg, {"ensemble.members": 1, "train.compile": False})
    if data.task == "classification" and not data.n_classes:
        raise ConfigError(Message("config.two_classes"))
    dev = torch.device(device)
    torch.manual_seed(cfg.train.seed)
    net = nets.build_net(cfg, data, dev)
    opt = nets.make_optimizer(cfg, net.params)
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    bs = min(cfg.train.batch_size, len(x))
    scale = 1.0 / bs if cfg.optim.loss_reduction == "sum" else 1.0
    governor = None
    if threads is not None and dev.type == "cpu":
        kind = resolve_kind(cfg.model, data.modality)
        work = step_work(sum(p.numel() for p in net.params), bs, data.input_shape, kind)
        governor = ThreadGovernor(threads, work)
    one_pass = functools.partial(
        range_test,
        net,
        opt,
        x,
        y,
        batch_size=bs,
        steps=steps,
        start_lr=start_lr,
        end_lr=end_lr,
        clip_norm=cfg.train.clip_norm,
        loss_scale=scale,
        should_stop=should_stop,
        probe=probe,
        beta=beta,
    )
    curves: list[RangeCurve] = []
    try:
        for k in range(orders):
            curve = one_pass(order=cfg.train.seed + k)
            curves.append(curve)
            if on_curve is not None:
                on_curve(curve)
            if curve.stop == "cancelled":
                break
    finally:
        if governor is not None:
            governor.close()
    return judge(curves)


def run_lr_find(
    config: Any,
    *,
    sink: Any,
    should_stop: Callable[[], bool] | None = None,
    device: str = "cpu",
    raw: Any = None,
    threads: Any = None,
) -> Any:
    """The queued job's entry (``jobs.queue.runner`` calls it for a spec with ``lr_find``):
    load and prepare the config's dataset as a run would, run :func:`lr_find`, and report
    through ``sink``: each order's curve as metric points (``lr_find/lr`` and
    ``lr_find/loss/<k>`` at step i, the smoothed loss) and progress after each order. Returns an
    ``engine.train.TrainResult``: ``finished`` with the whole result in the summary's
    ``lr_find`` (a suggestion or the reasons why not: a test that found no reliable LR still
    ran to its end), or ``cancelled``."""
    from engine.api import prepare_for
    from engine.config import Config
    from engine.data.loaders import load_dataset
    from engine.train import TrainResult
    from engine.vocab import RunStatus

    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    d = cfg.data
    if raw is None:
        raw = load_dataset(d.dataset, target=d.target, task=d.task, columns=d.columns)
    data = prepare_for(cfg, raw)
    done = 0

    def report(curve: RangeCurve) -> None:
        nonlocal done
        for i, (lr, loss) in enumerate(zip(curve.lrs, curve.losses, strict=True)):
            vals = {f"lr_find/loss/{done}": loss}
            if done == 0:
                vals["lr_find/lr"] = lr
            sink.log(i, vals)
        done += 1
        sink.progress(done / ORDERS)

    res = lr_find(
        cfg, data, device=device, should_stop=should_stop, on_curve=report, threads=threads
    )
    cancelled = any(c.stop == "cancelled" for c in res.curves)
    summary = {"lr_find": res.to_dict(), "suggested_lr": res.lr}
    status = RunStatus.CANCELLED if cancelled else RunStatus.FINISHED
    return TrainResult(status=status, summary=summary, message=res.message())
