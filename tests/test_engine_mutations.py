"""Checks that a plausible one-line break of the engine makes fail: SGD momentum, how the
ensemble averages (T14), the dataset report's duplicate rows (T1) and the T6 band."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.config import Config, resolve_config
from engine.nets import evaluate, make_optimizer


def _sgd_cfg(momentum: float) -> Config:
    return resolve_config(
        "sutskever",
        overrides={"optim.lr": 0.1, "optim.momentum": momentum, "optim.weight_decay": 0.0},
    )


@pytest.mark.parametrize(("momentum", "after_two"), [(0.9, 0.71), (0.0, 0.8)])
def test_the_optimizer_applies_the_configured_momentum(momentum, after_two):
    """Heavy ball by hand, gradient 1 each step, LR 0.1: with momentum 0.9 the second step is
    0.1·(0.9·1 + 1) = 0.19, so w goes 1 → 0.9 → 0.71; without momentum 1 → 0.9 → 0.8 (T15)."""
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = make_optimizer(_sgd_cfg(momentum), [w])
    assert opt.param_groups[0]["momentum"] == momentum
    for _ in range(2):
        opt.zero_grad()
        w.sum().backward()
        opt.step()
    assert float(w.detach()) == pytest.approx(after_two, rel=1e-6)


class _FixedNet:
    """What evaluate needs from a net: predictions (K, N, C) we chose."""

    def __init__(self, out: torch.Tensor) -> None:
        self.out = out

    def train_mode(self, on: bool) -> None:
        pass

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.out


# Three members, two rows. Row 0: member 0 is sure of class 1 (logit 20), members 1 and 2 fairly
# sure of class 0. The averaged probabilities pick class 0 (≈ 0.63); averaged logits pick class 1
# (member 0's huge logit wins); member 0 alone picks class 1. Row 1: everyone picks class 1.
_LOGITS = torch.tensor(
    [
        [[0.0, 20.0], [0.0, 1.0]],
        [[3.0, 0.0], [0.0, 2.0]],
        [[3.0, 0.0], [0.0, 3.0]],
    ]
)
_Y = torch.tensor([0, 1])


def test_the_ensemble_score_is_the_averaged_probabilities_not_member_0s():
    res = evaluate(_FixedNet(_LOGITS), torch.zeros(2, 1), _Y, "classification", None)
    assert res["member_metric"] == [0.5, 1.0, 1.0]
    assert res["metric"] == 1.0, "the ensemble is right on both rows; member 0 only on one"


def test_the_ensemble_averages_probabilities_not_logits():
    res = evaluate(_FixedNet(_LOGITS), torch.zeros(2, 1), _Y, "classification", None)
    probs = _LOGITS.softmax(-1).mean(0)
    assert probs[0].argmax() == 0 and _LOGITS.mean(0)[0].argmax() == 1, "the rows tell them apart"
    assert res["loss"] == pytest.approx(float(F.nll_loss(probs.log(), _Y)), rel=1e-6)
    assert res["metric"] == 1.0
    assert res["sched_loss"] == pytest.approx(
        sum(float(F.cross_entropy(_LOGITS[i], _Y)) for i in range(3)) / 3, rel=1e-6
    )


def test_a_regression_ensemble_averages_the_predictions():
    out = torch.tensor([[[1.0], [3.0]], [[3.0], [5.0]]])  # members predict 1,3 and 3,5
    y = torch.tensor([2.0, 4.0])
    res = evaluate(_FixedNet(out), torch.zeros(2, 1), y, "regression", 2.0)
    assert res["loss"] == 0.0 and res["metric"] == 0.0, "the mean prediction is exact"
    assert res["member_metric"] == [pytest.approx(2.0), pytest.approx(2.0)]  # RMSE 1 × y_std 2


def test_the_t6_band_is_1e_4_to_1e_2_around_the_advised_1e_3():
    """T6: about 1e-3 is healthy; the doctor warns outside roughly [1e-4, 1e-2]."""
    d = Config().doctor
    assert (d.ratio_low, d.ratio_high) == (1e-4, 1e-2)
    assert math.sqrt(d.ratio_low * d.ratio_high) == pytest.approx(1e-3)
    for preset in ("sutskever", "small-data", "quick", "sequence", "ensemble"):
        assert resolve_config(preset).doctor == d, f"{preset} keeps the band"
