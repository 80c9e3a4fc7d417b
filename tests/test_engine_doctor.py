"""The doctor's advice can be acted on blindly: no false T5 alarm on a healthy run, no change
the run already has, T3 with the run's own batch, T6 readings on small data, T10 over every
parameter tensor."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from engine import MemorySink, doctor, resolve_config, run_training
from engine.config import Config, apply_overrides
from engine.models import build_model
from engine.train import train
from tests.engine_helpers import blobs


def _rules(sink: MemorySink) -> list[str]:
    return [e["data"]["rule"] for e in sink.kinds("doctor")]


# ---------------------------------------------------------------- T5: like with like


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return str(path)


def test_a_healthy_small_data_run_gets_no_loss_rising_alarm(wine_csv):
    """Wine on the small-data preset (142 training rows, batch 64): the first logged point is
    one lucky batch (≈ 0.086) while the first epoch's mean is ≈ 1.0. Compared with that one
    batch, later epochs' losses with dropout and noise looked "over 3× the start"."""
    cfg = resolve_config("small-data", dataset=wine_csv, overrides={"train.preflight": False})
    sink = MemorySink()
    run_training(cfg, sink=sink)
    epochs = [v for _, v in sink.series("train/epoch_loss")]
    first_point = sink.series("train/loss")[0][1]
    assert max(epochs[1:]) > 3 * first_point, "the noisy start that used to raise the alarm"
    assert min(epochs) < epochs[0] / 10, "a healthy run: the epoch loss fell"
    assert "loss_rising" not in _rules(sink)


def test_loss_rising_compares_epoch_means_with_the_first_epoch():
    assert doctor.rule_divergence([1.0, 0.5, 0.2], 1.0, lr=0.1) is None
    assert doctor.rule_divergence([1.0, 2.9], 1.0, lr=0.1) is None
    f = doctor.rule_divergence([1.0, 0.5, 3.5], 1.0, lr=0.1)
    assert f is not None and f.rule == "loss_rising" and f.change == {"optim.lr": 0.01}
    assert "first epoch" in f.message


# ---------------------------------------------------------------- never a value already in effect


@pytest.mark.parametrize(
    ("dropout", "noise", "change"),
    [
        (0.0, 0.0, {"model.dropout": 0.3}),
        (0.3, 0.0, {"augment.noise_std": 0.05}),
        (0.3, 0.05, {"model.dropout": 0.5}),  # the small-data preset: the next, bigger step
        (0.4, 0.0, {"augment.noise_std": 0.05}),  # never back down to dropout 0.3
        (0.4, 0.05, {"model.dropout": 0.5}),
        (0.5, 0.05, {}),
        (0.6, 0.2, {}),
    ],
)
def test_overfitting_suggests_the_next_step_of_its_ladder(dropout, noise, change):
    f = doctor.rule_overfitting([4, 3, 2, 1], [1, 2, 3, 4], dropout=dropout, noise_std=noise)
    assert f is not None and f.change == change
    if not change:
        assert "dropout" not in f.suggestion and "noise" not in f.suggestion


def _findings_for(run: dict) -> list[doctor.Finding]:
    """Every rule and check that carries a change, fired against the run's settings."""
    lr, clip = run["optim.lr"], run["train.clip_norm"]
    init, scale = run["model.init"], run["model.init_scale"]
    deep = nn.Sequential(*[nn.Linear(16, 16, bias=False) for _ in range(10)])
    with torch.no_grad():
        for layer in deep:
            layer.weight.mul_(0.05)
    out = [
        doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=lr),
        doctor.rule_ratio([0.5] * 5, 1e-4, 1e-2, 5, lr=lr),
        doctor.rule_exploding([1.0] * 11 + [100.0], 10.0, clip_norm=clip, lr=lr),
        doctor.rule_divergence([1.0, 9.0], 1.0, lr=lr),
        doctor.rule_overfitting(
            [4, 3, 2, 1],
            [1, 2, 3, 4],
            dropout=run["model.dropout"],
            noise_std=run["augment.noise_std"],
        ),
        doctor.check_init_loss(9.0, "classification", 10, init=init, init_scale=scale),
        doctor.check_activation_scale(deep, torch.randn(64, 16), init=init, init_scale=scale),
        doctor.check_standardized(
            torch.randn(100, 3) * 9 + 50, "tabular", standardize=run["data.standardize"]
        ),
        doctor.check_batch_size(run["train.batch_size"], 1000),
    ]
    return [f for f in out if f is not None]


