"""Small real datasets for engine tests (no mocks: real tensors through the real loop)."""

from __future__ import annotations

import torch

from engine.data import Prepared, Preprocessor


def blobs(
    n: int = 400, features: int = 8, classes: int = 3, seed: int = 0, val: int = 100
) -> Prepared:
    """Gaussian blobs, already standardized-ish: a classification task an MLP learns in seconds."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 2
    y = torch.randint(0, classes, (n + val,), generator=g)
    x = centers[y] + torch.randn(n + val, features, generator=g)
    pre = Preprocessor(
        mean=torch.zeros(features),
        std=torch.ones(features),
        log1p_mask=torch.zeros(features, dtype=torch.bool),
        median=torch.zeros(features),
    )
    return Prepared(
        x_train=x[:n],
        y_train=y[:n],
        x_val=x[n:],
        y_val=y[n:],
        preprocessor=pre,
        task="classification",
        modality="tabular",
        n_classes=classes,
        input_shape=(features,),
        feature_names=[f"f{i}" for i in range(features)],
        class_names=[str(i) for i in range(classes)],
        y_mean=None,
        y_std=None,
    )
