"""Split, impute, log1p and standardize: a :class:`RawDataset` becomes training tensors.

Every statistic (median, log1p choice, mean, std) is fitted on the training split only and kept
in a :class:`Preprocessor` that travels inside the checkpoint (T2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.data.base import MODALITIES, DataError, RawDataset
from engine.data.rules import as_matrix, check_enough_rows, log1p_rule
from engine.messages import Message


@dataclass
class Preprocessor:
    """impute (training median) -> log1p (masked features) -> standardize (training mean/std).

    Statistics are per feature for tables, per channel for images (N, C, H, W) and per feature
    (last dim) for sequences. :meth:`transform` takes a batch on any device.
    """

    mean: torch.Tensor
    std: torch.Tensor
    log1p_mask: torch.Tensor
    median: torch.Tensor
    modality: str = "tabular"

    def _shape(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = t.to(x.device)
        if self.modality == "image":
            return t.view(1, -1, 1, 1)
        return t

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        median = self._shape(self.median, x).to(x.dtype)
        x = torch.where(torch.isnan(x), median, x)
        mask = self._shape(self.log1p_mask, x)
        if bool(self.log1p_mask.any()):
            # A value below 0 in a column that was non-negative in training is clamped to 0.
            x = torch.where(mask, torch.log1p(x.clamp(min=0)), x)
        return (x - self._shape(self.mean, x)) / self._shape(self.std, x)

    def state_dict(self) -> dict:
        return {
            "mean": self.mean.detach().cpu().clone(),
            "std": self.std.detach().cpu().clone(),
            "log1p_mask": self.log1p_mask.detach().cpu().clone(),
            "median": self.median.detach().cpu().clone(),
            "modality": self.modality,
        }

    @classmethod
    def from_state_dict(cls, d: dict) -> Preprocessor:
        return cls(
            mean=d["mean"].to(torch.float32),
            std=d["std"].to(torch.float32),
            log1p_mask=d["log1p_mask"].to(torch.bool),
            median=d["median"].to(torch.float32),
            modality=str(d.get("modality", "tabular")),
        )

    @classmethod
    def fit(cls, x: np.ndarray, modality: str, *, standardize: bool, log1p: str) -> Preprocessor:
        m = as_matrix(x, modality).astype(np.float64)
        median = np.zeros(m.shape[1])
        for j in range(m.shape[1]):
            col = m[:, j]
            finite = col[~np.isnan(col)]
            # A column with no value in the training split is imputed with 0.
            median[j] = np.median(finite) if finite.size else 0.0
        m = np.where(np.isnan(m), median, m)
        # Images: pixel intensities are never log-transformed.
        use = log1p == "auto" and modality != "image"
        mask = np.array([use and log1p_rule(m[:, j]) for j in range(m.shape[1])], dtype=bool)
        m = np.where(mask, np.log1p(np.clip(m, 0, None)), m)
        if standardize:
            mean, std = m.mean(axis=0), m.std(axis=0)
            # A constant (or float-noise-only) column: std 1, so it stays 0 after centring.
            std = np.where(std <= 1e-6 * np.abs(mean), 1.0, std)
            std = np.where(std == 0, 1.0, std)
        else:
            mean, std = np.zeros(m.shape[1]), np.ones(m.shape[1])
        f32 = torch.float32
        return cls(
            mean=torch.tensor(mean, dtype=f32),
            std=torch.tensor(std, dtype=f32),
            log1p_mask=torch.tensor(mask),
            median=torch.tensor(median, dtype=f32),
            modality=modality,
        )


@dataclass
class Prepared:
    """Training and validation tensors, already transformed, plus what produced them.

    Regression targets are standardized with the training mean/std (``y_mean``, ``y_std``): the
    model predicts standardized y; ``y * y_std + y_mean`` gives original units.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    preprocessor: Preprocessor
    task: str
    modality: str
    n_classes: int | None
    input_shape: tuple[int, ...]
    feature_names: list[str]
    class_names: list[str] | None
    y_mean: float | None
    y_std: float | None
    # The held-out test split (issue 10): scored once, at the end, with the best weights; it never
    # steers training. None only for hand-built data in tests.
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    split: str = "random"  # "stratified", "random" or "column" (the file's own split column)
    target: str | None = None  # the column predicted (given or guessed), as summary.json says
    columns: list[dict] | None = None  # a table's column kinds (engine.data.columns)
    # Which rows of the dataset (raw.x, raw.frame) each split holds: "train", "val", "test" →
    # indices (engine.bundle feeds the raw test rows to the bundle's parity check).
    rows: dict[str, np.ndarray] | None = None


SPLIT_NAMES = ("train", "val", "test")


