"""The tip ids (T1–T15) in a few words each, for docs, the UI and doctor messages.

The full advice is summarised in the project's TIPS.md; these short titles are our own words."""

TIPS = {
    "T1": "enough representative, clean data", "T2": "centre and scale inputs; log1p for wide ranges",
    "T3": "minibatches of ~128", "T4": "mean loss, so the LR doesn't depend on batch size",
    "T5": "LR 0.1 for SGD, shrink it later", "T6": "update/weight ratio ≈ 1e-3",
    "T7": "validation set; cut the LR on plateaus; stop when it's tiny",
    "T8": "initialisation: 0.02·randn, or init_scale/√fan_in", "T9": "clip the gradient norm (RNNs)",
    "T10": "check gradients numerically", "T11": "LSTM forget-gate bias", "T12": "data augmentation",
    "T13": "dropout, off at test time; train longer", "T14": "ensembles of ~10", "T15": "common defaults",
}
