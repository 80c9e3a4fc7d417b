"""The training loop: every tip the engine applies, as named steps.

``train(config, data, sink=..., should_stop=..., device=..., run_dir=..., faults=...)`` trains
one model or a K-member ensemble (T14) on a :class:`engine.data.Prepared` and reports through
the sink protocol. :func:`_train` is the loop itself, a few lines per epoch: train an epoch,
validate, schedule the LR, ask the doctor, decide whether to stop, checkpoint, then wrap up.
:class:`_Run` holds the run's parts and implements each step. The loop only acts: the stop and
cut decisions live in ``engine.decide``, the warnings in ``engine.doctor``, the LR cuts in
torch's ``ReduceLROnPlateau`` (``engine.schedule``).

Where else things live: the models and the ensemble in ``engine.nets``, the state a resume
continues in ``engine.state``, the files a run writes in ``engine.checkpoint``, fault injection
for the reliability tests in ``engine.faults``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from engine import checkpoint, decide, doctor, nets
from engine.baselines import Baselines
from engine.bundle_predict import class_scores, confusion, regression_scores  # one home
from engine.config import Config
from engine.decide import Action, Decision
from engine.errors import CheckpointError, ConfigError, OutOfMemory
from engine.faults import FaultHook
from engine.limits import CHECKPOINT, MODEL
from engine.messages import Message
from engine.models import build_model, resolve_kind
from engine.schedule import ShadowPlateau, make_plateau_scheduler
from engine.sink import Sink
from engine.state import LoopState, keep_last
from engine.threads import ThreadGovernor, ThreadPolicy, step_work
from engine.vocab import EventKind, RunStatus, StopReason

__all__ = ["CHECKPOINT", "MODEL", "TrainResult", "train"]

# How often a running loop asks `should_stop` (cooperative cancel): ~4×/s, not per step, since the
# callback may read a database. Tests that need a cancel at an exact step set it to 0.
STOP_CHECK_S = 0.25
# A checkpoint at most this often (and after the first epoch, after a failed write, and at the
# end): every epoch's was 53 writes, 0.15-0.26 s, of a 178-row run's 1.1 s of training. A
# crash then costs up to this much training more on resume. Tests set it to 0 for every epoch.
CHECKPOINT_EVERY_S = 5.0


@dataclass
class TrainResult:
    status: RunStatus  # finished | diverged | cancelled
    summary: dict[str, Any]
    message: str
    findings: list[dict[str, Any]] = field(default_factory=list)


class _Outcome(NamedTuple):
    """How the loop ended: the run's status, the summary's stop_reason, and the diverged message."""

    status: RunStatus
    reason: str
    message: str = ""


_EPOCHS_DONE = _Outcome(RunStatus.FINISHED, StopReason.EPOCHS)
_CANCELLED = _Outcome(RunStatus.CANCELLED, StopReason.CANCEL_REQUESTED)


def train(
    cfg: Config,
    data: Any,
    *,
    sink: Sink,
    should_stop: Callable[[], bool] | None = None,
    device: str | torch.device = "cpu",
    run_dir: Path | None = None,
    resume: bool = True,
    faults: FaultHook | None = None,
    threads: ThreadPolicy | None = None,
) -> TrainResult:
    """Train on prepared data. ``data`` is an ``engine.data.Prepared``. ``faults`` injects the
    reliability suite's faults (see :class:`engine.faults.FaultHook`); None injects nothing.
    ``threads``: the CPU thread policy (:class:`engine.threads.ThreadPolicy`); None leaves torch's
    own setting alone.

    Raises :class:`OutOfMemory` (after an ``oom`` event) when the device runs out of memory; the
    last epoch's checkpoint stays on disk."""
    try:
        return _train(
            cfg,
            data,
            sink=sink,
            should_stop=should_stop,
            device=torch.device(device),
            run_dir=run_dir,
            resume=resume,
            faults=faults or FaultHook(),
            threads=threads,
        )
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        bs = cfg.train.batch_size
        message = Message("error.oom", error=str(e).splitlines()[0][:200], batch=bs)
        half = max(1, bs // 2)
        details = {
            "batch_size": bs,
            "suggestion": f"train.batch_size={half}",
            "change": {"train.batch_size": half} if half != bs else {},
        }
        sink.event(0, EventKind.OOM, message, details)
        raise OutOfMemory(message) from e


def _train(
    cfg: Config,
    data: Any,
    *,
    sink: Sink,
    should_stop: Callable[[], bool] | None,
    device: torch.device,
    run_dir: Path | None,
    resume: bool,
    faults: FaultHook,
    threads: ThreadPolicy | None,
) -> TrainResult:
    t_start = time.perf_counter()
    run = _Run(cfg, data, sink, device, run_dir, faults, threads)
    try:
        return _loop(run, cfg, should_stop, resume, t_start)
    finally:
        if run.baselines is not None:
            run.baselines.close()  # a cancelled or failed run's child fit is not waited for
        if run.governor is not None:
            run.governor.close()  # this run no longer shares the cores


def _loop(
    run: _Run, cfg: Config, should_stop: Callable[[], bool] | None, resume: bool, t_start: float
) -> TrainResult:
    if resume and run.checkpoint_exists():
        run.resume()
    else:
        run.start()
    stop_requested = _StopCheck(should_stop)
    outcome = _EPOCHS_DONE
    t_loop = time.perf_counter()
    epoch = run.loop_start_epoch = run.state.epoch
    epoch_start_step = run.state.step
    while epoch < cfg.train.epochs:
        epoch += 1
        epoch_start_step = run.state.step
        halt = run.train_epoch(epoch, stop_requested)
        ev = run.validate(epoch) if halt is None else halt
        if isinstance(ev, _Outcome):
            outcome = ev
            break
        run.track_best(epoch, ev)
        run.schedule(epoch, ev)
        run.ask_doctor(epoch)
        stop = run.stop_decision(epoch)  # decided now, acted on once the epoch is saved
        run.state.epoch = epoch
        run.save_epoch(epoch, final=stop is not None or epoch >= cfg.train.epochs)
        if stop is not None:
            outcome = run.act(stop)
            break
        if stop_requested.now():
            outcome = _CANCELLED
            break
    return run.wrap_up(outcome, epoch, epoch_start_step, t_start=t_start, t_loop=t_loop)


class _StopCheck:
    """Cooperative cancel: ``due()`` asks ``should_stop`` at most every STOP_CHECK_S (between
    steps), ``now()`` always (between epochs)."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self._ask = should_stop or (lambda: False)
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < STOP_CHECK_S:
            return False
        self._last = now
        return self._ask()

    def now(self) -> bool:
        return self._ask()


@dataclass
class _EpochTotals:
    """One epoch's running sums, kept on the device: one tensor add per step, no sync."""

    loss: torch.Tensor  # summed step losses since the last logged point
    clipped: torch.Tensor  # clipped steps since the last logged point
    epoch_clipped: torch.Tensor  # clipped steps this epoch
    n: int = 0  # steps since the last logged point
    epoch_loss: float = 0.0  # summed from `loss` at each logged point

    @classmethod
    def zeros(cls, device: torch.device) -> _EpochTotals:
        return cls(*(torch.zeros((), device=device) for _ in range(3)))


class _Run:
    """One run's parts (model, optimizer, schedulers, data on the device, state) and the named
    steps :func:`_train` calls, in the order it calls them."""

    def __init__(
        self,
        cfg: Config,
        data: Any,
        sink: Sink,
        device: torch.device,
        run_dir: Path | None,
        faults: FaultHook,
        threads: ThreadPolicy | None = None,
    ) -> None:
        self.cfg, self.data, self.sink, self.dev, self.faults = cfg, data, sink, device, faults
        tc, sc = cfg.train, cfg.schedule
        torch.manual_seed(tc.seed)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if data.task == "classification" and not data.n_classes:
            raise ConfigError(Message("config.two_classes"))
        self.net = nets.build_net(cfg, data, device)
        self.opt = nets.make_optimizer(cfg, self.net.params)
        plateau = {
            "factor": sc.plateau_factor,
            "patience": sc.plateau_patience,
            "threshold": sc.plateau_threshold,
            "cooldown": sc.cooldown,
        }
        self.sched = make_plateau_scheduler(self.opt, **plateau)
        # T7 on a fixed LR: the same scheduler, on a throwaway optimizer, marks where a cut would have helped.
        self.shadow = None if sc.enabled else ShadowPlateau(self.lr, **plateau)
        self.x_tr, self.y_tr = data.x_train.to(device), data.y_train.to(device)
        self.x_va, self.y_va = data.x_val.to(device), data.y_val.to(device)
        self.n_train = len(self.x_tr)
        self.bs = min(tc.batch_size, self.n_train)
        self.steps_per_epoch = math.ceil(self.n_train / self.bs)
        # T6: about 10 readings however short the run (doctor.ratio_interval).
        self.ratio_every = doctor.ratio_interval(tc.ratio_every, self.steps_per_epoch * tc.epochs)
        self.threads = self._set_threads(threads)
        # bf16 autocast on a CUDA device only; elsewhere the run stays in fp32 and says so.
        self.precision = "bf16" if tc.precision == "bf16" and device.type == "cuda" else "fp32"
        self.k = self.net.members
        # A summed loss is logged divided by the batch size, so it compares with a mean one.
        self.loss_scale = 1.0 / (self.bs if cfg.optim.loss_reduction == "sum" else 1)
        aug = cfg.augment
        self.augment_on = aug.shift > 0 or aug.flip or aug.rotate_deg > 0 or aug.noise_std > 0
        self.gen = torch.Generator(device="cpu")
        self.aug_gen = torch.Generator(device=device) if self.augment_on else None
        self.weights = [p for _, p in self.net.ratio_norms()]
        self.weight_names = [n for n, _ in self.net.ratio_norms()]
        self.state = LoopState()
        self._majority: float | None = None  # the largest class's share of the training rows
        self.best_state = self.net.state_dict()
        self.ckpt_path = self.run_dir / CHECKPOINT if self.run_dir is not None else None
        self.ckpt_epoch = 0  # the epoch the newest checkpoint on disk holds (0: none)
        self.ckpt_failed = False  # the last write failed: the next epoch tries again
        self.ckpt_time = time.monotonic()  # when the newest checkpoint was written
        self.samples = 0
        self.loop_start_epoch = 0  # the epoch this process's loop started after (_loop sets it)
        self.totals = _EpochTotals.zeros(device)
        # Started now, so a small table's baselines fit beside training (engine.baselines).
        self.baselines = Baselines(data, seed=tc.seed) if tc.baselines else None

    def _set_threads(self, policy: ThreadPolicy | None) -> int | None:
        """Apply the CPU thread policy for this model's size; the thread count, or None."""
        self.governor = None
        if policy is None or self.dev.type != "cpu":
            return None
        n_params = sum(p.numel() for p in self.net.params)
        kind = resolve_kind(self.cfg.model, self.data.modality)
        work = step_work(n_params, self.bs, self.data.input_shape, kind)
        self.governor = ThreadGovernor(policy, work)
        return self.governor.threads

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    # ---- start or resume

    def checkpoint_exists(self) -> bool:
        return self.ckpt_path is not None and self.ckpt_path.exists()

    def start(self) -> None:
        kind = resolve_kind(self.cfg.model, self.data.modality)
        self.sink.event(
            0,
            EventKind.RUN_START,
            Message(
                "event.run_start_members" if self.k > 1 else "event.run_start",
                model=kind,
                members=self.k,
                rows=self.n_train,
                val_rows=len(self.x_va),
                precision=self._precision_note(),
            ),
            {
                "train_rows": self.n_train,
                "val_rows": len(self.x_va),
                "members": self.k,
                "steps_per_epoch": self.steps_per_epoch,
                "threads": self.threads,
                "precision": self.precision,
            },
        )
        if self.cfg.train.preflight:
            self.state.preflight = [
                f.to_dict()
                for f in _preflight(self.cfg, self.data, self.net, self.x_tr, self.y_tr, self.sink)
            ]

    def _precision_note(self) -> Message | str:
        if self.cfg.train.precision == "bf16" and self.precision != "bf16":
            return Message("precision.bf16_unavailable", device=self.dev.type)
        return "" if self.precision == "fp32" else Message("precision.bf16")

    def resume(self) -> None:
        try:
            ck = checkpoint.load(self.ckpt_path, self.dev)
            self.net.load_state_dict(ck["net"])
            self.opt.load_state_dict(ck["optimizer"])
            self.sched.load_state_dict(ck["scheduler"])
            self.best_state = ck["best_state"]
            self.state.load_state_dict(ck["state"])
            if self.shadow is not None and "shadow_scheduler" in ck:  # older checkpoints lack it
                self.shadow.load_state_dict(ck["shadow_scheduler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                Message("error.checkpoint_resume", path=str(self.ckpt_path), error=str(e))
            ) from e
        st = self.state
        self.ckpt_epoch = st.epoch
        self.sink.event(
            st.step,
            EventKind.RESUMED,
            Message("event.resumed", epoch=st.epoch, step=st.step),
            {"epoch": st.epoch, "step": st.step},
        )

    # ---- one epoch of training steps

    def train_epoch(self, epoch: int, stop_requested: _StopCheck) -> _Outcome | None:
        """Every training step of one epoch; an outcome when the run must end mid-epoch."""
        tc = self.cfg.train
        self.net.train_mode(True)
        perm = self._shuffle(epoch)
        self.totals = _EpochTotals.zeros(self.dev)
        for i in range(self.steps_per_epoch):
            norm = self._step(perm[..., i * self.bs : (i + 1) * self.bs], epoch)
            step = self.state.step
            if step % tc.log_every == 0 and (halt := self._log_train(step, epoch, norm)):
                return halt
            if stop_requested.due():
                return _CANCELLED
            if self.governor is not None:
                self.governor.tick()  # runs that start or end beside this one change its share
        return None

    def _shuffle(self, epoch: int) -> torch.Tensor:
        # Shuffles derive from (seed, epoch) so a resumed run sees the same order it would have.
        seed = self.cfg.train.seed
        self.gen.manual_seed(seed * 1_000_003 + epoch)
        if self.aug_gen is not None:
            self.aug_gen.manual_seed(seed * 7919 + epoch)
        if self.k > 1:
            return torch.stack(
                [torch.randperm(self.n_train, generator=self.gen) for _ in range(self.k)]
            ).to(self.dev)
        return torch.randperm(self.n_train, generator=self.gen).to(self.dev)

    def _step(self, idx: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """One optimizer update; returns the gradient norm before clipping when it was measured
        (every step with clipping, else on logged steps only)."""
        tc, net, totals = self.cfg.train, self.net, self.totals
        xb, yb = self.x_tr[idx], self.y_tr[idx]
        if self.augment_on:
            xb = self._augment(xb)
        if self.precision == "bf16":
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = net.forward_loss(xb, yb)
        else:
            loss = net.forward_loss(xb, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = None
        if tc.clip_norm is not None or (self.state.step + 1) % tc.log_every == 0:
            norm = net.clip(tc.clip_norm)
            if tc.clip_norm is not None:
                clipped = norm > tc.clip_norm
                totals.clipped += clipped
                totals.epoch_clipped += clipped
        step = self.state.step + 1
        before = (
            [w.detach().clone() for w in self.weights] if step % self.ratio_every == 0 else None
        )
        self.opt.step()
        self.faults.after_step(step)
        self.state.step = step
        totals.loss += loss.detach()
        totals.n += 1
        self.samples += len(yb) if self.k == 1 else yb.shape[1]
        if before is not None:
            self._measure_ratios(step, epoch, before)
        return norm

    def _augment(self, xb: torch.Tensor) -> torch.Tensor:
        from engine.data.augment import augment  # local: only runs that augment need it

        # T12: augmentation on the training batch only, on its device; validation never.
        aug = self.cfg.augment
        flat = xb.reshape(-1, *xb.shape[2 if self.k > 1 else 1 :])
        return augment(
            flat,
            self.data.modality,
            shift=aug.shift,
            flip=aug.flip,
            rotate_deg=aug.rotate_deg,
            noise_std=aug.noise_std,
            generator=self.aug_gen,
        ).reshape(xb.shape)

    def _measure_ratios(self, step: int, epoch: int, before: list[torch.Tensor]) -> None:
        """T6: log ‖Δw‖/‖w‖ per weight matrix and let the doctor judge the median."""
        ratios = nets.update_ratios(before, [w.detach() for w in self.weights], self.k)
        vals = {f"ratio/{n}": r for n, r in zip(self.weight_names, ratios, strict=True)}
        med = statistics.median(ratios)
        vals["ratio/median"] = med
        vals["ratio/max"] = max(ratios)
        self.sink.log(step, vals)
        st, dc = self.state, self.cfg.doctor
        st.ratio_summary.append(med)
        keep_last(st.ratio_summary, dc.ratio_window)
        if f := doctor.rule_ratio(
            st.ratio_summary,
            dc.ratio_low,
            dc.ratio_high,
            dc.ratio_window,
            lr=self.lr,
            base_lr=self.cfg.optim.lr,
            train_losses=st.train_losses,
        ):
            self.report(f, step, epoch)

    def _log_train(self, step: int, epoch: int, norm: torch.Tensor | None) -> _Outcome | None:
        """A logged step: the mean training loss since the last one, the gradient norm (T9)."""
        assert norm is not None, "the norm is measured on every logged step"
        tc, st, totals = self.cfg.train, self.state, self.totals
        summed = float(totals.loss)
        totals.epoch_loss += summed
        mean_loss = summed / totals.n / self.k * self.loss_scale
        gn = float(norm)
        vals = {"train/loss": mean_loss, "grad/norm": gn, "lr": self.lr}
        if tc.clip_norm is not None:
            vals["grad/clip_frac"] = float(totals.clipped) / totals.n
            totals.clipped.zero_()
        self.sink.log(step, vals)
        totals.loss.zero_()
        totals.n = 0
        if st.initial_loss is None:
            st.initial_loss = mean_loss
        if halt := self._diverged({"train/loss": mean_loss, "grad/norm": gn}):
            return halt
        st.grad_norms.append(gn)
        keep_last(st.grad_norms, doctor.GRAD_HISTORY + 1)
        if f := doctor.rule_exploding(
            st.grad_norms, self.cfg.doctor.grad_explode_factor, clip_norm=tc.clip_norm, lr=self.lr
        ):
            self.report(f, step, epoch)
        return None

    def _diverged(self, latest: dict[str, float]) -> _Outcome | None:
        d = decide.diverged(
            latest, lr=self.lr, base_lr=self.cfg.optim.lr, clip_norm=self.cfg.train.clip_norm
        )
        return self.act(d) if d else None

    # ---- end of epoch

    def validate(self, epoch: int) -> dict[str, Any] | _Outcome:
        """T7: the epoch's training loss and a validation pass, logged at the epoch's last step."""
        totals, st, spe = self.totals, self.state, self.steps_per_epoch
        if totals.n:
            totals.epoch_loss += float(totals.loss)
        train_loss = totals.epoch_loss / max(1, spe) / self.k * self.loss_scale
        if halt := self._diverged({"train/epoch_loss": train_loss}):
            return halt
        ev = nets.evaluate(self.net, self.x_va, self.y_va, self.data.task, self.data.y_std)
        if halt := self._diverged({"val/loss": ev["sched_loss"]}):
            return halt
        self._log_epoch(epoch, train_loss, ev)
        st.train_losses.append(train_loss)
        st.val_losses.append(ev["sched_loss"])
        st.val_metrics.append(ev["metric"])
        self.sink.progress(epoch / self.cfg.train.epochs)
        if d := decide.clip_burst(
            int(totals.epoch_clipped), spe, bound=self.cfg.train.clip_norm, epoch=epoch
        ):
            self.act(d)
        return ev

    def _log_epoch(self, epoch: int, train_loss: float, ev: dict[str, Any]) -> None:
        mname = ev["metric_name"]
        vals = {
            "train/epoch_loss": train_loss,
            "val/loss": ev["loss"],
            f"val/{mname}": ev["metric"],
            "epoch": epoch,
        }
        if ev.get("weighted"):
            vals["val/balanced_acc"] = ev["balanced"]
        if self.cfg.train.clip_norm is not None:
            vals["grad/clip_frac_epoch"] = float(self.totals.epoch_clipped) / self.steps_per_epoch
        if self.k > 1:
            mm = statistics.fmean(ev["member_metric"])
            vals["val/member_mean_loss"] = ev["sched_loss"]
            vals[f"val/member_mean_{mname}"] = mm
            vals["ensemble/gain"] = (ev["metric"] - mm) if mname == "acc" else (mm - ev["metric"])
            for i, m in enumerate(ev["member_metric"]):
                vals[f"member/{i}/val_{mname}"] = m
        self.sink.log(self.state.step, vals)

    def track_best(self, epoch: int, ev: dict[str, Any]) -> None:
        """Keep the best epoch's weights (restored at the end, T7) and count epochs without one.
        The best epoch has the lowest validation loss; with imbalanced classes (class weights
        on), the best balanced accuracy, the lower loss breaking a tie."""
        st = self.state
        if ev.get("weighted"):
            key = (-ev["balanced"], ev["sched_loss"])
            if st.best_key is None or key < tuple(st.best_key):
                st.best_key = list(key)
                st.best_loss, st.best_epoch, st.best_metric = ev["sched_loss"], epoch, ev["metric"]
                st.member_metrics, st.bad_epochs = ev["member_metric"], 0
                st.best_balanced, st.best_lr = ev["balanced"], self.lr
                self.best_state = self.net.state_dict()
            else:
                st.bad_epochs += 1
            return
        if ev["sched_loss"] < st.best_loss:
            st.best_loss, st.best_epoch, st.best_metric = ev["sched_loss"], epoch, ev["metric"]
            st.member_metrics, st.bad_epochs = ev["member_metric"], 0
            st.best_lr = self.lr  # the LR this epoch trained at (the schedule steps after)
            self.best_state = self.net.state_dict()
        else:
            st.bad_epochs += 1

    def schedule(self, epoch: int, ev: dict[str, Any]) -> None:
        """T7: torch's ReduceLROnPlateau decides the cut and the loop reports it; on a fixed LR
        the shadow scheduler and the doctor mark where a cut would have helped."""
        sc, st = self.cfg.schedule, self.state
        old_lr = self.lr
        if sc.enabled:
            self.sched.step(ev["sched_loss"])
        if cut := decide.lr_cut(old_lr, self.lr, epoch=epoch):
            st.n_cuts += 1
            st.first_cut_epoch = st.first_cut_epoch or epoch
            # T7: early-stop patience counts from the last cut, so the schedule gets to cut the
            # LR all the way to the floor (which then ends the run) before patience runs out.
            st.bad_epochs = 0
            # Logged again so the LR curve steps down where the cut happened.
            self.sink.log(st.step, {"lr": self.lr})
            self.act(cut)
        elif self.shadow is not None:
            # The same value jobs' charts show (the logged val/loss), so the mark sits on its point.
            if (shadow_cut := self.shadow.step(ev["loss"])) and (
                hint := decide.plateau_hint(*shadow_cut, epoch=epoch, patience=sc.plateau_patience)
            ):
                self.act(hint)
            if f := doctor.rule_plateau(
                st.val_losses,
                factor=sc.plateau_factor,
                patience=sc.plateau_patience,
                threshold=sc.plateau_threshold,
                schedule_enabled=sc.enabled,
            ):
                self.report(f, st.step, epoch, every=1)

    def ask_doctor(self, epoch: int) -> None:
        """The epoch-level live rules: overfitting (T13) and a rising training loss (T5)."""
        st, m = self.state, self.cfg.model
        for f in (
            doctor.rule_overfitting(
                st.train_losses,
                st.val_losses,
                dropout=m.dropout,
                noise_std=self.cfg.augment.noise_std,
                val_scores=st.val_metrics,
                higher_is_better=self.data.task == "classification",
                min_drop=self._noise_floor(),
                **self._learned_something(),
            ),
            # T5 compares epoch means with the first epoch's mean, like with like.
            doctor.rule_divergence(st.train_losses, st.train_losses[0], lr=self.lr),
        ):
            if f:
                self.report(f, st.step, epoch)

    def _noise_floor(self) -> float:
        """How much the validation score may move by chance (T13's threshold): 1.5 rows of
        accuracy for a classifier, 2 % of the best RMSE for regression."""
        if self.data.task == "classification":
            return 1.5 / max(1, len(self.x_va))
        scores = self.state.val_metrics
        return 0.02 * min(scores) if scores else 0.0

    def _learned_something(self) -> dict[str, float]:
        """For T13 on a classifier: its best validation accuracy so far and the share of the
        largest class among the training rows (what always answering that class scores)."""
        if self.data.task != "classification" or not self.state.val_metrics:
            return {}
        if self._majority is None:  # the training rows don't change: counted once
            counts = torch.bincount(self.y_tr.reshape(-1).long())
            self._majority = float(counts.max()) / float(counts.sum())
        return {"best_val_accuracy": max(self.state.val_metrics), "majority_share": self._majority}

    def stop_decision(self, epoch: int) -> Decision | None:
        """T7: the LR fell below the floor, or validation stopped improving (early stop)."""
        st, tc = self.state, self.cfg.train
        return decide.lr_floor(
            self.lr, floor=self.cfg.schedule.lr_floor, epoch=epoch
        ) or decide.early_stop(
            st.bad_epochs, patience=tc.early_stop_patience, epoch=epoch, best_epoch=st.best_epoch
        )

    def save_epoch(self, epoch: int, *, final: bool) -> None:
        if self.ckpt_path is None or not checkpoint.due(
            final=final,
            failed=self.ckpt_failed,
            saved=self.ckpt_epoch > 0,
            since_s=time.monotonic() - self.ckpt_time,
            every_s=CHECKPOINT_EVERY_S,
        ):
            return
        why = self._save(self.state.state_dict())
        self.ckpt_failed = why is not None
        if why is not None:
            # Training goes on; the next epoch tries again.
            self.sink.event(
                self.state.step,
                EventKind.CHECKPOINT_FAILED,
                Message(
                    "event.checkpoint_failed",
                    epoch=epoch,
                    why=why,
                    resume=checkpoint.resume_point(self.ckpt_epoch),
                ),
                {"epoch": epoch, "last_checkpoint_epoch": self.ckpt_epoch, "error": why},
            )

    def _save(self, state: dict[str, Any]) -> str | None:
        """Write the checkpoint; on a full or failing disk return why it failed instead of
        raising. That costs resume granularity, not the run: the last good checkpoint stays."""
        assert self.ckpt_path is not None
        ck = {
            "net": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "best_state": self.best_state,
            "state": state,
            "config": self.cfg.to_dict(),
            "preprocessor": self.data.preprocessor.state_dict(),
        }
        if self.shadow is not None:
            ck["shadow_scheduler"] = self.shadow.state_dict()
        try:
            checkpoint.atomic_save(ck, self.ckpt_path)
        except OSError as e:
            return checkpoint.disk_message(e)
        self.ckpt_epoch = state["epoch"]
        self.ckpt_time = time.monotonic()
        return None

    # ---- acting on decisions

    def act(self, decision: Decision) -> _Outcome | None:
        """Emit the decision's event; for a stop, the outcome that ends the run."""
        self.sink.event(self.state.step, decision.kind, decision.message, decision.data)
        if decision.action is Action.REPORT:
            return None
        return _Outcome(decision.status, decision.reason, decision.message)

    def report(self, finding: doctor.Finding, step: int, epoch: int, every: int = 5) -> None:
        """A live doctor finding as a ``doctor`` event: one per rule per `every` epochs, not one per check."""
        st = self.state
        last = st.fired.get(finding.rule)
        if last is not None and epoch - last < every:
            return
        st.fired[finding.rule] = epoch
        st.findings.append(finding.to_dict() | {"epoch": epoch, "step": step})
        self.sink.event(
            step,
            EventKind.DOCTOR,
            Message("event.doctor", finding=finding.message, tip=finding.tip),
            finding.to_dict(),
        )

    # ---- wrap up

    def wrap_up(
        self, outcome: _Outcome, epoch: int, epoch_start_step: int, *, t_start: float, t_loop: float
    ) -> TrainResult:
        """Save a cancelled run, restore and save the best weights (T7), summarise, end the run."""
        status, reason, message = outcome
        st, step = self.state, self.state.step
        loop_seconds = time.perf_counter() - t_loop  # this segment's epochs only (below)
        if status is RunStatus.CANCELLED:
            message = self._save_cancelled(epoch, epoch_start_step)
            self.sink.event(step, EventKind.CANCELLED, message, {"epoch": st.epoch})
        if st.best_epoch > 0:
            self.net.load_state_dict(self.best_state)
            if status is not RunStatus.CANCELLED:
                self.sink.event(
                    step,
                    EventKind.BEST_RESTORED,
                    Message("event.best_restored", epoch=st.best_epoch),
                    {"epoch": st.best_epoch, "val_loss": st.best_loss},
                )
            if self.run_dir is not None:
                self._save_model()
        if status is RunStatus.FINISHED and (
            note := doctor.rule_range_test(
                self.cfg.optim.range_test_lr,
                self.cfg.optim.lr,
                first_cut_epoch=st.first_cut_epoch,
                best_epoch=st.best_epoch,
                best_lr=st.best_lr,
            )
        ):
            self.report(note, step, epoch)
        summary = self._summary(
            status, reason, elapsed=time.perf_counter() - t_start, t_loop=t_loop
        )
        # The epochs this process trained (a resumed run: since its checkpoint) and their
        # seconds, without start-up, pre-flight and scoring: a sweep's per-epoch rate
        # (jobs.sweeps.views.saved_by_pruning) from "seconds" ran high on short segments.
        summary["loop_epochs"] = st.epoch - self.loop_start_epoch
        summary["loop_seconds"] = round(loop_seconds, 3)
        if status is RunStatus.FINISHED:
            self.check_classes(epoch)
            summary |= self.score_test()
            if self.baselines is not None and summary.get("test_metric") is not None:
                summary["baselines"] = self.baselines.result()
        if status is RunStatus.FINISHED:
            code = "event.run_end" + ("" if st.best_metric is None else "_best")
            if summary.get("test_metric") is not None:
                code += "_test"
            message = Message(
                code,
                epochs=st.epoch,
                reason=Message(f"stop.{reason}"),
                metric=summary["metric"],
                value=st.best_metric,
                epoch=st.best_epoch,
                test_value=summary.get("test_metric"),
            )
        self.sink.event(step, EventKind.RUN_END, message, {"status": status, "reason": reason})
        return TrainResult(status, summary, message, st.findings)

    def check_classes(self, epoch: int) -> None:
        """T1 at the end, with the best weights: a class the model never predicts on the
        validation split (the test split stays unseen by every choice and every finding)."""
        d = self.data
        if d.task != "classification" or len(self.x_va) == 0:
            return
        # The members' averaged probabilities, as nets.evaluate predicts (not a call to it: a
        # finding is no validation epoch, and tests count those).
        with torch.no_grad():
            pred = self.net.predict(self.x_va).softmax(-1).mean(0).argmax(1)
        cm = confusion(self.y_va, pred, d.n_classes)
        if f := doctor.rule_never_predicted(
            cm,
            d.class_names,
            class_weight=self.cfg.train.class_weight,
            epochs=len(self.state.train_losses),
        ):
            self.report(f, self.state.step, epoch, every=1)
        accuracy = float((pred == self.y_va.reshape(-1)).float().mean())
        majority = self._learned_something().get("majority_share")
        if majority is not None and (
            f := doctor.rule_learned_nothing(
                accuracy, majority, self.state.train_losses, noise=self._noise_floor()
            )
        ):
            self.report(f, self.state.step, epoch, every=1)

    def score_test(self) -> dict[str, Any]:
        """The held-out test split, scored once with the weights in place (the best epoch's):
        nothing was chosen on it, so it is the honest score. {} without a test split."""
        d = self.data
        if d.x_test is None or len(d.x_test) == 0:
            return {}
        x, y = d.x_test.to(self.dev), d.y_test.to(self.dev)
        ev = nets.evaluate(self.net, x, y, d.task, d.y_std)
        out: dict[str, Any] = {
            "test_metric": ev["metric"],
            "test_loss": ev["loss"],
            "test_rows": len(x),
            "split": d.split,
        }
        if d.task == "classification":
            cm = confusion(y, ev["pred"], d.n_classes)
            out["confusion_matrix"] = cm
            out["class_names"] = d.class_names
            out.update(class_scores(cm, d.class_names))
        else:
            out.update(regression_scores(ev["pred"], y, d.y_std or 1.0))
        self.sink.event(
            self.state.step,
            EventKind.TEST_SCORE,
            Message(
                "event.test_score_best" if self.state.best_epoch else "event.test_score",
                rows=len(x),
                metric=ev["metric_name"],
                value=ev["metric"],
                epoch=self.state.best_epoch,
            ),
            {"metric": ev["metric_name"], "value": ev["metric"], "loss": ev["loss"]},
        )
        return out

    def _save_cancelled(self, epoch: int, epoch_start_step: int) -> Message:
        def stopped(checkpoint_part: Message | str) -> Message:
            return Message(
                "event.stopped",
                how=Message("how.cancelled"),
                step=self.state.step,
                checkpoint=checkpoint_part,
            )

        if self.ckpt_path is None:
            return stopped("")
        # Stopped mid-epoch: keep the newest weights, but count steps from the start of the
        # unfinished epoch, which a resume redoes in full; its points then replace the ones
        # logged here, so the series stays continuous (one val point per epoch, no shift).
        state = self.state.state_dict()
        if self.state.epoch < epoch:
            state["step"] = epoch_start_step
        why = self._save(state)
        if why is None:
            return stopped(Message("checkpoint.saved"))
        resume = checkpoint.resume_point(self.ckpt_epoch)
        return stopped(Message("checkpoint.unsaved", why=why, resume=resume))

    def _save_model(self) -> None:
        assert self.run_dir is not None
        d = self.data
        model = {
            "net": self.best_state,
            "config": self.cfg.to_dict(),
            "preprocessor": d.preprocessor.state_dict(),
            "members": self.k,
            "task": d.task,
            "class_names": d.class_names,
            "input_shape": list(d.input_shape),
            "y_mean": d.y_mean,
            "y_std": d.y_std,
        }
        checkpoint.save_model(model, self.run_dir / MODEL, self.sink, self.state.step)

    def _summary(
        self, status: RunStatus, reason: str, *, elapsed: float, t_loop: float
    ) -> dict[str, Any]:
        st = self.state
        mname = "acc" if self.data.task == "classification" else "rmse"
        summary: dict[str, Any] = {
            "status": status,
            "stop_reason": reason,
            "target": self.data.target,
            "ignored_columns": [
                c["name"] for c in self.data.columns or [] if c["kind"] in ("id", "text", "ignore")
            ],
            "epochs": st.epoch,
            "steps": st.step,
            "best_epoch": st.best_epoch,
            "best_val_loss": st.best_loss if st.best_epoch else None,
            "metric": mname,
            "best_val_metric": st.best_metric,
            # imbalanced classes: the loss was class-weighted, the best epoch chosen by this
            "class_weighted": getattr(self.net, "class_weight", None) is not None,
            "best_by": "balanced_acc" if st.best_key is not None else "val_loss",
            "best_val_balanced_accuracy": st.best_balanced,
            "final_lr": self.lr,
            "lr_cuts": st.n_cuts,
            "members": self.k,
            "threads": self.governor.threads if self.governor is not None else None,
            "seconds": round(elapsed, 3),
            "samples_per_s": round(self.samples / max(time.perf_counter() - t_loop, 1e-9), 1),
            "preflight": st.preflight,
            "findings": st.findings,
        }
        if self.k > 1 and st.member_metrics:
            mm = statistics.fmean(st.member_metrics)
            summary["member_mean_metric"] = mm
            summary["ensemble_gain"] = (
                (st.best_metric - mm) if mname == "acc" else (mm - st.best_metric)
            )
        return summary


def _preflight(
    cfg: Config, data: Any, net: nets.Net, x: torch.Tensor, y: torch.Tensor, sink: Sink
) -> list[doctor.Finding]:
    """T8/T10/T2 checks before the first step, each reported as a 'preflight' event."""
    m = cfg.model
    loss_fn = nets.loss_fn(data.task, "mean")
    net.train_mode(False)
    with torch.no_grad():
        out = net.predict(x[:512])[0]
        init_loss = float(loss_fn(out, y[:512] if y.ndim == 1 else y[0, :512]))
    findings = [
        doctor.check_init_loss(
            init_loss, data.task, data.n_classes, init=m.init, init_scale=m.init_scale
        ),
        doctor.check_standardized(data.x_train, data.modality, standardize=cfg.data.standardize),
        doctor.check_batch_size(cfg.train.batch_size, len(data.x_train)),
    ]
    out_features = data.n_classes if data.task == "classification" else 1

    def fresh() -> nn.Module:
        return build_model(
            m, data.input_shape, out_features, data.modality, seed=cfg.train.seed
        ).to(x.device)

    probe = net.model if isinstance(net, nets.Single) else fresh()
    findings.append(doctor.check_activation_scale(probe, x, init=m.init, init_scale=m.init_scale))
    findings.append(doctor.gradcheck_model(probe, x, seed=cfg.train.seed))
    if cfg.train.overfit_one_batch:
        findings.append(doctor.overfit_one_batch(fresh, x, y, loss_fn, data.task))
    for f in findings:
        code = "event.preflight_passed" if f.passed else "event.preflight_failed"
        sink.event(0, EventKind.PREFLIGHT, Message(code, finding=f.message, tip=f.tip), f.to_dict())
    net.train_mode(True)
    return findings
