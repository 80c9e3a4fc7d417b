"""A/B over paired seeds, the statistics (engine/abtest.py, issue 23 §2): the CI math checked
against scipy and against hand-worked numbers, both verdict directions for a higher-is-better
and a lower-is-better metric, two identical arms, N = 1, and the seed pairs a paired t-test
needs (checked against G*Power's published sample sizes)."""

import math

import pytest
from scipy import stats

from engine import abtest
from engine.abtest import arm_stats, band, paired_stats, pairs_needed, verdict

# Five seeds' test accuracy, fixed numbers: A is the baseline arm, B the one with a change.
A = [0.912, 0.905, 0.931, 0.898, 0.920]
B = [0.934, 0.921, 0.948, 0.915, 0.941]


def test_arm_ci_is_the_t_interval_scipy_gives_and_the_hand_formula():
    s = arm_stats(A)
    mean = sum(A) / 5
    sd = math.sqrt(sum((x - mean) ** 2 for x in A) / 4)
    lo, hi = stats.t.interval(0.95, 4, loc=mean, scale=stats.sem(A))
    assert (s.n, s.mean, s.sd) == (5, pytest.approx(mean), pytest.approx(sd))
    assert (s.low, s.high) == (pytest.approx(lo), pytest.approx(hi))
    # t(0.975, df=4) = 2.776445 from the tables: the interval is mean ± 2.776445·sd/√5
    half = 2.776445 * sd / math.sqrt(5)
    assert (s.low, s.high) == (pytest.approx(mean - half, abs=1e-6), pytest.approx(mean + half))


