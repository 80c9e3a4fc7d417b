"""Issue 20, item 6: the tabular techniques of the ``auto`` preset.

* Periodic numeric embeddings (PLR-lite, ``model.embedding="periodic"``): a net with them
  learns a function of sharp cut-offs that a plain MLP of the same width does not, in the same
  number of epochs; their frequencies are fixed buffers (the optimizer and the T6 ratio see
  only the shared layer), drawn from the member's seed, so a stacked ensemble's members differ
  and a rebuild from the same seed is the same model (what a resume relies on).
* Square-root class weights (``train.class_weight="sqrt"``) for imbalanced tables.
* The auto card: which settings tables get, with their tip.

bench/quality.py measures what these buy on real tables (docs/engine.md, "Quality").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import MemorySink, resolve_config, run_training
from engine.auto import DataFacts, derive
from engine.config import ModelConfig
from engine.data import RawDataset
from engine.models import PeriodicEmbedding, build_model, weight_matrices
from engine.nets import Stacked, class_weights


def _stripes(n: int = 900, seed: int = 0) -> RawDataset:
    """Two columns; the class is which of many narrow stripes of the first column a row is in
    (the second is noise): sharp cut-offs a tree finds and a smooth net finds slowly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (np.floor(x[:, 0]) % 2).astype(np.int64)
    return RawDataset(
        x=x,
        y=y,
        modality="tabular",
        task="classification",
        feature_names=["a", "b"],
        class_names=["even", "odd"],
        source="stripes",
        target="y",
    )


def _accuracy(embedding: str) -> float:
    cfg = resolve_config(
        "quick",
        dataset="stripes",
        overrides={
            "model.embedding": embedding,
            "model.hidden": [64],
            "train.epochs": 25,
            "train.early_stop_patience": None,
            "train.preflight": False,
            "train.baselines": False,
        },
    )
    return run_training(cfg, sink=MemorySink(), raw=_stripes()).summary["test_metric"]


def test_periodic_embeddings_learn_sharp_cut_offs_a_plain_mlp_misses():
    plain, periodic = _accuracy("off"), _accuracy("periodic")
    assert periodic > 0.93, (plain, periodic)
    assert periodic > plain + 0.1, (plain, periodic)


def test_the_embedding_frequencies_are_fixed_buffers_and_the_t6_ratio_sees_its_layer():
    model = build_model(ModelConfig(hidden=[16], embedding="periodic"), (5,), 3, "tabular", seed=0)
    (emb,) = [m for m in model.modules() if isinstance(m, PeriodicEmbedding)]
    names = [n for n, _ in model.named_parameters()]
    assert not [n for n in names if n.endswith("freq")]
    assert "freq" in dict(emb.named_buffers())
    assert any(p is emb.linear.weight for _, p in weight_matrices(model))
    out = model(torch.randn(4, 5))
    assert out.shape == (4, 3)
    assert emb.out_features == 5 * (1 + emb.linear.out_features)


def test_a_rebuild_from_the_same_seed_has_the_same_frequencies_and_members_differ():
    cfg = ModelConfig(hidden=[16], embedding="periodic")

    def freq(seed: int) -> torch.Tensor:
        model = build_model(cfg, (4,), 2, "tabular", seed=seed)
        return next(b for n, b in model.named_buffers() if n.endswith("freq"))

    assert torch.equal(freq(3), freq(3))
    raw = _stripes(200)
    run = resolve_config(
        "quick",
        dataset="stripes",
        overrides={"model.embedding": "periodic", "ensemble.members": 3, "model.hidden": [8]},
    )
    from engine.api import prepare_for

    net = Stacked(run, prepare_for(run, raw), torch.device("cpu"))
    (name,) = [n for n in net.buffers if n.endswith("freq")]
    stacked = net.buffers[name]
    assert stacked.shape[0] == 3
    assert not torch.equal(stacked[0], stacked[1])
    # saved with the weights (model.pt), and loaded back
    saved = net.state_dict()
    assert torch.equal(saved[name], stacked)
    other = Stacked(
        run.model_copy(update={"train": run.train.model_copy(update={"seed": 7})}),
        prepare_for(run, raw),
        torch.device("cpu"),
    )
    assert not torch.equal(other.buffers[name], stacked)
    other.load_state_dict(saved)
    assert torch.equal(other.buffers[name], stacked)


def test_the_embedding_passes_the_gradient_check():
    from engine import doctor

    model = build_model(ModelConfig(hidden=[8], embedding="periodic"), (3,), 2, "tabular", seed=1)
    finding = doctor.gradcheck_model(model, torch.randn(4, 3), seed=1)
    assert finding.passed, finding.message


def _imbalanced_data(mode: str):
    from engine.api import prepare_for

    y = np.array([0] * 90 + [1] * 10)
    raw = RawDataset(
        x=np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32),
        y=y,
        modality="tabular",
        task="classification",
        feature_names=["a", "b"],
        class_names=["common", "rare"],
        source="imbalanced",
        target="y",
    )
    cfg = resolve_config("quick", dataset="x", overrides={"train.class_weight": mode})
    return class_weights(cfg, prepare_for(cfg, raw), torch.device("cpu"))


def test_sqrt_class_weights_are_the_square_roots_of_the_balanced_ones():
    full, sqrt = _imbalanced_data("auto"), _imbalanced_data("sqrt")
    assert full is not None and sqrt is not None
    assert torch.allclose(sqrt, full.sqrt())
    assert float(sqrt[1] / sqrt[0]) == pytest.approx(math.sqrt(float(full[1] / full[0])))
    assert _imbalanced_data("off") is None


@pytest.mark.parametrize(
    ("modality", "task", "embedded"),
    [
        ("tabular", "classification", True),
        ("tabular", "regression", False),  # measured: it overfit small regression tables
        ("image", "classification", False),
        ("sequence", "classification", False),
    ],
)
def test_the_auto_card_gives_classification_tables_periodic_embeddings_under_t2(
    modality, task, embedded
):
    classes = 3 if task == "classification" else None
    facts = DataFacts(rows=400, task=task, classes=classes, modality=modality, features=8)
    found = [d for d in derive(facts) if d.field == "model.embedding"]
    assert bool(found) == embedded
    if embedded:
        (d,) = found
        assert (d.value, d.tip) == ("periodic", "T2")
        assert "sharp cut-offs" in str(d.why)


def test_the_auto_card_tempers_the_weights_of_imbalanced_classes():
    facts = DataFacts(rows=1400, task="classification", classes=5, smallest_class_ratio=0.04)
    (d,) = [d for d in derive(facts) if d.field == "train.class_weight"]
    assert (d.value, d.tip) == ("sqrt", "T1")
    assert "square root" in str(d.why)


@pytest.mark.parametrize(("task", "dropout"), [("classification", 0.3), ("regression", 0.2)])
def test_small_tables_with_embedded_columns_get_more_dropout(task, dropout):
    classes = 3 if task == "classification" else None
    facts = DataFacts(rows=600, task=task, classes=classes, features=6)
    (d,) = [d for d in derive(facts) if d.field == "model.dropout"]
    assert (d.value, d.tip) == (dropout, "T13")
    assert ("embedded" in str(d.why)) == (dropout == 0.3)