_RUNS = [
    dict(zip(keys, vals, strict=True))
    for keys in [
        (
            "optim.lr",
            "train.clip_norm",
            "model.init",
            "model.init_scale",
            "model.dropout",
            "augment.noise_std",
            "data.standardize",
            "train.batch_size",
        )
    ]
    for vals in itertools.product(
        [0.1, 10.0],
        [None, 5.0],
        ["default", "normal-0.02", "scaled"],
        [0.1, 1.0],
        [0.0, 0.3, 0.5],
        [0.0, 0.05],
        [False, True],
        [64, 100, 512, 8192],
    )
]


@pytest.mark.parametrize("run", _RUNS[::13])
def test_no_change_is_already_in_effect_and_every_change_is_valid(run):
    for f in _findings_for(run):
        if not f.change:
            continue
        assert any(run.get(k) != v for k, v in f.change.items()), (f.rule, f.change, run)
        cfg = apply_overrides(Config(), {k: v for k, v in run.items()} | f.change)
        assert cfg is not None  # a valid config: the "queue with this change" button works
        for k, v in f.change.items():
            if k in ("model.dropout", "augment.noise_std"):
                assert v > run[k], "never a step back"


def test_exploding_with_clipping_already_on_lowers_the_lr():
    f = doctor.rule_exploding([1.0] * 11 + [100.0], 10.0, clip_norm=15.0, lr=0.1)
    assert f.change == {"optim.lr": 0.0333}
    assert "already clipped at 15" in f.suggestion and "clip_norm=5" not in f.suggestion


# A converged small-data run's norms (small-data on breast-cancer, every 10th step): most
# batches are fit, so the median is tiny, and a still-misfit batch gives 3.7, 18× the median.
CONVERGED_NORMS = [0.2, 0.02, 0.55, 0.1, 0.01, 0.9, 0.05, 0.3, 0.02, 0.4, 0.15, 1.7, 0.03]


@pytest.mark.parametrize(
    ("spike", "clip", "fires"),
    [
        (3.7, None, False),  # under the advice's bound of 5: clipping at 5 would change nothing
        (300.0, None, True),  # an explosion
        (12.0, 15.0, False),  # under the run's own bound
        (40.0, 15.0, True),
    ],
)
def test_exploding_needs_a_norm_over_the_clip_bound(spike, clip, fires):
    f = doctor.rule_exploding(CONVERGED_NORMS + [spike], 10.0, clip_norm=clip, lr=0.1)
    assert (f is not None) == fires


# Validation accuracy per epoch, iris-like: 100 % on a few lucky epochs while the LR was high,
# 93 % for the rest of the run; then a fit that really gets worse.
LUCKY = [0.93, 1.0, 0.93, 0.97, 0.93, 1.0, 0.93, 0.93, 0.93, 0.93]
WORSE = [0.97, 0.97, 0.97, 0.97, 0.97, 0.93, 0.9, 0.87]


@pytest.mark.parametrize(("scores", "fires"), [(LUCKY, False), (WORSE, True)])
def test_overfitting_compares_scores_averaged_over_its_window(scores, fires):
    n = len(scores)
    f = doctor.rule_overfitting(
        [1.0 / (i + 1) for i in range(n)],  # training loss falls
        [0.5] * (n - 4) + [0.1, 0.2, 0.3, 0.4],  # validation loss rises 3 epochs in a row
        dropout=0.0,
        noise_std=0.0,
        val_scores=scores,
        min_drop=1.5 / 30,  # 1.5 rows of a 30-row validation split
    )
    assert (f is not None) == fires


@pytest.mark.parametrize(("epochs", "fires"), [(3, False), (5, True), (None, True)])
def test_a_class_never_predicted_needs_a_run_long_enough_to_learn_it(epochs, fires):
    f = doctor.rule_never_predicted(
        [[9, 0, 0], [0, 9, 0], [3, 3, 0]], ["a", "b", "c"], class_weight="auto", epochs=epochs
    )
    assert (f is not None) == fires


def test_ratio_low_at_the_largest_lr_suggests_no_raise():
    f = doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=10.0)
    assert f.change == {} and "raise" not in f.suggestion


def test_plateau_on_a_scheduled_run_is_not_suggested():
    losses = [1.0] * 5
    assert doctor.rule_plateau(losses, factor=0.5, patience=3, threshold=1e-4) is not None
    assert (
        doctor.rule_plateau(losses, factor=0.5, patience=3, threshold=1e-4, schedule_enabled=True)
        is None
    )


# ---------------------------------------------------------------- T3 with the run's batch


