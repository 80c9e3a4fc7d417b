"""What the loop trains: one model or a stacked K-member ensemble (T14), behind one interface.

:class:`Single` and :class:`Stacked` both offer ``forward_loss``, ``clip``, ``predict``,
``ratio_norms`` and ``state_dict``/``load_state_dict``; :func:`evaluate` validates either.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from engine import optim
from engine.auto import IMBALANCED  # the smallest class under this share: weight the loss
from engine.config import Config
from engine.errors import ConfigError
from engine.messages import Message
from engine.models import MLP, PeriodicEmbedding, build_model, resolve_kind, weight_matrices

EVAL_CHUNK = 4096


def class_weights(cfg: Config, data: Any, device: torch.device) -> torch.Tensor | None:
    """T1 on imbalanced classes (``train.class_weight`` auto): n / (classes × count) per class
    from the training rows, scikit-learn's "balanced" weights, so a rare class's mistakes count
    as much in all as a common one's; None when the classes are balanced enough or it is off.
    ``sqrt``: the square root of those weights, halfway (on a log scale) between no weights and
    balanced ones: a rare class still gets predicted, and overall accuracy gives up less."""
    if cfg.train.class_weight == "off" or data.task != "classification" or not data.n_classes:
        return None
    counts = torch.bincount(data.y_train.reshape(-1).long(), minlength=data.n_classes).double()
    present = counts[counts > 0]
    if len(present) < 2 or float(present.min()) >= IMBALANCED * float(present.max()):
        return None
    w = counts.sum() / (data.n_classes * counts.clamp_min(1))
    if cfg.train.class_weight == "sqrt":
        w = w.sqrt()
    return w.float().to(device)


def loss_fn(
    task: str, reduction: str, weight: torch.Tensor | None = None
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    # T4: the mean over the batch keeps the gradient's scale independent of the batch size.
    # With class weights, torch's weighted mean divides by the rows' summed weights.
    if task == "classification":
        return lambda out, y: F.cross_entropy(out, y, weight=weight, reduction=reduction)
    return lambda out, y: F.mse_loss(out.squeeze(-1), y, reduction=reduction)


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    """The mean recall over the classes present in ``y``."""
    recalls = []
    for c in range(n_classes):
        rows = y == c
        if rows.any():
            recalls.append(float((pred[rows] == c).float().mean()))
    return sum(recalls) / len(recalls) if recalls else float("nan")


class Single:
    """One nn.Module with a normal optimizer."""

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        out = data.n_classes if data.task == "classification" else 1
        self.model = build_model(
            cfg.model, data.input_shape, out, data.modality, seed=cfg.train.seed
        ).to(device)
        self.members = 1
        self.class_weight = class_weights(cfg, data, device)
        self.loss_fn = loss_fn(data.task, cfg.optim.loss_reduction, self.class_weight)
        self.params = list(self.model.parameters())
        self.ratio_params = weight_matrices(self.model)
        # The compiled callable trains; the module itself keeps the state_dict keys, so a
        # checkpoint of a compiled run resumes in a plain one and the other way round.
        self._train_fwd = torch.compile(self.model) if cfg.train.compile else self.model

    def train_mode(self, on: bool) -> None:
        self.model.train(on)

    def forward_loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self._train_fwd(xb), yb)

    def clip(self, max_norm: float | None) -> torch.Tensor:
        if max_norm is None:
            return torch.nn.utils.get_total_norm(
                [p.grad for p in self.params if p.grad is not None]
            )
        # T9: returns the norm *before* clipping, which is what we log.
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(members=1, N, out)."""
        return torch.cat(
            [self.model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)]
        ).unsqueeze(0)

    def ratio_norms(self) -> list[tuple[str, torch.Tensor]]:
        return self.ratio_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(sd)


