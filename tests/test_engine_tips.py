"""One test (at least) per tip the engine applies; each can fail if the tip is broken."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine import doctor
from engine.config import Config, resolve_config
from engine.models import build_model, set_forget_bias
from engine.nets import Single, Stacked, evaluate
from engine.sink import MemorySink
from engine.train import train
from tests.engine_helpers import blobs


def cfg_for(**overrides) -> Config:
    base = {
        "train.preflight": False,
        "train.epochs": 3,
        "model.hidden": [32],
        "train.batch_size": 32,
    }
    return resolve_config("sutskever", overrides=base | overrides)


# ---------------------------------------------------------------- T4


@pytest.mark.parametrize(("reduction", "expected_ratio"), [("mean", 1.0), ("sum", 2.0)])
def test_gradient_scale_is_batch_size_invariant_with_mean_loss(reduction, expected_ratio):
    """The same examples twice over (batch 2B) give the same gradient as batch B with a mean
    loss (T4); a summed loss doubles it, which is what T4 warns about."""
    data = blobs()
    cfg = cfg_for(**{"optim.loss_reduction": reduction})
    net = Single(cfg, data, torch.device("cpu"))
    xb, yb = data.x_train[:16], data.y_train[:16]

    def grads(x, y):
        net.model.zero_grad()
        net.forward_loss(x, y).backward()
        return torch.cat([p.grad.flatten() for p in net.params])

    g1 = grads(xb, yb)
    g2 = grads(torch.cat([xb, xb]), torch.cat([yb, yb]))
    assert torch.allclose(g2, expected_ratio * g1, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- T7


def _scripted(monkeypatch, losses):
    """Replace only the *values* validation returns with a script; everything else is real."""
    it = iter(losses)

    def fake_eval(net, x, y, task, y_std):
        v = next(it)
        return {
            "loss": v,
            "metric": 1.0 - v,
            "metric_name": "acc",
            "member_loss": [v],
            "member_metric": [1.0 - v],
            "sched_loss": v,
        }

    monkeypatch.setattr("engine.nets.evaluate", fake_eval)


def _torch_cut_epochs(losses, factor, patience, threshold=1e-4):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    s = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=factor, patience=patience, threshold=threshold
    )
    cuts = []
    for epoch, v in enumerate(losses, start=1):
        before = opt.param_groups[0]["lr"]
        s.step(v)
        if opt.param_groups[0]["lr"] < before:
            cuts.append((epoch, before, opt.param_groups[0]["lr"]))
    return cuts


@pytest.mark.parametrize(
    ("losses", "factor", "patience"),
    [
        ([1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7], 0.5, 2),
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.2, 1),
        ([5.0, 4.0, 3.0, 2.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5], 0.5, 0),
        ([1.0, 0.99999, 0.99998, 0.99997, 1.2, 0.5, 0.5, 0.5, 0.5, 0.5], 0.5, 2),
    ],
)
def test_lr_is_cut_exactly_where_torch_reduce_lr_on_plateau_cuts(
    monkeypatch, losses, factor, patience
):
    _scripted(monkeypatch, losses)
    cfg = cfg_for(
        **{
            "train.epochs": len(losses),
            "schedule.plateau_factor": factor,
            "schedule.plateau_patience": patience,
            "schedule.lr_floor": 0.0,
            "train.early_stop_patience": None,
        }
    )
    sink = MemorySink()
    train(cfg, blobs(n=64, val=16), sink=sink)
    got = [
        (e["data"]["epoch"], e["data"]["old_lr"], e["data"]["new_lr"]) for e in sink.kinds("lr_cut")
    ]
    want = _torch_cut_epochs(losses, factor, patience)
    assert [(ep, pytest.approx(a), pytest.approx(b)) for ep, a, b in want] == got
    lr_points = dict(sink.series("lr"))
    assert lr_points, "the LR is logged"


def test_run_ends_when_lr_falls_below_the_floor(monkeypatch):
    _scripted(monkeypatch, [1.0] * 50)
    cfg = cfg_for(
        **{
            "train.epochs": 50,
            "schedule.plateau_patience": 0,
            "schedule.plateau_factor": 0.5,
            "schedule.lr_floor": 0.02,
            "train.early_stop_patience": None,
        }
    )
    sink = MemorySink()
    result = train(cfg, blobs(n=64, val=16), sink=sink)
    # 0.1 → .05 (epoch 2) → .025 (3) → .0125 (4) < 0.02: the run stops after epoch 4
    assert result.summary["stop_reason"] == "lr_floor"
    assert result.summary["epochs"] == 4
    assert len(sink.kinds("lr_floor")) == 1


def test_early_stop_patience_counts_from_the_last_cut_so_the_lr_reaches_the_floor(monkeypatch):
    # T7 as the advice says: cut on every plateau and go on until the LR is tiny. Validation
    # never improves; early stopping (3 epochs) would end the run after one cut if its count
    # did not start again at each cut.
    _scripted(monkeypatch, [1.0] * 50)
    cfg = cfg_for(
        **{
            "train.epochs": 50,
            "schedule.plateau_patience": 1,
            "schedule.plateau_factor": 0.5,
            "schedule.lr_floor": 0.02,
            "train.early_stop_patience": 3,
        }
    )
    sink = MemorySink()
    result = train(cfg, blobs(n=64, val=16), sink=sink)
    # cuts after 2 bad epochs each: epoch 3 (.05), 5 (.025), 7 (.0125 < 0.02, the floor)
    assert result.summary["stop_reason"] == "lr_floor", result.message
    assert [e["data"]["epoch"] for e in sink.kinds("lr_cut")] == [3, 5, 7]
    assert result.summary["epochs"] == 7 and not sink.kinds("early_stop")


def test_the_sutskever_default_reaches_the_lr_floor_when_validation_keeps_plateauing(
    monkeypatch,
):
    _scripted(monkeypatch, [1.0] * 200)
    cfg = resolve_config("sutskever", overrides={"train.epochs": 200})
    result = train(cfg, blobs(n=64, val=16), sink=MemorySink())
    assert result.summary["stop_reason"] == "lr_floor"
    assert result.summary["final_lr"] < cfg.schedule.lr_floor


def test_the_test_split_is_scored_once_with_the_best_weights():
    data = blobs(n=300, val=100, seed=3)
    data.x_test, data.y_test = data.x_val.clone(), data.y_val.clone()  # so test == validation
    cfg = cfg_for(
        **{
            "train.epochs": 40,
            "train.early_stop_patience": 3,
            "schedule.enabled": False,
            "optim.lr": 0.5,
            "optim.momentum": 0.0,
        }
    )
    sink = MemorySink()
    s = train(cfg, data, sink=sink).summary
    assert s["best_epoch"] < s["epochs"]  # the last weights are not the best ones
    assert s["test_loss"] == pytest.approx(s["best_val_loss"], rel=1e-5)
    assert s["test_metric"] == pytest.approx(s["best_val_metric"])
    assert s["test_rows"] == 100 and sum(map(sum, s["confusion_matrix"])) == 100
    assert len(sink.kinds("test_score")) == 1


def test_early_stop_ends_the_run_and_restores_the_best_weights(tmp_path):
    """Real training: a huge LR makes validation loss bounce; the saved model must be the best
    epoch's weights, checked by re-evaluating them."""
    data = blobs(n=300, val=100, seed=3)
    cfg = cfg_for(
        **{
            "train.epochs": 40,
            "train.early_stop_patience": 3,
            "schedule.enabled": False,
            "optim.lr": 0.5,
            "optim.momentum": 0.0,
        }
    )
    sink = MemorySink()
    result = train(cfg, data, sink=sink, run_dir=tmp_path)
    assert result.summary["stop_reason"] == "early_stop"
    assert sink.kinds("early_stop") and sink.kinds("best_restored")
    val_losses = [v for _, v in sink.series("val/loss")]
    best_epoch = result.summary["best_epoch"]
    assert val_losses[best_epoch - 1] == min(val_losses)
    assert result.summary["epochs"] == best_epoch + 3
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    net = Single(cfg, data, torch.device("cpu"))
    net.load_state_dict(saved["net"])
    again = evaluate(net, data.x_val, data.y_val, "classification", None)
    assert again["loss"] == pytest.approx(min(val_losses), rel=1e-5)