@pytest.mark.parametrize(
    ("batch", "rows", "passed", "change", "words"),
    [
        (128, 10_000, True, {}, "79 batches per epoch"),
        (64, 142, False, {"train.batch_size": 32}, "over 1/4 of the 142 training rows (3 batches"),
        (100, 10_000, False, {"train.batch_size": 96}, "not a multiple of 8"),
        (8192, 1_000_000, False, {"train.batch_size": 4096}, "very large"),
        (300, 1000, False, {"train.batch_size": 248}, "(4 batches per epoch)"),
        (32, 20, False, {"train.batch_size": 8}, "(1 batch per epoch)"),
        (8, 20, False, {}, "of 8 is over 1/4"),  # nothing smaller that is a multiple of 8
    ],
)
def test_batch_size_check_uses_the_runs_batch_and_rows(batch, rows, passed, change, words):
    f = doctor.check_batch_size(batch, rows)
    assert f.tip == "T3" and f.passed is passed and f.change == change
    assert words in f.message


def test_the_loop_checks_its_own_batch_size_before_training():
    sink = MemorySink()
    cfg = resolve_config(
        "sutskever",
        overrides={"train.epochs": 1, "train.batch_size": 36, "model.hidden": [8]},
    )
    train(cfg, blobs(n=200, val=50), sink=sink)
    (ev,) = [e for e in sink.kinds("preflight") if e["data"]["rule"] == "batch_size"]
    assert ev["data"]["data"].items() >= {"batch_size": 36, "train_rows": 200, "batches": 6}.items()
    assert "not a multiple of 8" in ev["message"] and ev["data"]["change"] == {
        "train.batch_size": 32
    }


# ---------------------------------------------------------------- T6 at every size


@pytest.mark.parametrize(
    ("ratio_every", "steps_per_epoch", "epochs"),
    [(50, 3, 3), (50, 4, 10), (50, 4, 40), (50, 1, 10), (50, 100, 30), (7, 3, 80), (1, 2, 5)],
)
def test_any_run_of_three_epochs_and_ten_steps_gets_ten_ratio_readings(
    ratio_every, steps_per_epoch, epochs
):
    total = steps_per_epoch * epochs
    every = doctor.ratio_interval(ratio_every, total)
    assert 1 <= every <= ratio_every
    assert total // every >= min(10, total)


@pytest.mark.parametrize(("lr", "rule"), [(1e-4, "ratio_low"), (3.0, "ratio_high"), (None, None)])
def test_t6_fires_on_breast_cancer_sized_data(lr, rule):
    """569 rows, batch 128: 4 steps an epoch, 40 in 10 epochs, so 50-step readings gave none."""
    overrides = {"train.epochs": 10, "train.preflight": False}
    if lr is not None:
        overrides["optim.lr"] = lr
    cfg = resolve_config("sutskever", dataset="builtin:breast-cancer", overrides=overrides)
    sink = MemorySink()
    run_training(cfg, sink=sink)
    readings = [v for _, v in sink.series("ratio/median")]
    t6 = [r for r in _rules(sink) if r.startswith("ratio_")]
    if rule is None:
        assert len(readings) == 10 and t6 == [], "silent at the preset's LR (0.1)"
    else:
        assert len(readings) >= 2 and t6 and t6[0] == rule


# ---------------------------------------------------------------- T10 over every parameter


class _WrongWeightGrad(torch.autograd.Function):
    """x @ wᵀ with the weight's gradient 3× too big; the input's gradient is right."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w.T

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, 3 * g.T @ x


class WrongLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / n_in**0.5)

    def forward(self, x):
        return _WrongWeightGrad.apply(x, self.weight)


def test_gradcheck_catches_a_custom_layer_with_a_wrong_weight_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), WrongLinear(8, 3))
    f = doctor.gradcheck_model(model, torch.randn(4, 6))
    assert not f.passed and f.severity == "error"
    assert f.data["failed"] == ["2.weight"], "only the custom weight is wrong"
    assert "WrongLinear, custom layer" in f.message and "your code" in f.suggestion


def test_gradcheck_checks_every_parameter_tensor_in_float64(monkeypatch):
    seen = []
    real = doctor.gradcheck_fn

    def spy(fn, inputs):
        seen.append(inputs[0].dtype)
        return real(fn, inputs)

    monkeypatch.setattr(doctor, "gradcheck_fn", spy)
    cfg = Config().model.model_copy(update={"hidden": [16, 16]})
    model = build_model(cfg, (5,), 3, "tabular", seed=0)
    assert doctor.gradcheck_model(model, torch.randn(4, 5)).passed
    assert len(seen) == len(list(model.parameters())) + 1, "every tensor, and the input"
    assert set(seen) == {torch.float64}


@pytest.mark.parametrize("init", ["default", "normal-0.02", "scaled"])
def test_gradcheck_passes_a_stock_mlp_on_all_zero_rows(init):
    """With zero biases an all-zero row puts every ReLU exactly on its kink; the check moves the
    rows off it rather than fail PyTorch's own layers."""
    cfg = Config().model.model_copy(update={"hidden": [32, 32], "init": init, "dropout": 0.3})
    model = build_model(cfg, (7,), 4, "tabular", seed=0)
    f = doctor.gradcheck_model(model, torch.zeros(8, 7))
    assert f.passed, f.message


