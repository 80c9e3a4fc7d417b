"""A/B over paired seeds: is arm B better than arm A, and by how much? (issue 23, §2)

Pure statistics, torch-free (the Compare page imports it while drawing): numbers in, numbers
and :class:`~engine.messages.Message` verdicts out. An A/B group runs every seed in both arms;
``train.seed`` drives the train/validation/test split (``engine/data/prepare.py``), the batch
order (``engine/train.py``, seeded from (seed, epoch)) and the initial weights, so seed *s* of
arm A and seed *s* of arm B see the same rows in the same order and differ only in the setting
under test. That is what makes the comparison *paired*: the per-seed difference B − A cancels
the seed's luck (an easy test split lifts both arms), and its spread is what the tests use.

- each arm: mean ± 95% confidence interval, t-based (:func:`arm_stats`);
- the difference: paired t-test (``scipy.stats.ttest_rel``) with its 95% CI, plus an exact
  sign test (``scipy.stats.binomtest`` on the pairs B won vs A won, ties left out), which
  assumes nothing about the shape of the differences and is the honest test for small N
  (:func:`paired_stats`);
- how many seed pairs would show a given difference (:func:`pairs_needed`): the exact power of
  the two-sided paired t-test, from the noncentral t distribution (``scipy.stats.nct``), with
  the standard deviation of the differences observed so far;
- the verdict in words (:func:`verdict`), honest about direction for metrics where lower is
  better (RMSE, loss).

The statistics are scipy's; this module only decides which ones and says what they mean.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from engine.messages import Message

__all__ = [
    "ALPHA",
    "MAX_PAIRS",
    "POWER",
    "ArmStats",
    "PairedStats",
    "Verdict",
    "arm_stats",
    "band",
    "paired_stats",
    "pairs_needed",
    "smallest_difference",
    "verdict",
]

ALPHA = 0.05  # two-sided: 95% confidence intervals
POWER = 0.8  # the usual 80% chance of detecting a true difference of the size asked about
# The power search stops here: past it "more than 10,000 pairs" is the answer people need (and
# an SD of differences that large next to the difference asked about is the finding).
MAX_PAIRS = 10_000


@dataclass(frozen=True)
class ArmStats:
    """One arm's scores over its seeds: mean and its t-based 95% CI (None for fewer than 2)."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedStats:
    """B − A over the seeds both arms finished: the mean difference, its 95% CI and the paired
    t-test's p-value (None where undefined: fewer than 2 pairs, or every difference equal), the
    sign test's exact p-value (None without a non-tied pair) and the pairs each arm won."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None
    p_value: float | None
    sign_p: float | None
    b_wins: int
    a_wins: int
    ties: int


@dataclass(frozen=True)
class Verdict:
    """``decision``: ``b_better``, ``a_better``, ``no_difference`` or ``too_few``; ``message``:
    the sentence; ``more_pairs``: seed pairs still needed to detect ``delta`` (None where the
    verdict is decided or it cannot be estimated)."""

    decision: str
    message: Message
    more_pairs: int | None = None
    delta: float | None = None


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _sd(xs: list[float], mean: float) -> float:
    """The sample standard deviation (n − 1), exactly 0 where the values differ only by float
    noise: scipy warns of "catastrophic cancellation" there (the same accuracy on every seed,
    a 0.6316 that is 72/114 each time), and a spread of 1e-17 is no spread."""
    sd = statistics.stdev(xs)
    return 0.0 if sd <= 1e-12 * max(1.0, abs(mean)) else sd


def arm_stats(values: Sequence[float | None], alpha: float = ALPHA) -> ArmStats:
    """Mean ± t-based CI of one arm's scores (None and NaN left out: a run that never scored)."""
    from scipy import stats

    xs = _finite(values)
    n = len(xs)
    if n == 0:
        return ArmStats(0, None, None, None, None)
    mean = sum(xs) / n
    if n == 1:
        return ArmStats(1, mean, None, None, None)
    sd = _sd(xs, mean)
    if sd == 0:
        return ArmStats(n, mean, 0.0, mean, mean)
    low, high = stats.t.interval(1 - alpha, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return ArmStats(n, mean, sd, float(low), float(high))


def paired_stats(
    a: Sequence[float | None], b: Sequence[float | None], alpha: float = ALPHA
) -> PairedStats:
    """B − A, seed by seed. ``a[i]`` and ``b[i]`` are the same seed's scores; a pair where
    either is missing (a failed or unfinished run) is dropped whole, never half-used."""
    from scipy import stats

    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    pairs = [
        (float(x), float(y))
        for x, y in zip(a, b, strict=True)
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    n = len(pairs)
    diffs = [y - x for x, y in pairs]
    b_wins = sum(d > 0 for d in diffs)
    a_wins = sum(d < 0 for d in diffs)
    ties = n - b_wins - a_wins
    sign_p = (
        float(stats.binomtest(b_wins, b_wins + a_wins, 0.5).pvalue) if b_wins + a_wins else None
    )
    if n == 0:
        return PairedStats(0, None, None, None, None, None, None, 0, 0, 0)
    mean = sum(diffs) / n
    if n == 1:
        return PairedStats(1, mean, None, None, None, None, sign_p, b_wins, a_wins, ties)
    sd = _sd(diffs, mean)
    if sd == 0:
        # Every pair differs by exactly the same amount (two identical arms: by 0): the t-test
        # is undefined (scipy returns NaN); the CI is that one value.
        return PairedStats(n, mean, 0.0, mean, mean, None, sign_p, b_wins, a_wins, ties)
    res = stats.ttest_rel([y for _, y in pairs], [x for x, _ in pairs])
    ci = res.confidence_interval(1 - alpha)
    return PairedStats(
        n, mean, sd, float(ci.low), float(ci.high), float(res.pvalue), sign_p, b_wins, a_wins, ties
    )


def _power(n: int, effect: float, alpha: float) -> float:
    """Power of the two-sided one-sample (paired) t-test with ``n`` pairs at standardised
    effect ``effect`` = δ/σ: P(|T| > t_crit) where T ~ noncentral t(n − 1, effect·√n)."""
    from scipy import stats

    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def pairs_needed(sd: float, delta: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Seed pairs a paired t-test needs to detect a true mean difference ``delta`` with
    probability ``power``, when the differences have standard deviation ``sd``.

    The smallest n whose exact power (noncentral t, :func:`_power`) reaches ``power``; the
    search starts from the normal approximation n ≈ ((z₁₋α/₂ + z_power)·σ/δ)², which is never
    above the answer. Capped at :data:`MAX_PAIRS` + 1 ("more than 10,000")."""
    from scipy import stats

    if not (sd >= 0 and delta > 0):
        raise ValueError(f"pairs_needed needs sd >= 0 and delta > 0, got sd={sd}, delta={delta}")
    if sd == 0:
        return 2  # no spread at all: the smallest sample a t-test takes
    effect = delta / sd
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    approx = (z / effect) ** 2
    if approx > MAX_PAIRS:
        return MAX_PAIRS + 1
    n = max(2, math.floor(approx))
    while _power(n, effect, alpha) < power:
        n += 1
        if n > MAX_PAIRS:
            return MAX_PAIRS + 1
    return n


def smallest_difference(metric: str | None, a_mean: float | None) -> float:
    """The difference worth detecting, for "N more pairs would be needed to detect …": one
    point of accuracy (0.01) for a classifier; 1% of arm A's mean for any other metric (RMSE
    is in the target's own units, so no fixed number fits every table)."""
    if metric == "acc":
        return 0.01
    return max(abs(a_mean or 0.0) * 0.01, 1e-12)


def verdict(
    a: Sequence[float | None],
    b: Sequence[float | None],
    *,
    metric: str | None,
    higher_is_better: bool,
    delta: float | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Verdict:
    """Which arm is better, in words. B is better when the CI of B − A lies wholly on the
    better side of 0 (for a lower-is-better metric, below it); A likewise; otherwise "no
    difference shown", with the seed pairs that would be needed to detect ``delta`` (default
    :func:`smallest_difference`). Accuracy is spoken of in points (percentage points)."""
    p = paired_stats(a, b, alpha)
    if p.n < 2:
        return Verdict("too_few", Message("ab.too_few", pairs=p.n))
    points = metric == "acc"
    scale = 100.0 if points else 1.0
    assert p.mean is not None and p.low is not None and p.high is not None and p.sd is not None
    # "better" as a signed gain of B over A: positive when B is better, whatever the metric
    sign = 1.0 if higher_is_better else -1.0
    gain, g_low, g_high = sign * p.mean, *sorted((sign * p.low, sign * p.high))
    if g_low > 0 or g_high < 0:
        arm, decision = ("B", "b_better") if g_low > 0 else ("A", "a_better")
        lo, hi = (g_low, g_high) if g_low > 0 else (-g_high, -g_low)
        amount = abs(gain)
        if points:
            msg = Message(
                "ab.better_points", arm=arm, diff=amount * scale, low=lo * scale, high=hi * scale
            )
        else:
            code = "ab.better_lower" if not higher_is_better else "ab.better_higher"
            msg = Message(code, arm=arm, metric=_metric_word(metric), diff=amount, low=lo, high=hi)
        return Verdict(decision, msg)
    a_mean = arm_stats(a).mean
    delta = delta if delta is not None else smallest_difference(metric, a_mean)
    if p.sd == 0:
        # identical scores on every seed (two identical arms): nothing to estimate a spread from
        return Verdict("no_difference", Message("ab.no_difference_same", pairs=p.n), None, delta)
    more = max(0, pairs_needed(p.sd, delta, alpha, power) - p.n)
    if more > MAX_PAIRS - p.n:
        code = "ab.no_difference_many_points" if points else "ab.no_difference_many"
        msg = Message(code, pairs=MAX_PAIRS, delta=delta * scale, metric=_metric_word(metric))
    elif points:
        msg = Message("ab.no_difference_points", more=more, delta=delta * scale)
    else:
        msg = Message("ab.no_difference", more=more, delta=delta, metric=_metric_word(metric))
    return Verdict("no_difference", msg, more, delta)


def _metric_word(metric: str | None) -> str:
    # the metric's own short name (RMSE, loss) reads the same in every language
    return {"rmse": "RMSE", "acc": "accuracy"}.get(metric or "", metric or "")


def band(
    series: Sequence[tuple[Sequence[float], Sequence[float]]],
    alpha: float = ALPHA,
    max_points: int = 400,
) -> list[dict[str, float | int]]:
    """Mean and t-based 95% CI per step over several runs' curves (``(steps, values)`` each):
    ``[{"step", "mean", "low", "high", "n"}, ...]`` in step order; ``n`` is the number of runs
    with a value at that step (one that stopped early drops out), and a step only one run
    reaches has its mean and no band (low = high = mean).

    The steps are the union of the runs' steps (at most ``max_points`` of them, evenly picked):
    each run is read there by linear interpolation inside its own first..last step, never
    beyond, so curves downsampled into different buckets still line up. The runs of one A/B arm
    log the same steps (same data, same batch size), and there interpolation changes nothing."""
    import numpy as np
    from scipy import stats

    curves = []
    for steps, values in series:
        st = np.asarray(steps, dtype=float)
        va = np.asarray(values, dtype=float)
        ok = np.isfinite(st) & np.isfinite(va)
        if ok.any():
            order = np.argsort(st[ok], kind="stable")
            curves.append((st[ok][order], va[ok][order]))
    if not curves:
        return []
    grid = np.unique(np.concatenate([st for st, _ in curves]))
    if len(grid) > max_points:
        grid = grid[np.linspace(0, len(grid) - 1, max_points).round().astype(int)]
    table = np.full((len(curves), len(grid)), np.nan)
    for i, (st, va) in enumerate(curves):
        inside = (grid >= st[0]) & (grid <= st[-1])
        table[i, inside] = np.interp(grid[inside], st, va)
    n = np.isfinite(table).sum(axis=0)
    keep = n > 0
    table, grid, n = table[:, keep], grid[keep], n[keep]
    mean = np.nanmean(table, axis=0)
    sd = np.zeros_like(mean)
    many = n > 1
    sd[many] = np.nanstd(table[:, many], axis=0, ddof=1)
    half = np.zeros_like(mean)
    half[many] = stats.t.ppf(1 - alpha / 2, n[many] - 1) * sd[many] / np.sqrt(n[many])
    return [
        {"step": float(g), "mean": float(m), "low": float(m - h), "high": float(m + h), "n": int(k)}
        for g, m, h, k in zip(grid, mean, half, n, strict=True)
    ]
