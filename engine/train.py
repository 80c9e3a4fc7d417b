"""The training loop: every tip the engine applies, in one place.

``train(config, data, sink=..., should_stop=..., device=..., run_dir=...)`` trains one model or a
K-member ensemble (T14) on a :class:`engine.data.Prepared` and reports through the sink
protocol. The loop itself only acts; the rules that decide live in ``engine.doctor``.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from engine import doctor
from engine.config import Config
from engine.errors import CheckpointError, ConfigError, OutOfMemory, StorageError
from engine.models import build_model, resolve_kind, weight_matrices
from engine.schedule import make_plateau_scheduler
from engine.sink import Sink

CHECKPOINT = "checkpoint.pt"  # everything needed to resume; rewritten every epoch
MODEL = "model.pt"  # the best weights + preprocessor + config, for download / inference
EVAL_CHUNK = 4096


@dataclass
class TrainResult:
    status: str  # "finished" | "diverged" | "cancelled"
    summary: dict[str, Any]
    message: str
    findings: list[dict[str, Any]] = field(default_factory=list)


def _loss_fn(task: str, reduction: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    # T4: the mean over the batch keeps the gradient's scale independent of the batch size.
    if task == "classification":
        return lambda out, y: F.cross_entropy(out, y, reduction=reduction)
    return lambda out, y: F.mse_loss(out.squeeze(-1), y, reduction=reduction)


# ---------------------------------------------------------------- one model / a stacked ensemble


class _Single:
    """One nn.Module with a normal optimizer."""

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        out = data.n_classes if data.task == "classification" else 1
        self.model = build_model(cfg.model, data.input_shape, out, data.modality, seed=cfg.train.seed).to(device)
        self.members = 1
        self.loss_fn = _loss_fn(data.task, cfg.optim.loss_reduction)
        self.params = list(self.model.parameters())
        self.ratio_params = weight_matrices(self.model)

    def train_mode(self, on: bool) -> None:
        self.model.train(on)

    def forward_loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model(xb), yb)

    def clip(self, max_norm: float | None) -> torch.Tensor:
        if max_norm is None:
            return torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        # T9: returns the norm *before* clipping, which is what we log.
        return torch.nn.utils.clip_grad_norm_(self.params, max_norm)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(members=1, N, out)."""
        return torch.cat([self.model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)]).unsqueeze(0)

    def ratio_norms(self) -> list[tuple[str, torch.Tensor]]:
        return self.ratio_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(sd)