def test_a_gradcheck_failure_in_builtin_layers_does_not_blame_the_user():
    """All weights of the first layer at 0: every hidden ReLU sits on its kink for any input,
    where finite differences disagree with the (correct) analytic gradient."""
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    f = doctor.gradcheck_model(model, torch.randn(4, 4))
    assert not f.passed and f.severity == "warning"
    assert "0.weight (Linear, PyTorch built-in)" in f.message
    assert "your code" not in f.message + f.suggestion and "kink" in f.suggestion


def test_gradcheck_passes_on_digits_sized_models():
    # (Its cost is measured, not asserted: no timing assertions in tests.)
    cfg = Config().model.model_copy(update={"kind": "cnn", "channels": [32, 64]})
    model = build_model(cfg, (1, 8, 8), 10, "image", seed=0)
    f = doctor.gradcheck_model(model, torch.randn(16, 1, 8, 8))
    assert f.passed, f.message


# ---------------------------------------------------------------- T5/T7: the range test's LR


def test_the_range_test_note_says_whether_the_lr_held_to_the_best_epoch():
    held = doctor.rule_range_test(0.03, 0.03, first_cut_epoch=0, best_epoch=12, best_lr=0.03)
    assert held is not None and held.message.code == "doctor.range_test_held"
    late = doctor.rule_range_test(0.03, 0.03, first_cut_epoch=12, best_epoch=12, best_lr=0.03)
    assert late is not None and late.message.code == "doctor.range_test_held"
    cut = doctor.rule_range_test(0.03, 0.03, first_cut_epoch=4, best_epoch=9, best_lr=0.0075)
    assert cut is not None and cut.message.code == "doctor.range_test_cut"
    assert cut.message.params == {"lr": 0.03, "held": 4, "best": 9, "best_lr": 0.0075}
    for note in (held, cut):  # a note, never advice
        assert note.severity == "info" and not note.suggestion and not note.change
    assert doctor.rule_range_test(None, 0.03, first_cut_epoch=0, best_epoch=3, best_lr=0.03) is None
    edited = doctor.rule_range_test(0.03, 0.05, first_cut_epoch=0, best_epoch=3, best_lr=0.05)
    assert edited is None, "the LR was changed after the test: nothing to compare"


def test_a_run_with_the_range_tests_lr_ends_with_the_note_and_it_is_never_start_here():
    from jobs.runs.views import findings

    cfg = resolve_config(
        "sutskever",
        overrides={
            "train.preflight": False,
            "train.epochs": 12,
            "model.hidden": [32],
            "optim.lr": 0.05,
            "optim.range_test_lr": 0.05,
            "schedule.plateau_patience": 1,
        },
    )
    sink = MemorySink()
    result = train(cfg, blobs(), sink=sink)
    (note,) = [e for e in sink.kinds("doctor") if e["data"]["rule"] == "range_test_lr"]
    data = note["data"]["data"]
    assert data["best_epoch"] == result.summary["best_epoch"]
    first_cut = next((e["data"]["epoch"] for e in sink.kinds("lr_cut")), 0)
    assert data["first_cut_epoch"] == first_cut
    assert [f["rule"] for f in result.summary["findings"]].count("range_test_lr") == 1
    events = [
        {"id": i, "step": e["step"], "kind": e["kind"], "message": str(e["message"]),
         "data": e["data"]}
        for i, e in enumerate(sink.kinds("doctor"))
    ]  # fmt: skip
    ranked = findings(events)
    assert not [f for f in ranked if f["rule"] == "range_test_lr" and f["start_here"]]
    plain = train(
        cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"range_test_lr": None})}),
        blobs(),
        sink=MemorySink(),
    )
    assert "range_test_lr" not in [f["rule"] for f in plain.summary["findings"]]