class Stacked:
    """T14: K members from different seeds, their parameters stacked along a new first dimension
    and run in one batched call with torch.func (vmap + functional_call), not K sequential runs.

    SGD, momentum, weight decay and Adam are all element-wise, so one optimizer over the stacked
    tensors is exactly K independent optimizers."""

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        k = cfg.ensemble.members
        out = data.n_classes if data.task == "classification" else 1
        if resolve_kind(cfg.model, data.modality) in ("lstm", "gru"):
            raise ConfigError(Message("config.ensemble_sequence"))
        models = [
            build_model(cfg.model, data.input_shape, out, data.modality, seed=cfg.train.seed + i)
            for i in range(k)
        ]
        self.members = k
        params, buffers = stack_module_state(models)
        self.pnames = list(params)
        self.stacked = {n: p.to(device).detach().requires_grad_(True) for n, p in params.items()}
        self.buffers = {n: b.to(device) for n, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.params = list(self.stacked.values())
        self.ratio_params = [
            (n, self.stacked[n]) for n, p in models[0].named_parameters() if p.ndim >= 2
        ]
        self.task = data.task
        self.reduction = cfg.optim.loss_reduction
        self.class_weight = class_weights(cfg, data, device)

        def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        # Training steps: an MLP's members run as batched matrix products (_batched_mlp), the
        # same numbers as vmap at half its cost per step; anything else goes through vmap.
        batched = _batched_mlp(self.base)
        self._fwd = batched or vmap(one, in_dims=(0, 0, 0), randomness="different")
        self._fwd_shared = vmap(one, in_dims=(0, 0, None), randomness="different")

    def train_mode(self, on: bool) -> None:
        self.base.train(on)

    def forward_loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """xb: (K, B, ...) one batch per member; the per-member mean losses are summed so each
        member's gradient is exactly the gradient of its own mean loss (T4 per member)."""
        out = self._fwd(self.stacked, self.buffers, xb)
        k, b = out.shape[:2]
        w = self.class_weight
        if self.task == "classification":
            per = F.cross_entropy(
                out.reshape(k * b, -1), yb.reshape(-1), weight=w, reduction="none"
            ).view(k, b)
        else:
            per = F.mse_loss(out.squeeze(-1), yb, reduction="none")
        if self.reduction == "mean" and w is not None and self.task == "classification":
            # the same weighted mean as Single's: divided by the rows' summed weights
            per_member = per.sum(1) / w[yb].sum(1)
        else:
            per_member = per.mean(1) if self.reduction == "mean" else per.sum(1)
        return per_member.sum()

    @torch.no_grad()
    def clip(self, max_norm: float | None) -> torch.Tensor:
        # Written by hand because clip_grad_norm_ sees one norm across all K members; T9 asks for
        # each member's own norm, so we reduce over every dim but the member dim.
        sq = sum(p.grad.reshape(self.members, -1).pow(2).sum(1) for p in self.params)
        norms = sq.sqrt()
        if max_norm is not None:
            coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
            for p in self.params:
                p.grad.mul_(coef.view(-1, *([1] * (p.grad.ndim - 1))))
        return norms.mean()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self._fwd_shared(self.stacked, self.buffers, x[i : i + EVAL_CHUNK])
                for i in range(0, len(x), EVAL_CHUNK)
            ],
            dim=1,
        )

    def ratio_norms(self) -> list[tuple[str, torch.Tensor]]:
        return self.ratio_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        # The members' buffers too (a PeriodicEmbedding's frequencies), so a saved ensemble's
        # model.pt predicts without rebuilding the members from their seeds.
        return {n: t.detach().clone() for n, t in (self.stacked | self.buffers).items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.stacked.items():
                p.copy_(sd[n])
            for n, b in self.buffers.items():
                if n in sd:  # checkpoints written before buffers were saved lack them
                    b.copy_(sd[n])


Layer = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def _batched_mlp(base: torch.nn.Module) -> Layer | None:
    """A stacked MLP's training forward pass written as batched matrix products over the member
    dim: ``f(stacked params, buffers, x (K, B, ...)) -> (K, B, out)``. None for anything but an
    :class:`~engine.models.MLP` made of the layers below (vmap then runs it).

    Written by hand because vmap(functional_call) re-enters Python per layer through functorch's
    batching machinery: on a 178-row table that was half of each step's time (issue 20, §7).
    Each layer calls the op vmap's batching rule calls (``baddbmm`` over the member dim, the
    embedding's rows folded into it, dropout drawn on the whole (K, B, H) tensor), so the values,
    gradients and dropout masks are the same bit for bit (tests/test_engine_tips.py checks them
    against vmap), and a run's numbers don't change."""
    if not isinstance(base, MLP):
        return None
    acts = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
    steps: list[Layer] = []
    for i, layer in enumerate(base.net):
        pre = f"net.{i}."
        if isinstance(layer, nn.Flatten):
            steps.append(lambda p, b, h: h.flatten(2))
        elif isinstance(layer, PeriodicEmbedding):
            steps.append(_embed(pre))
        elif isinstance(layer, nn.Linear):
            steps.append(_linear(pre))
        elif (act := acts.get(type(layer))) is not None:
            steps.append(lambda p, b, h, f=act: f(h))
        elif isinstance(layer, nn.GELU):
            steps.append(lambda p, b, h, a=layer.approximate: F.gelu(h, approximate=a))
        elif isinstance(layer, nn.Dropout):
            steps.append(lambda p, b, h, d=layer.p: F.dropout(h, d, base.training))
        else:
            return None

    def forward(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor):
        for step in steps:
            x = step(p, b, x)
        return x

    return forward


def _linear(pre: str) -> Layer:
    w, bias = pre + "weight", pre + "bias"
    return lambda p, b, h: torch.baddbmm(p[bias].unsqueeze(1), h, p[w].transpose(1, 2))


def _embed(pre: str) -> Layer:
    """PeriodicEmbedding.forward over (K, B, F) inputs and (K, F, frequencies) buffers."""
    w, bias, freq = pre + "linear.weight", pre + "linear.bias", pre + "freq"

    def embed(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: torch.Tensor):
        z = 2 * math.pi * x.unsqueeze(-1) * b[freq].unsqueeze(1)  # (K, B, F, frequencies)
        h = torch.cat([z.sin(), z.cos()], dim=-1)
        k, n, f, c = h.shape
        e = torch.baddbmm(p[bias].unsqueeze(1), h.reshape(k, n * f, c), p[w].transpose(1, 2))
        return torch.cat([x, torch.relu(e).view(k, n, -1)], dim=2)

    return embed


def make_optimizer(cfg: Config, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    """torch's optimizer for ``cfg.optim``, without its torch.compile guards unless the run
    compiles its model (engine/optim.py: they import torch._dynamo, seconds of a small run)."""
    o = cfg.optim
    compiled = cfg.train.compile
    if o.name == "sgd":
        return optim.make(
            torch.optim.SGD,
            params,
            compiled=compiled,
            lr=o.lr,
            momentum=o.momentum,
            weight_decay=o.weight_decay,
            nesterov=o.nesterov and o.momentum > 0,
        )
    cls = torch.optim.Adam if o.name == "adam" else torch.optim.AdamW
    return optim.make(cls, params, compiled=compiled, lr=o.lr, weight_decay=o.weight_decay)


def update_ratios(
    before: list[torch.Tensor], after: list[torch.Tensor], members: int
) -> list[float]:
    """T6: ‖Δw‖/‖w‖ per weight matrix from snapshots taken around optimizer.step(); for stacked
    ensembles the ratio is computed per member and averaged."""
    out = []
    for b, a in zip(before, after, strict=True):
        if members > 1:
            d = (a - b).reshape(members, -1).norm(dim=1)
            w = b.reshape(members, -1).norm(dim=1).clamp_min(1e-12)
            out.append(float((d / w).mean()))
        else:
            out.append(float((a - b).norm() / b.norm().clamp_min(1e-12)))
    return out


def evaluate(
    net: Any, x: torch.Tensor, y: torch.Tensor, task: str, y_std: float | None
) -> dict[str, Any]:
    """Validation in eval mode (T13: dropout off). Returns ensemble and per-member figures.
    With class weights (``net.class_weight``) the losses are weighted as in training, and
    ``balanced`` (balanced accuracy) is what picks the best epoch."""
    net.train_mode(False)
    out = net.predict(x)  # (K, N, C)
    k = out.shape[0]
    res: dict[str, Any] = {}
    if task == "classification":
        w = getattr(net, "class_weight", None)
        member_loss = [float(F.cross_entropy(out[i], y, weight=w)) for i in range(k)]
        member_metric = [float((out[i].argmax(1) == y).float().mean()) for i in range(k)]
        probs = out.softmax(-1).mean(0)  # T14: average the predicted probabilities
        res["loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), y, weight=w))
        res["pred"] = probs.argmax(1)
        res["metric"] = float((res["pred"] == y).float().mean())
        res["metric_name"] = "acc"
        res["balanced"] = balanced_accuracy(res["pred"], y, out.shape[-1])
        res["weighted"] = w is not None
    else:
        scale = y_std or 1.0
        member_loss = [float(F.mse_loss(out[i].squeeze(-1), y)) for i in range(k)]
        member_metric = [math.sqrt(v) * scale for v in member_loss]
        mean_pred = out.mean(0).squeeze(-1)
        res["pred"] = mean_pred  # T14: the members' mean
        res["loss"] = float(F.mse_loss(mean_pred, y))
        res["metric"] = math.sqrt(res["loss"]) * scale
        res["metric_name"] = "rmse"
    res["member_loss"], res["member_metric"] = member_loss, member_metric
    # The schedule and early stopping follow the mean member (one shared LR for all members).
    res["sched_loss"] = statistics.fmean(member_loss)
    return res


Net = Single | Stacked


def build_net(cfg: Config, data: Any, device: torch.device) -> Net:
    """A :class:`Stacked` ensemble when ``ensemble.members`` > 1, else a :class:`Single` model."""
    return Stacked(cfg, data, device) if cfg.ensemble.members > 1 else Single(cfg, data, device)