# ---------------------------------------------------------------- T8


@pytest.mark.parametrize(
    ("scheme", "scale", "expected_std"),
    [
        ("normal-0.02", 1.0, lambda fan_in: 0.02),
        ("scaled", 1.0, lambda fan_in: 1 / math.sqrt(fan_in)),
        ("scaled", 0.1, lambda fan_in: 0.1 / math.sqrt(fan_in)),
        ("default", 1.0, lambda fan_in: 1 / math.sqrt(3 * fan_in)),  # torch's kaiming-uniform(a=√5)
    ],
)
def test_init_scheme_gives_the_measured_weight_std(scheme, scale, expected_std):
    cfg = Config().model.model_copy(
        update={"hidden": [512, 512], "init": scheme, "init_scale": scale}
    )
    model = build_model(cfg, (256,), 10, "tabular", seed=0)
    for layer in [m for m in model.modules() if isinstance(m, nn.Linear)][:2]:
        fan_in = layer.weight.shape[1]
        assert layer.weight.std().item() == pytest.approx(expected_std(fan_in), rel=0.05)
        if scheme != "default":
            assert torch.count_nonzero(layer.bias) == 0


def test_doctor_flags_an_init_loss_far_from_log_k():
    good = doctor.check_init_loss(2.31, "classification", 10)
    bad = doctor.check_init_loss(9.0, "classification", 10)
    assert good.passed and not bad.passed and bad.tip == "T8"


