"""The train / validation / test split without scikit-learn (issue 20, §7): the same rows as
scikit-learn's ``train_test_split`` for every seed, so stored runs keep their splits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from engine.data.prepare import _carve, _split


def _carve_with_sklearn(idx, y, n_take, task, seed):
    """The split as it was written with scikit-learn, before issue 20 §7: the reference."""
    if task == "classification":
        counts = np.bincount(y[idx])
        single = counts[y[idx]] == 1
        rest = idx[~single]
        n_cls = int((counts >= 2).sum())
        n_rest = min(n_take, len(rest) - 1)
        if n_cls and n_cls <= n_rest and n_cls <= len(rest) - n_rest:
            kept, taken = train_test_split(
                rest, test_size=n_rest, random_state=seed, stratify=y[rest]
            )
            return np.concatenate([kept, idx[single]]), taken, True
    kept, taken = train_test_split(idx, test_size=n_take, random_state=seed)
    return kept, taken, False


def _labels(rng: np.random.RandomState, n: int, shares: list[float]) -> np.ndarray:
    y = rng.choice(len(shares), size=n, p=np.array(shares) / sum(shares))
    return y.astype(np.int64)


CASES = [
    (178, [59, 71, 48]),  # wine
    (150, [1, 1, 1]),  # iris: ties in every remainder
    (569, [212, 357]),
    (1461, [641, 611, 101, 53, 55]),  # Seattle weather: imbalanced
    (23, [5, 5, 5, 4, 4]),  # a few rows a class
    (12, [6, 6]),
    (40, [30, 9, 1]),  # a class with a single row stays in training
    (300, [1] * 10),
]


@pytest.mark.parametrize(("n", "shares"), CASES)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_numpy_split_takes_the_same_rows_as_scikit_learn(n, shares, task):
    for seed in range(20):
        rng = np.random.RandomState(1000 + seed)
        y = _labels(rng, n, shares)
        idx = np.sort(rng.choice(n + 7, size=n, replace=False))  # not 0..n-1: a second carve
        y_full = np.zeros(n + 7, dtype=np.int64)
        y_full[idx] = y
        for n_take in sorted({1, 2, max(1, n // 5), max(1, n // 3), n // 2}):
            ours = _carve(idx, y_full, n_take, task, seed)
            ref = _carve_with_sklearn(idx, y_full, n_take, task, seed)
            assert ours[2] == ref[2], (seed, n_take)
            np.testing.assert_array_equal(ours[0], ref[0], err_msg=f"kept {seed} {n_take}")
            np.testing.assert_array_equal(ours[1], ref[1], err_msg=f"taken {seed} {n_take}")


def test_the_three_way_split_matches_scikit_learns_on_wine_for_seeds_0_to_9():
    from sklearn.datasets import load_wine

    y = load_wine().target.astype(np.int64)
    for seed in range(10):
        tr, va, te, how = _split(y, "classification", 0.2, 0.2, seed)
        rest, te_ref, _ = _carve_with_sklearn(np.arange(len(y)), y, 36, "classification", seed)
        tr_ref, va_ref, _ = _carve_with_sklearn(np.sort(rest), y, 36, "classification", seed + 1)
        assert how == "stratified"
        for ours, ref in ((tr, tr_ref), (va, va_ref), (te, te_ref)):
            np.testing.assert_array_equal(ours, ref)


def test_preparing_a_table_imports_no_scikit_learn():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from engine.data.base import RawDataset\n"
        "from engine.data.prepare import prepare\n"
        "rng = np.random.default_rng(0)\n"
        "raw = RawDataset(x=rng.normal(size=(60, 3)).astype('float32'),\n"
        "                 y=np.arange(60) % 3, task='classification', modality='tabular',\n"
        "                 feature_names=['a', 'b', 'c'], class_names=['x', 'y', 'z'],\n"
        "                 source='t.csv', target='t')\n"
        "d = prepare(raw)\n"
        "assert d.split == 'stratified', d.split\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