class _Stacked:
    """T14: K members from different seeds, their parameters stacked along a new first dimension
    and run in one batched call with torch.func (vmap + functional_call), not K sequential runs.

    SGD, momentum, weight decay and Adam are all element-wise, so one optimizer over the stacked
    tensors is exactly K independent optimizers."""

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        k = cfg.ensemble.members
        out = data.n_classes if data.task == "classification" else 1
        if resolve_kind(cfg.model, data.modality) in ("lstm", "gru"):
            raise ConfigError("ensemble.members: ensembles support mlp and cnn models; for sequences use model.kind=mlp or ensemble.members=1")
        models = [build_model(cfg.model, data.input_shape, out, data.modality, seed=cfg.train.seed + i) for i in range(k)]
        self.members = k
        params, buffers = stack_module_state(models)
        self.pnames = list(params)
        self.stacked = {n: p.to(device).detach().requires_grad_(True) for n, p in params.items()}
        self.buffers = {n: b.to(device) for n, b in buffers.items()}
        self.base = copy.deepcopy(models[0]).to("meta")
        self.params = list(self.stacked.values())
        self.ratio_params = [(n, self.stacked[n]) for n, p in models[0].named_parameters() if p.ndim >= 2]
        self.task = data.task
        self.reduction = cfg.optim.loss_reduction

        def one(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        self._fwd = vmap(one, in_dims=(0, 0, 0), randomness="different")
        self._fwd_shared = vmap(one, in_dims=(0, 0, None), randomness="different")

    def train_mode(self, on: bool) -> None:
        self.base.train(on)

    def forward_loss(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """xb: (K, B, ...) one batch per member; the per-member mean losses are summed so each
        member's gradient is exactly the gradient of its own mean loss (T4 per member)."""
        out = self._fwd(self.stacked, self.buffers, xb)
        k, b = out.shape[:2]
        if self.task == "classification":
            per = F.cross_entropy(out.reshape(k * b, -1), yb.reshape(-1), reduction="none").view(k, b)
        else:
            per = F.mse_loss(out.squeeze(-1), yb, reduction="none")
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
            [self._fwd_shared(self.stacked, self.buffers, x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)], dim=1
        )

    def ratio_norms(self) -> list[tuple[str, torch.Tensor]]:
        return self.ratio_params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.stacked.items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.stacked.items():
                p.copy_(sd[n])


# ---------------------------------------------------------------- helpers


def _make_optimizer(cfg: Config, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov and o.momentum > 0)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def update_ratios(before: list[torch.Tensor], after: list[torch.Tensor], members: int) -> list[float]:
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


def _evaluate(net: Any, x: torch.Tensor, y: torch.Tensor, task: str, y_std: float | None) -> dict[str, Any]:
    """Validation in eval mode (T13: dropout off). Returns ensemble and per-member figures."""
    net.train_mode(False)
    out = net.predict(x)  # (K, N, C)
    k = out.shape[0]
    res: dict[str, Any] = {}
    if task == "classification":
        member_loss = [float(F.cross_entropy(out[i], y)) for i in range(k)]
        member_metric = [float((out[i].argmax(1) == y).float().mean()) for i in range(k)]
        probs = out.softmax(-1).mean(0)  # T14: average the predicted probabilities
        res["loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), y))
        res["metric"] = float((probs.argmax(1) == y).float().mean())
        res["metric_name"] = "acc"
    else:
        scale = y_std or 1.0
        member_loss = [float(F.mse_loss(out[i].squeeze(-1), y)) for i in range(k)]
        member_metric = [math.sqrt(v) * scale for v in member_loss]
        mean_pred = out.mean(0).squeeze(-1)
        res["loss"] = float(F.mse_loss(mean_pred, y))
        res["metric"] = math.sqrt(res["loss"]) * scale
        res["metric_name"] = "rmse"
    res["member_loss"], res["member_metric"] = member_loss, member_metric
    # The schedule and early stopping follow the mean member (one shared LR for all members).
    res["sched_loss"] = statistics.fmean(member_loss)
    return res


def _keep_last(history: list, n: int) -> None:
    """Bound a per-step history the doctor reads only the tail of (it also goes into every
    checkpoint): trimmed to `n` once it reaches 2n, so the cost per step stays constant."""
    if len(history) >= 2 * n:
        del history[:-n]


def _better(metric_name: str, a: float, b: float) -> bool:
    return a > b if metric_name == "acc" else a < b


def _finite(v: float) -> bool:
    return math.isfinite(v)


# ---------------------------------------------------------------- the loop


def train(
    cfg: Config,
    data: Any,
    *,
    sink: Sink,
    should_stop: Callable[[], bool] | None = None,
    device: str | torch.device = "cpu",
    run_dir: Path | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train on prepared data. ``data`` is an ``engine.data.Prepared``.

    Raises :class:`OutOfMemory` (after an ``oom`` event) when the device runs out of memory; the
    last epoch's checkpoint stays on disk."""
    try:
        return _train(cfg, data, sink=sink, should_stop=should_stop, device=device, run_dir=run_dir, resume=resume)
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        message = (f"out of memory ({str(e).splitlines()[0][:200]}): lower train.batch_size "
                   f"(now {cfg.train.batch_size}) or the model size, or use a device with more memory")
        sink.event(0, "oom", message, {"batch_size": cfg.train.batch_size, "suggestion": f"train.batch_size={max(1, cfg.train.batch_size // 2)}"})
        raise OutOfMemory(message) from e


# How often a running loop asks `should_stop` (cooperative cancel): ~4×/s, not per step, since the
# callback may read a database. Tests that need a cancel at an exact step set it to 0.
STOP_CHECK_S = 0.25


def _fault_step_delay() -> float:
    """Fault injection for the reliability suite: TRAINBOARD_FAULT_STEP_DELAY_S=X makes every
    step take at least X seconds longer, as a slow device would, so a run outlasts the fault a
    test injects into it on any machine (a fast one once finished the run first). Unset (always,
    outside tests) it is inert."""
    v = os.environ.get("TRAINBOARD_FAULT_STEP_DELAY_S")
    return float(v) if v else 0.0


def _fault_oom_step() -> int | None:
    """Fault injection for the reliability suite: TRAINBOARD_FAULT_OOM_AT_STEP=N makes step N
    raise the same torch.OutOfMemoryError a GPU would. Unset (always, outside tests) it is inert."""
    v = os.environ.get("TRAINBOARD_FAULT_OOM_AT_STEP")
    return int(v) if v else None


def _train(
    cfg: Config,
    data: Any,
    *,
    sink: Sink,
    should_stop: Callable[[], bool] | None,
    device: str | torch.device,
    run_dir: Path | None,
    resume: bool,
) -> TrainResult:
    t_start = time.perf_counter()
    dev = torch.device(device)
    tc, sc = cfg.train, cfg.schedule
    torch.manual_seed(tc.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)

    if data.task == "classification" and not data.n_classes:
        raise ConfigError("data: a classification task needs at least 2 classes")
    net: _Single | _Stacked = _Stacked(cfg, data, dev) if cfg.ensemble.members > 1 else _Single(cfg, data, dev)
    opt = _make_optimizer(cfg, net.params)
    sched = make_plateau_scheduler(opt, factor=sc.plateau_factor, patience=sc.plateau_patience,
                                   threshold=sc.plateau_threshold, cooldown=sc.cooldown)
    x_tr, y_tr = data.x_train.to(dev), data.y_train.to(dev)
    x_va, y_va = data.x_val.to(dev), data.y_val.to(dev)
    n_train = len(x_tr)
    bs = min(tc.batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / bs)
    k = net.members
    loss_scale = 1.0 / (bs if cfg.optim.loss_reduction == "sum" else 1)  # to log comparable losses
    aug = cfg.augment
    augment_on = aug.shift > 0 or aug.flip or aug.rotate_deg > 0 or aug.noise_std > 0

    # state that a resumed run continues
    st: dict[str, Any] = {
        "epoch": 0, "step": 0, "best_loss": math.inf, "best_epoch": 0, "best_metric": None,
        "bad_epochs": 0, "train_losses": [], "val_losses": [], "val_metrics": [],
        "ratio_summary": [], "grad_norms": [], "initial_loss": None, "fired": {}, "findings": [],
        "member_metrics": None, "n_cuts": 0, "clip_steps": 0, "preflight": [],
    }
    best_state = net.state_dict()
    ckpt_path = run_dir / CHECKPOINT if run_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        try:
            ck = torch.load(ckpt_path, map_location=dev, weights_only=True)
            net.load_state_dict(ck["net"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            best_state = ck["best_state"]
            st.update(ck["state"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path} can't be resumed: {e}") from e
        sink.event(st["step"], "resumed", f"resumed from the checkpoint after epoch {st['epoch']} (step {st['step']})",
                   {"epoch": st["epoch"], "step": st["step"]})
    else:
        sink.event(0, "run_start", f"training {resolve_kind(cfg.model, data.modality)}"
                   + (f" ×{k} members" if k > 1 else "") + f" on {n_train} rows, validating on {len(x_va)}",
                   {"train_rows": n_train, "val_rows": len(x_va), "members": k, "steps_per_epoch": steps_per_epoch})
        if tc.preflight:
            st["preflight"] = [f.to_dict() for f in _preflight(cfg, data, net, x_tr, y_tr, sink)]

    def emit(finding: doctor.Finding, step: int, epoch: int, kind: str = "doctor", every: int = 5) -> None:
        last = st["fired"].get(finding.rule)
        if last is not None and epoch - last < every:
            return  # one warning per rule per few epochs, not one per check
        st["fired"][finding.rule] = epoch
        st["findings"].append(finding.to_dict() | {"epoch": epoch, "step": step})
        sink.event(step, kind, f"{finding.message} ({finding.tip})", finding.to_dict())

    st_ckpt_epoch = st["epoch"]  # the epoch the newest checkpoint on disk holds (0: none)

    def checkpoint(state: dict[str, Any]) -> str | None:
        """Write the checkpoint; on a full or failing disk return why it failed instead of
        raising. That costs resume granularity, not the run: the last good checkpoint stays."""
        nonlocal st_ckpt_epoch
        try:
            _save_checkpoint(ckpt_path, net, opt, sched, best_state, state, cfg, data)
        except OSError as e:
            return _disk_message(e)
        st_ckpt_epoch = state["epoch"]
        return None
    stop_check = should_stop or (lambda: False)
    last_stop_check = time.monotonic()
    progress = getattr(sink, "progress", None)
    status, reason, message = "finished", "epochs", ""
    weights = [p for _, p in net.ratio_norms()]
    names = [n for n, _ in net.ratio_norms()]
    gen = torch.Generator(device="cpu")
    aug_gen = torch.Generator(device=dev) if augment_on else None
    samples = 0
    oom_at = _fault_oom_step()
    step_delay = _fault_step_delay()
    t_loop = time.perf_counter()

    epoch = st["epoch"]
    while epoch < tc.epochs:
        epoch += 1
        epoch_start_step = st["step"]
        net.train_mode(True)
        # Shuffles derive from (seed, epoch) so a resumed run sees the same order it would have.
        gen.manual_seed(tc.seed * 1_000_003 + epoch)
        if k > 1:
            perm = torch.stack([torch.randperm(n_train, generator=gen) for _ in range(k)]).to(dev)
        else:
            perm = torch.randperm(n_train, generator=gen).to(dev)
        if aug_gen is not None:
            aug_gen.manual_seed(tc.seed * 7919 + epoch)
        loss_acc = torch.zeros((), device=dev)
        epoch_loss = 0.0  # summed from loss_acc at each log step: one tensor add per step, not two
        clip_acc = torch.zeros((), device=dev)
        epoch_clips = torch.zeros((), device=dev)
        n_acc = 0
        norm = torch.zeros((), device=dev)
        for i in range(steps_per_epoch):
            idx = perm[..., i * bs : (i + 1) * bs]
            xb, yb = x_tr[idx], y_tr[idx]
            if augment_on:
                from engine.data import augment  # local: only runs that augment need it

                # T12: augmentation on the training batch only, on its device; validation never.
                xb = augment(xb.reshape(-1, *xb.shape[k > 1 and 2 or 1 :]), data.modality, shift=aug.shift, flip=aug.flip,
                             rotate_deg=aug.rotate_deg, noise_std=aug.noise_std, generator=aug_gen).reshape(xb.shape)
            loss = net.forward_loss(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.clip_norm is not None or (st["step"] + 1) % tc.log_every == 0:
                norm = net.clip(tc.clip_norm)
                if tc.clip_norm is not None:
                    clipped = norm > tc.clip_norm
                    clip_acc += clipped
                    epoch_clips += clipped
            step = st["step"] + 1
            if step == oom_at:
                raise torch.OutOfMemoryError(f"simulated out-of-memory at step {step} (TRAINBOARD_FAULT_OOM_AT_STEP)")
            measure_ratio = step % tc.ratio_every == 0
            if measure_ratio:
                before = [w.detach().clone() for w in weights]
            opt.step()
            if step_delay:
                time.sleep(step_delay)
            st["step"] = step
            loss_acc += loss.detach()
            n_acc += 1
            samples += len(yb) if k == 1 else yb.shape[1]
            if measure_ratio:
                ratios = update_ratios(before, [w.detach() for w in weights], k)
                vals = {f"ratio/{n}": r for n, r in zip(names, ratios, strict=True)}
                med = statistics.median(ratios)
                vals["ratio/median"] = med
                vals["ratio/max"] = max(ratios)
                sink.log(step, vals)
                st["ratio_summary"].append(med)
                _keep_last(st["ratio_summary"], cfg.doctor.ratio_window)
                f = doctor.rule_ratio(st["ratio_summary"], cfg.doctor.ratio_low, cfg.doctor.ratio_high, cfg.doctor.ratio_window)
                if f:
                    emit(f, step, epoch)
            if step % tc.log_every == 0:
                acc_sum = float(loss_acc)
                epoch_loss += acc_sum
                mean_loss = acc_sum / n_acc / k * loss_scale
                gn = float(norm)
                vals = {"train/loss": mean_loss, "grad/norm": gn, "lr": opt.param_groups[0]["lr"]}
                if tc.clip_norm is not None:
                    vals["grad/clip_frac"] = float(clip_acc) / n_acc
                    clip_acc.zero_()
                sink.log(step, vals)
                loss_acc.zero_()
                n_acc = 0
                if st["initial_loss"] is None:
                    st["initial_loss"] = mean_loss
                if not (_finite(mean_loss) and _finite(gn)):
                    status, reason = "diverged", "nonfinite_loss"
                    break
                st["grad_norms"].append(gn)
                _keep_last(st["grad_norms"], doctor.GRAD_HISTORY + 1)
                f = doctor.rule_exploding(st["grad_norms"], cfg.doctor.grad_explode_factor)
                if f:
                    emit(f, step, epoch)
            now = time.monotonic()
            if now - last_stop_check >= STOP_CHECK_S:
                last_stop_check = now
                if stop_check():
                    status, reason = "cancelled", "cancel_requested"
                    break
        if status != "finished":
            break

        # ---- end of epoch: validate, schedule, stop rules, checkpoint
        if n_acc:
            epoch_loss += float(loss_acc)
        train_loss = epoch_loss / max(1, steps_per_epoch) / k * loss_scale
        if not _finite(train_loss):
            status, reason = "diverged", "nonfinite_loss"
            break
        ev = _evaluate(net, x_va, y_va, data.task, data.y_std)
        if not _finite(ev["sched_loss"]):
            status, reason = "diverged", "nonfinite_val_loss"
            break
        mname = ev["metric_name"]
        vals = {"train/epoch_loss": train_loss, "val/loss": ev["loss"], f"val/{mname}": ev["metric"], "epoch": epoch}
        if tc.clip_norm is not None:
            vals["grad/clip_frac_epoch"] = float(epoch_clips) / steps_per_epoch
        if k > 1:
            mm = statistics.fmean(ev["member_metric"])
            vals["val/member_mean_loss"] = ev["sched_loss"]
            vals[f"val/member_mean_{mname}"] = mm
            vals["ensemble/gain"] = (ev["metric"] - mm) if mname == "acc" else (mm - ev["metric"])
            for i, m in enumerate(ev["member_metric"]):
                vals[f"member/{i}/val_{mname}"] = m
        sink.log(st["step"], vals)
        st["train_losses"].append(train_loss)
        st["val_losses"].append(ev["sched_loss"])
        st["val_metrics"].append(ev["metric"])
        if progress is not None:
            progress(epoch / tc.epochs)

        if tc.clip_norm is not None and steps_per_epoch >= 5 and float(epoch_clips) >= 0.5 * steps_per_epoch:
            sink.event(st["step"], "clip_burst",
                       f"gradient clipped on {int(epoch_clips)} of {steps_per_epoch} steps in epoch {epoch} (T9)",
                       {"tip": "T9", "epoch": epoch, "clipped": int(epoch_clips), "steps": steps_per_epoch, "bound": tc.clip_norm})

        improved = ev["sched_loss"] < st["best_loss"]
        if improved:
            st.update(best_loss=ev["sched_loss"], best_epoch=epoch, best_metric=ev["metric"], bad_epochs=0,
                      member_metrics=ev["member_metric"])
            best_state = net.state_dict()
        else:
            st["bad_epochs"] += 1

        old_lr = opt.param_groups[0]["lr"]
        if sc.enabled:
            sched.step(ev["sched_loss"])  # T7: torch's own ReduceLROnPlateau decides
        new_lr = opt.param_groups[0]["lr"]
        if new_lr < old_lr:
            st["n_cuts"] += 1
            sink.log(st["step"], {"lr": new_lr})  # so the LR curve steps down where the cut happened
            sink.event(st["step"], "lr_cut",
                       f"validation loss plateaued: LR cut {old_lr:.3g} → {new_lr:.3g} (T7)",
                       {"tip": "T7", "old_lr": old_lr, "new_lr": new_lr, "epoch": epoch})
        elif not sc.enabled:
            f = doctor.rule_plateau(st["val_losses"], factor=sc.plateau_factor, patience=sc.plateau_patience, threshold=sc.plateau_threshold)
            if f:
                emit(f, st["step"], epoch, every=1)

        for f in (doctor.rule_overfitting(st["train_losses"], st["val_losses"]), doctor.rule_divergence(st["train_losses"], st["initial_loss"])):
            if f:
                emit(f, st["step"], epoch)

        st["epoch"] = epoch
        if ckpt_path is not None and (why := checkpoint(st)):
            # Training goes on; the next epoch tries again.
            sink.event(st["step"], "checkpoint_failed",
                       f"could not write the checkpoint after epoch {epoch} ({why}); training goes on, "
                       f"a resume would start {_resume_point(st_ckpt_epoch)}",
                       {"epoch": epoch, "last_checkpoint_epoch": st_ckpt_epoch, "error": why})

        if new_lr < sc.lr_floor:
            reason = "lr_floor"
            sink.event(st["step"], "lr_floor", f"LR {new_lr:.3g} fell below the floor {sc.lr_floor:g}: training is done (T7)",
                       {"tip": "T7", "lr": new_lr, "floor": sc.lr_floor, "epoch": epoch})
            break
        if tc.early_stop_patience is not None and st["bad_epochs"] >= tc.early_stop_patience:
            reason = "early_stop"
            sink.event(st["step"], "early_stop",
                       f"no improvement in validation loss for {st['bad_epochs']} epochs: stopping (T7)",
                       {"tip": "T7", "epoch": epoch, "best_epoch": st["best_epoch"]})
            break
        if stop_check():
            status, reason = "cancelled", "cancel_requested"
            break

    # ---- wrap up
    step = st["step"]
    if status == "cancelled":
        message = f"cancelled at step {step}"
        if ckpt_path is not None:
            # Stopped mid-epoch: keep the newest weights, but count steps from the start of the
            # unfinished epoch, which a resume redoes in full; its points then replace the ones
            # logged here, so the series stays continuous (one val point per epoch, no shift).
            why = checkpoint(st | {"step": epoch_start_step} if st["epoch"] < epoch else st)
            message += ("; checkpoint saved" if why is None else
                        f"; the checkpoint could not be written ({why}), a resume starts {_resume_point(st_ckpt_epoch)}")
        sink.event(step, "cancelled", message, {"epoch": st["epoch"]})
    elif status == "diverged":
        message = ("the loss became NaN/inf: training diverged. Lower the learning rate (e.g. optim.lr÷10)"
                   + (" or clip gradients (train.clip_norm=5, T9)" if tc.clip_norm is None else "") + " (T5)")
        sink.event(step, "diverged", message, {"tip": "T5", "reason": reason, "lr": opt.param_groups[0]["lr"],
                                               "suggestion": "optim.lr=" + f"{cfg.optim.lr / 10:g}"})

    if st["best_epoch"] > 0:
        net.load_state_dict(best_state)
        if status != "cancelled":
            sink.event(step, "best_restored", f"restored the best weights, from epoch {st['best_epoch']} (T7)",
                       {"epoch": st["best_epoch"], "val_loss": st["best_loss"]})
    if run_dir is not None and st["best_epoch"] > 0:
        _save_model({"net": best_state, "config": cfg.to_dict(), "preprocessor": data.preprocessor.state_dict(),
                     "members": k, "task": data.task, "class_names": data.class_names,
                     "input_shape": list(data.input_shape), "y_mean": data.y_mean, "y_std": data.y_std},
                    run_dir / MODEL, sink, step)

    elapsed = time.perf_counter() - t_start
    mname = "acc" if data.task == "classification" else "rmse"
    summary: dict[str, Any] = {
        "status": status, "stop_reason": reason, "epochs": st["epoch"], "steps": step,
        "best_epoch": st["best_epoch"], "best_val_loss": st["best_loss"] if st["best_epoch"] else None,
        "metric": mname, "best_val_metric": st["best_metric"], "final_lr": opt.param_groups[0]["lr"],
        "lr_cuts": st["n_cuts"], "members": k, "seconds": round(elapsed, 3),
        "samples_per_s": round(samples / max(time.perf_counter() - t_loop, 1e-9), 1),
        "preflight": st["preflight"], "findings": st["findings"],
    }
    if k > 1 and st["member_metrics"]:
        mm = statistics.fmean(st["member_metrics"])
        summary["member_mean_metric"] = mm
        summary["ensemble_gain"] = (st["best_metric"] - mm) if mname == "acc" else (mm - st["best_metric"])
    if status == "finished":
        best = "" if st["best_metric"] is None else f"; best val {mname} {st['best_metric']:.4g} at epoch {st['best_epoch']}"
        message = f"finished after {st['epoch']} epochs ({reason.replace('_', ' ')}){best}"
    sink.event(step, "run_end", message, {"status": status, "reason": reason})
    return TrainResult(status, summary, message, st["findings"])


def _preflight(cfg: Config, data: Any, net: _Single | _Stacked, x: torch.Tensor, y: torch.Tensor, sink: Sink) -> list[doctor.Finding]:
    """T8/T10/T2 checks before the first step, each reported as a 'preflight' event."""
    findings: list[doctor.Finding] = []
    loss_fn = _loss_fn(data.task, "mean")
    net.train_mode(False)
    with torch.no_grad():
        out = net.predict(x[:512])[0]
        init_loss = float(loss_fn(out, y[:512] if y.ndim == 1 else y[0, :512]))
    findings.append(doctor.check_init_loss(init_loss, data.task, data.n_classes))
    findings.append(doctor.check_standardized(data.x_train, data.modality))
    out_features = data.n_classes if data.task == "classification" else 1

    def fresh() -> nn.Module:
        return build_model(cfg.model, data.input_shape, out_features, data.modality, seed=cfg.train.seed).to(x.device)

    probe = net.model if isinstance(net, _Single) else fresh()
    findings.append(doctor.check_activation_scale(probe, x))
    findings.append(doctor.gradcheck_model(probe, x))
    if cfg.train.overfit_one_batch:
        findings.append(doctor.overfit_one_batch(fresh, x, y, loss_fn, data.task))
    for f in findings:
        sink.event(0, "preflight", f"{'✓' if f.passed else '✗'} {f.message} ({f.tip})", f.to_dict())
    net.train_mode(True)
    return findings


def _save_checkpoint(path: Path, net: Any, opt: torch.optim.Optimizer, sched: Any, best_state: dict, st: dict, cfg: Config, data: Any) -> None:
    _atomic_save({"net": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                  "best_state": best_state, "state": st, "config": cfg.to_dict(),
                  "preprocessor": data.preprocessor.state_dict()}, path)


def _atomic_save(obj: dict, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash or a full disk mid-write never leaves
    a torn file, and the previous version stays intact. On failure the partial file is removed
    (it would hold disk space the run needs) and the OSError is raised."""
    tmp = path.with_suffix(".tmp")
    try:
        # Through a Python file object, so a failed write surfaces as the OSError it is (ENOSPC…);
        # given a path, torch.save reports it as an opaque RuntimeError from its zip writer.
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


MODEL_SAVE_WAITS_S = (1, 2, 4, 8, 15, 30)  # the trained model is the run's result: wait ~1 min for space


def _save_model(obj: dict, path: Path, sink: Sink, step: int) -> None:
    """Write the trained model; while the disk refuses, wait and try again (an operator may be
    freeing space), then give up with a message that says what to do."""
    for i, wait in enumerate((*MODEL_SAVE_WAITS_S, None)):
        try:
            _atomic_save(obj, path)
            return
        except OSError as e:
            if wait is None:
                raise StorageError(f"could not write the trained model to {path} ({_disk_message(e)}) after "
                                   f"{i} retries over {sum(MODEL_SAVE_WAITS_S)} s: free disk space on the data "
                                   "directory and queue the run again") from e
            if i == 0:
                sink.event(step, "checkpoint_failed", f"could not write the trained model ({_disk_message(e)}); retrying for "
                           f"up to {sum(MODEL_SAVE_WAITS_S)} s", {"error": _disk_message(e)})
            time.sleep(wait)


def _resume_point(epoch: int) -> str:
    return f"after epoch {epoch}" if epoch else "from the beginning"


def _disk_message(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__