# ---------------------------------------------------------------- T9


def test_clipping_bounds_the_norm_and_reports_the_pre_clip_norm():
    data = blobs()
    cfg = cfg_for(**{"train.clip_norm": 0.5})
    net = Single(cfg, data, torch.device("cpu"))
    (net.forward_loss(data.x_train[:64], data.y_train[:64]) * 100).backward()
    independent = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.params))
    assert independent > 0.5, "the test needs a gradient above the bound"
    reported = float(net.clip(0.5))
    assert reported == pytest.approx(independent, rel=1e-5)
    after = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in net.params))
    assert after <= 0.5 + 1e-5


def test_ensemble_clips_each_member_by_its_own_norm():
    data = blobs()
    cfg = cfg_for(**{"ensemble.members": 3, "train.clip_norm": 0.5})
    net = Stacked(cfg, data, torch.device("cpu"))
    xb = data.x_train[:32].expand(3, 32, -1)
    yb = data.y_train[:32].expand(3, 32)
    (net.forward_loss(xb, yb) * torch.tensor(100.0)).backward()
    before = [
        math.sqrt(sum(float((p.grad[i].double() ** 2).sum()) for p in net.params)) for i in range(3)
    ]
    reported = float(net.clip(0.5))
    after = [
        math.sqrt(sum(float((p.grad[i].double() ** 2).sum()) for p in net.params)) for i in range(3)
    ]
    assert reported == pytest.approx(sum(before) / 3, rel=1e-5)
    assert all(a <= 0.5 + 1e-5 for a in after)


@pytest.mark.parametrize(
    "model",
    [
        {"model.embedding": "periodic", "model.dropout": 0.3, "model.hidden": [16, 8]},
        {"model.activation": "tanh", "model.hidden": [16]},
        {"model.activation": "gelu", "model.dropout": 0.2, "model.hidden": [8, 8, 8]},
    ],
    ids=["periodic-relu-dropout", "tanh", "gelu-dropout"],
)
def test_stacked_mlp_batched_forward_is_vmap_bit_for_bit(model):
    """T14's members train through engine.nets._batched_mlp, not vmap, for speed (issue 20, §7).
    Outputs, dropout masks and every gradient must be vmap's exactly, so no run's numbers move."""
    data = blobs()
    cfg = cfg_for(**{"ensemble.members": 3} | model)
    net = Stacked(cfg, data, torch.device("cpu"))
    assert net._fwd.__name__ == "forward", "an MLP ensemble trains on the batched path"
    vm = Stacked(cfg, data, torch.device("cpu"))
    vm._fwd = torch.func.vmap(  # the generic path, on the same members
        lambda p, b, x: torch.func.functional_call(vm.base, (p, b), (x,)),
        randomness="different",
    )
    gen = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(len(data.x_train), generator=gen)[:20] for _ in range(3)])
    xb, yb = data.x_train[idx], data.y_train[idx]
    for one in (net, vm):
        one.train_mode(True)
        torch.manual_seed(7)  # the same dropout draws
        one.forward_loss(xb, yb).backward()
    for p, q in zip(net.params, vm.params, strict=True):
        assert torch.equal(p.grad, q.grad)
    for one in (net, vm):
        one.train_mode(False)
    assert torch.equal(net._fwd(net.stacked, net.buffers, xb), vm._fwd(vm.stacked, vm.buffers, xb))