def test_paired_difference_matches_scipy_ttest_rel_and_the_sign_test():
    p = paired_stats(A, B)
    ref = stats.ttest_rel(B, A)
    ci = ref.confidence_interval(0.95)
    diffs = [b - a for a, b in zip(A, B, strict=True)]
    assert p.n == 5
    assert p.mean == pytest.approx(sum(diffs) / 5)
    assert (p.low, p.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert p.p_value == pytest.approx(ref.pvalue)
    # by hand: mean diff ± t(0.975, 4) · sd(diffs)/√5
    sd = math.sqrt(sum((d - p.mean) ** 2 for d in diffs) / 4)
    assert p.low == pytest.approx(p.mean - 2.776445 * sd / math.sqrt(5), abs=1e-6)
    # B won all 5 pairs: the exact two-sided sign test's p is 2 · 0.5⁵ = 0.0625
    assert (p.b_wins, p.a_wins, p.ties) == (5, 0, 0)
    assert p.sign_p == pytest.approx(0.0625)


def test_a_pair_with_a_missing_score_is_dropped_whole():
    p = paired_stats([*A, None], [*B, 0.99])
    assert p.n == 5
    assert p.mean == pytest.approx(paired_stats(A, B).mean)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_stats(A, B[:4])


def test_b_better_on_accuracy_speaks_in_points_with_its_ci():
    v = verdict(A, B, metric="acc", higher_is_better=True)
    p = paired_stats(A, B)
    assert v.decision == "b_better"
    assert v.message.code == "ab.better_points"
    assert v.message.params["arm"] == "B"
    assert v.message.params["diff"] == pytest.approx(p.mean * 100)
    assert v.message.params["low"] == pytest.approx(p.low * 100)
    assert str(v.message).startswith("B is better by 1.9 points (95% CI 1.5–2.2)")


def test_a_better_when_the_arms_are_swapped():
    v = verdict(B, A, metric="acc", higher_is_better=True)
    assert v.decision == "a_better"
    assert v.message.params["arm"] == "A"
    # the amount and its CI are the same positive numbers, said of A
    assert str(v.message) == "A is better by 1.9 points (95% CI 1.5–2.2)"


@pytest.mark.parametrize(
    ("a", "b", "decision", "arm"),
    [
        ([1.00, 1.10, 1.20, 1.05], [0.90, 1.00, 1.12, 0.93], "b_better", "B"),  # B's RMSE lower
        ([0.90, 1.00, 1.12, 0.93], [1.00, 1.10, 1.20, 1.05], "a_better", "A"),  # A's RMSE lower
    ],
)
def test_lower_is_better_metrics_judge_the_direction_honestly(a, b, decision, arm):
    v = verdict(a, b, metric="rmse", higher_is_better=False)
    assert v.decision == decision
    assert v.message.code == "ab.better_lower"
    assert v.message.params["arm"] == arm
    assert 0 < v.message.params["low"] <= v.message.params["diff"] <= v.message.params["high"]
    # the same numbers read as accuracy (higher is better) give the other arm
    other = verdict(a, b, metric="acc", higher_is_better=True)
    assert other.decision == ({"b_better": "a_better", "a_better": "b_better"}[decision])


def test_two_identical_arms_show_no_difference():
    v = verdict(A, list(A), metric="acc", higher_is_better=True)
    assert v.decision == "no_difference"
    assert v.message.code == "ab.no_difference_same"
    assert paired_stats(A, A).p_value is None  # scipy's t-test is NaN with zero spread


def test_noisy_equal_arms_show_no_difference_and_how_many_more_pairs():
    b = [0.915, 0.902, 0.929, 0.903, 0.917]  # differences +0.3, −0.3, −0.2, +0.5, −0.3 points
    v = verdict(A, b, metric="acc", higher_is_better=True)
    p = paired_stats(A, b)
    assert p.low < 0 < p.high
    assert v.decision == "no_difference"
    assert v.message.code == "ab.no_difference_points"
    assert v.delta == 0.01 and v.message.params["delta"] == pytest.approx(1.0)
    assert v.more_pairs == max(0, pairs_needed(p.sd, 0.01) - 5)
    assert "more seed pairs would be needed to detect 1 point" in str(v.message)


def test_one_seed_pair_is_too_few_to_judge():
    for a, b in (([0.9], [0.95]), ([], []), ([0.9, None], [None, 0.95])):
        v = verdict(a, b, metric="acc", higher_is_better=True)
        assert v.decision == "too_few"
        assert v.message.code == "ab.too_few"
    s = arm_stats([0.9])
    assert (s.n, s.mean, s.low, s.high) == (1, 0.9, None, None)
    p = paired_stats([0.9], [0.95])
    assert p.n == 1 and p.low is None and p.p_value is None


@pytest.mark.parametrize(("effect", "n"), [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_pairs_needed_matches_g_power_for_a_paired_t_test(effect, n):
    # G*Power 3.1, "means: difference from constant (one sample case)", two tails, α = 0.05,
    # power 0.8: total sample sizes 199, 34, 15, 10 for dz = 0.2, 0.5, 0.8, 1.0
    assert pairs_needed(1.0, effect) == n
    assert pairs_needed(2.0, 2 * effect) == n  # only δ/σ matters


def test_pairs_needed_is_bounded_for_tiny_differences():
    assert pairs_needed(1.0, 1e-6) == abtest.MAX_PAIRS + 1
    with pytest.raises(ValueError):
        pairs_needed(1.0, 0.0)


def test_band_is_the_per_step_t_interval_and_counts_runs():
    runs = [([0, 1, 2], [1.0, 0.8, 0.6]), ([0, 1, 2], [1.2, 0.9, 0.5]), ([0, 1], [1.1, 1.0])]
    rows = band(runs)
    assert [r["n"] for r in rows] == [3, 3, 2]
    lo, hi = stats.t.interval(0.95, 2, loc=1.1, scale=stats.sem([1.0, 1.2, 1.1]))
    assert rows[0]["mean"] == pytest.approx(1.1)
    assert (rows[0]["low"], rows[0]["high"]) == (pytest.approx(lo), pytest.approx(hi))
    one = band([([5], [0.3])])
    assert one == [{"step": 5.0, "mean": 0.3, "low": 0.3, "high": 0.3, "n": 1}]


def test_band_reads_runs_logged_at_different_steps_by_interpolation_without_extrapolating():
    # one run logged at even steps, the other at odd ones (two downsampling buckets)
    rows = band([([0, 2, 4], [1.0, 0.8, 0.6]), ([1, 3], [0.9, 0.7])])
    by_step = {r["step"]: r for r in rows}
    assert by_step[0.0]["n"] == 1  # before the second run's first point: not extrapolated
    assert by_step[2.0]["n"] == 2
    assert by_step[2.0]["mean"] == pytest.approx((0.8 + 0.8) / 2)  # 0.9→0.7 read at step 2
    assert by_step[4.0]["n"] == 1
    assert len(band([(range(1000), [0.5] * 1000)], max_points=50)) == 50


def test_the_same_score_on_every_seed_is_no_spread_and_no_scipy_warning():
    # 72/114 as float32 then float64, five times: float noise must not read as a spread (and
    # scipy's "catastrophic cancellation" warning is an error under this suite's settings)
    b = [float.fromhex("0x1.435e50d79435ep-1")] * 5
    s = arm_stats(b)
    assert s.sd == 0 and s.low == s.high == s.mean
    v = verdict(A, b, metric="acc", higher_is_better=True)
    assert v.decision == "a_better"