def _carve(
    idx: np.ndarray, y: np.ndarray, n_take: int, task: str, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Take ``n_take`` of ``idx`` out: (kept, taken, stratified). For classification each part
    keeps the class proportions; a class with one example left can't be in both and stays in
    ``kept`` (training)."""
    rng = np.random.RandomState(seed)
    if task == "classification":
        counts = np.bincount(y[idx])
        single = counts[y[idx]] == 1
        rest = idx[~single]
        n_cls = int((counts >= 2).sum())
        n_rest = min(n_take, len(rest) - 1)
        if n_cls and n_cls <= n_rest and n_cls <= len(rest) - n_rest:
            kept, taken = _stratified_split(rest, y[rest], n_rest, rng)
            return np.concatenate([kept, idx[single]]), taken, True
    perm = rng.permutation(len(idx))
    return idx[perm[n_take:]], idx[perm[:n_take]], False


# The split is scikit-learn's train_test_split (ShuffleSplit, and StratifiedShuffleSplit with
# its _approximate_mode), redone in numpy draw for draw: the same rows for every seed, so stored
# runs and the quality tables keep their splits (a test compares the two on many seeds), while a
# run no longer imports scikit-learn to start (0.7 s of scipy.stats through sklearn.utils).
# After scikit-learn 1.9's sklearn/model_selection/_split.py and utils/extmath.py (BSD-3).
def _stratified_split(
    idx: np.ndarray, labels: np.ndarray, n_take: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, taken): ``n_take`` of ``idx`` taken with each label's share kept in both parts.
    Every label has at least 2 rows and there are at most ``n_take`` and ``len - n_take``
    labels (the caller checks)."""
    n_keep = len(idx) - n_take
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    by_label = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    n_k = _approximate_mode(counts, n_keep, rng)
    n_t = _approximate_mode(counts - n_k, n_take, rng)
    kept: list[int] = []
    taken: list[int] = []
    for rows, k, t in zip(by_label, n_k, n_t, strict=True):
        rows = rows[rng.permutation(len(rows))]
        kept.extend(rows[:k])
        taken.extend(rows[k : k + t])
    return idx[rng.permutation(kept)], idx[rng.permutation(taken)]


def _approximate_mode(counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of ``n_draws`` each label gets: its share rounded down, then one more for the
    largest remainders, ties broken at random (scikit-learn's ``_approximate_mode``)."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)


def _split(
    y: np.ndarray, task: str, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Seeded train / validation / test indices, stratified for classification where every
    class can be; the test split is carved first so it does not depend on ``val_fraction``."""
    n = len(y)
    n_test, n_val = math.ceil(test_fraction * n), math.ceil(val_fraction * n)
    if n - n_test - n_val < 1:
        raise DataError(
            Message(
                "data.no_train_rows",
                rows=n,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
            )
        )
    idx = np.arange(n)
    rest, te, strat_te = _carve(idx, y, n_test, task, seed)
    tr, va, strat_va = _carve(np.sort(rest), y, n_val, task, seed + 1)
    return tr, va, te, "stratified" if strat_te and strat_va else "random"


def _split_from_column(split: np.ndarray, where: str) -> tuple[np.ndarray, ...]:
    """The user's own split column (train/val/test): every part must have rows."""
    parts = []
    for name in SPLIT_NAMES:
        rows = np.flatnonzero(split == name)
        if rows.size == 0:
            raise DataError(Message("data.split_missing", where=where, name=name))
        parts.append(rows)
    return tuple(parts)


def prepare(
    raw: RawDataset,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
    log1p: str = "auto",
    max_rows: int | None = None,
) -> Prepared:
    """Split into train / validation / test (stratified for classification, seeded; a
    ``split`` column in the file overrides it), fit the preprocessor on the training split
    only, and return transformed tensors.

    ``log1p``: "auto" applies :func:`log1p_rule` per feature (tables, sequences), "off" never.
    ``max_rows``: use a seeded random subset of this many rows (before splitting).
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(Message("data.bad_fraction", name="val_fraction", value=val_fraction))
    if not 0.0 < test_fraction < 1.0:
        raise DataError(Message("data.bad_fraction", name="test_fraction", value=test_fraction))
    if log1p not in ("auto", "off"):
        raise DataError(Message("data.bad_log1p", value=log1p))
    if raw.modality not in MODALITIES:
        allowed = ", ".join(MODALITIES)
        raise DataError(Message("data.bad_modality", allowed=allowed, value=raw.modality))
    if max_rows is not None and max_rows < 2:
        raise DataError(Message("data.bad_max_rows", value=max_rows))
    x, y, split = raw.x, raw.y, raw.split
    keep = np.arange(len(y))
    if max_rows is not None and len(y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False))
        x, y = x[keep], y[keep]
        split = None if split is None else split[keep]
    where = Path(raw.source).name if raw.source else "the dataset"
    check_enough_rows(y, raw.task, raw.class_names, where)
    n_classes = None
    if raw.task == "classification":
        n_classes = len(raw.class_names) if raw.class_names else int(y.max()) + 1
        if len(np.unique(y)) < 2:
            raise DataError(Message("data.one_class", where=where))
    if split is not None:
        tr, va, te = _split_from_column(split, where)
        how = "column"
    else:
        tr, va, te, how = _split(y, raw.task, val_fraction, test_fraction, seed)
    pre = Preprocessor.fit(x[tr], raw.modality, standardize=standardize, log1p=log1p)

    def xs(rows: np.ndarray) -> torch.Tensor:
        return pre.transform(torch.from_numpy(np.ascontiguousarray(x[rows])))

    y_mean = y_std = None
    if raw.task == "classification":

        def ys(rows: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(y[rows].astype(np.int64))
    else:
        yt = y[tr].astype(np.float64)
        y_mean, y_std = float(yt.mean()), float(yt.std())
        if y_std == 0.0:
            y_std = 1.0

        def ys(rows: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(((y[rows] - y_mean) / y_std).astype(np.float32))

    return Prepared(
        x_train=xs(tr),
        y_train=ys(tr),
        x_val=xs(va),
        y_val=ys(va),
        x_test=xs(te),
        y_test=ys(te),
        split=how,
        rows={"train": keep[tr], "val": keep[va], "test": keep[te]},
        target=raw.target,
        columns=list(raw.columns) or None,
        preprocessor=pre,
        task=raw.task,
        modality=raw.modality,
        n_classes=n_classes,
        input_shape=tuple(x.shape[1:]),
        feature_names=list(raw.feature_names),
        class_names=list(raw.class_names) if raw.class_names else None,
        y_mean=y_mean,
        y_std=y_std,
    )
