"""Honest reference scores: scikit-learn's linear model and gradient-boosted trees, fitted on a
run's own training split and scored once on its own test split (issue 20, §5).

A beginner can't tell whether 0.78 is good. "A gradient-boosted tree scores 0.83 on this split"
tells them, and never hides a weaker net. The baselines see exactly what the net sees: the
prepared training rows (one-hot text, the column-type pass, median imputation, log1p and
standardization fitted on the training split), with scikit-learn's default settings. Only
tables get them (images and sequences have no fair default here). scikit-learn is imported
here, when a run ends, never at start-up.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

MAX_FIT_ROWS = 50_000  # larger training splits: the baselines fit on a seeded sample of this many


def fit_baselines(data: Any, *, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{"linear": {...}, "gbm": {...}}``, each with its model's name, ``test_metric`` (the
    run's own metric: accuracy, or RMSE in the target's units), ``test_balanced_accuracy`` for
    classification, ``fit_rows`` and ``seconds``. {} when the data is not a table or has no
    test split."""
    if data.modality != "tabular" or data.x_test is None or len(data.x_test) == 0:
        return {}
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import balanced_accuracy_score
    from threadpoolctl import threadpool_limits

    x = data.x_train.detach().cpu().numpy().astype(np.float64)
    y = data.y_train.detach().cpu().numpy()
    if len(x) > MAX_FIT_ROWS:
        keep = np.random.default_rng(seed).choice(len(x), MAX_FIT_ROWS, replace=False)
        x, y = x[keep], y[keep]
    xt = data.x_test.detach().cpu().numpy().astype(np.float64)
    yt = data.y_test.detach().cpu().numpy()
    classify = data.task == "classification"
    models = (
        {
            "linear": ("logistic regression", LogisticRegression(max_iter=2000)),
            "gbm": ("gradient-boosted trees", HistGradientBoostingClassifier(random_state=seed)),
        }
        if classify
        else {
            "linear": ("ridge regression", Ridge()),
            "gbm": ("gradient-boosted trees", HistGradientBoostingRegressor(random_state=seed)),
        }
    )
    out: dict[str, dict[str, Any]] = {}
    for key, (name, model) in models.items():
        t0 = time.perf_counter()
        if classify and len(np.unique(y)) < 2:
            continue
        # One thread: the run's worker slot owns its cores, and OpenMP's own pool fighting
        # torch's for them made a 569-row fit take seconds instead of a fraction of one.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)  # an unconverged fit still scores
            model.fit(x, y)
        pred = model.predict(xt)
        row: dict[str, Any] = {"model": name, "fit_rows": int(len(x))}
        if classify:
            row["test_metric"] = float(np.mean(pred == yt))
            row["test_balanced_accuracy"] = float(balanced_accuracy_score(yt, pred))
        else:
            scale = float(data.y_std or 1.0)
            row["test_metric"] = float(np.sqrt(np.mean((pred - yt) ** 2)) * scale)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        out[key] = row
    return out