def test_clip_fraction_and_grad_norm_are_logged_during_training():
    sink = MemorySink()
    cfg = cfg_for(**{"train.clip_norm": 1e-3, "train.log_every": 2})
    train(cfg, blobs(), sink=sink)
    assert all(v == 1.0 for _, v in sink.series("grad/clip_frac")), "a tiny bound clips every step"
    assert all(v > 1e-3 for _, v in sink.series("grad/norm")), "the logged norm is the pre-clip one"
    assert sink.kinds("clip_burst")


# ---------------------------------------------------------------- T10


class _WrongSquare(torch.autograd.Function):
    """x² with a deliberately wrong backward (3x instead of 2x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x


@pytest.mark.parametrize(
    ("kind", "shape", "modality"),
    [
        ("mlp", (6,), "tabular"),
        ("cnn", (1, 8, 8), "image"),
        ("lstm", (5, 2), "sequence"),
        ("gru", (5, 2), "sequence"),
    ],
)
def test_gradcheck_passes_on_every_model(kind, shape, modality):
    cfg = Config().model.model_copy(
        update={"kind": kind, "hidden": [8], "channels": [4], "rnn_hidden": 6}
    )
    model = build_model(cfg, shape, 3, modality, seed=0)
    finding = doctor.gradcheck_model(model, torch.randn(4, *shape))
    assert finding.passed, finding.message


def test_gradcheck_fails_on_a_wrong_custom_autograd_function():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    ok, err = doctor.gradcheck_fn(_WrongSquare.apply, (x,))
    assert not ok and "Jacobian" in err
    ok_right, _ = doctor.gradcheck_fn(lambda t: t * t, (x,))
    assert ok_right


# ---------------------------------------------------------------- T11


def test_forget_gate_bias_sets_only_the_forget_slice():
    torch.manual_seed(0)
    lstm_model = build_model(
        Config().model.model_copy(update={"kind": "lstm", "rnn_hidden": 7}),
        (5, 3),
        1,
        "sequence",
        seed=0,
    )
    lstm = lstm_model.rnn
    before = {n: p.detach().clone() for n, p in lstm.named_parameters()}
    set_forget_bias(lstm_model, 3.0)
    h = 7
    ih, hh = lstm.bias_ih_l0.detach(), lstm.bias_hh_l0.detach()
    assert torch.all(ih[h : 2 * h] + hh[h : 2 * h] == 3.0)
    for gate in (slice(0, h), slice(2 * h, 3 * h), slice(3 * h, 4 * h)):
        assert torch.equal(ih[gate], before["bias_ih_l0"][gate])
        assert torch.equal(hh[gate], before["bias_hh_l0"][gate])
    assert torch.equal(lstm.weight_ih_l0, before["weight_ih_l0"])


def test_forget_bias_from_config_reaches_the_built_lstm():
    cfg = Config().model.model_copy(
        update={"kind": "lstm", "rnn_hidden": 4, "forget_bias": 2.0, "init": "scaled"}
    )
    m = build_model(cfg, (5, 2), 1, "sequence", seed=0)
    assert torch.all(m.rnn.bias_ih_l0[4:8] + m.rnn.bias_hh_l0[4:8] == 2.0)
    assert torch.all(m.rnn.bias_ih_l0[:4] == 0), (
        "init zeroes the other biases; the forget bias is applied after"
    )


# ---------------------------------------------------------------- T12


def test_augmentation_never_touches_validation_data(monkeypatch):
    import importlib

    # The module, where the loop looks the function up on every batch.
    data_mod = importlib.import_module("engine.data.augment")

    data = blobs(n=128, val=64, features=4)
    data.x_train = data.x_train.abs() + 1  # training rows are all > 0 …
    data.x_val = -(data.x_val.abs() + 1)  # … validation rows all < 0, so we can tell them apart
    x_val_before = data.x_val.clone()
    seen = []
    real = data_mod.augment

    def spy(x, *a, **kw):
        seen.append(x.detach().clone())
        return real(x, *a, **kw)

    monkeypatch.setattr(data_mod, "augment", spy)
    cfg = cfg_for(**{"augment.noise_std": 0.5, "train.epochs": 2})
    train(cfg, data, sink=MemorySink())
    assert seen, "augmentation ran"
    assert all(bool((x > 0).all()) for x in seen), "only training rows were augmented"
    assert torch.equal(data.x_val, x_val_before)


# ---------------------------------------------------------------- T13


def test_dropout_is_off_at_evaluation():
    data = blobs()
    cfg = cfg_for(**{"model.dropout": 0.5, "model.hidden": [256]})
    net = Single(cfg, data, torch.device("cpu"))
    a = evaluate(net, data.x_val, data.y_val, "classification", None)
    b = evaluate(net, data.x_val, data.y_val, "classification", None)
    assert a["loss"] == b["loss"]
    net.train_mode(True)
    with torch.no_grad():
        assert not torch.equal(net.model(data.x_val), net.model(data.x_val)), (
            "dropout is active in training"
        )


# ---------------------------------------------------------------- T6


def test_update_ratio_matches_an_independent_computation():
    """Recompute the first SGD step by hand (momentum buffer = gradient on step 1, so
    Δw = −lr·(g + wd·w)) and compare ‖Δw‖/‖w‖ with what the engine logged."""
    data = blobs()
    cfg = cfg_for(**{"train.ratio_every": 1, "train.epochs": 1, "optim.weight_decay": 0.01})
    sink = MemorySink()
    train(cfg, data, sink=sink)
    logged = {k: v for s, k, v in sink.points if s == 1 and k.startswith("ratio/net")}

    model = build_model(cfg.model, data.input_shape, data.n_classes, "tabular", seed=cfg.train.seed)
    gen = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + 1)
    idx = torch.randperm(len(data.x_train), generator=gen)[: cfg.train.batch_size]
    loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
    loss.backward()
    expected = {}
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            delta = -cfg.optim.lr * (p.grad + cfg.optim.weight_decay * p.detach())
            expected[f"ratio/{name}"] = float(delta.norm() / p.detach().norm())
    assert set(logged) == set(expected)
    for k, v in expected.items():
        assert logged[k] == pytest.approx(v, rel=1e-4)
    assert 1e-5 < logged["ratio/net.1.weight"] < 1


def test_doctor_warns_when_the_ratio_stays_out_of_band():
    assert doctor.rule_ratio([1e-5] * 5, 1e-4, 1e-2, 5, lr=0.1).rule == "ratio_low"
    assert doctor.rule_ratio([0.1] * 5, 1e-4, 1e-2, 5, lr=0.1).rule == "ratio_high"
    assert doctor.rule_ratio([1e-5] * 4 + [1e-3], 1e-4, 1e-2, 5, lr=0.1) is None


def test_too_small_lr_gets_a_live_ratio_warning():
    sink = MemorySink()
    cfg = cfg_for(
        **{"optim.lr": 1e-7, "train.ratio_every": 1, "train.epochs": 1, "schedule.enabled": False}
    )
    train(cfg, blobs(), sink=sink)
    assert any(
        e["data"]["rule"] == "ratio_low" and e["data"]["tip"] == "T6" for e in sink.kinds("doctor")
    )


# ---------------------------------------------------------------- T2 (checkpoint) and T5 (divergence)


def test_standardization_travels_with_the_checkpoint(tmp_path):
    import numpy as np

    from engine.api import run_training

    rng = np.random.default_rng(0)
    n = 300
    x1 = rng.normal(100, 20, n)  # big offset: standardization must remove it
    x2 = rng.normal(0, 1, n)
    y = (x1 / 20 + x2 > 5).astype(int)
    csv = tmp_path / "t.csv"
    csv.write_text(
        "a,b,label\n" + "\n".join(f"{a},{b},{c}" for a, b, c in zip(x1, x2, y, strict=True))
    )
    cfg = resolve_config(
        "sutskever", dataset=str(csv), overrides={"train.epochs": 2, "model.hidden": [16]}
    )
    run_training(cfg, sink=MemorySink(), run_dir=tmp_path / "run")
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    pre = saved["preprocessor"]
    assert 90 < float(pre["mean"][0]) < 110
    assert float(pre["mean"][0]) != pytest.approx(float(x1.mean()), abs=1e-6), (
        "fitted on the training split only"
    )
    assert saved["config"]["data"]["dataset"] == str(csv)


def test_too_high_lr_ends_as_diverged_with_an_event():
    sink = MemorySink()
    data = blobs()
    data.x_train = data.x_train * 1000  # unstandardized, huge inputs (what T2 warns about) …
    cfg = cfg_for(**{"optim.lr": 10.0, "train.epochs": 5, "train.log_every": 1})  # … and a huge LR
    result = train(cfg, data, sink=sink)
    assert result.status == "diverged"
    ev = sink.kinds("diverged")
    assert ev and "learning rate" in ev[0]["message"] and ev[0]["data"]["tip"] == "T5"
