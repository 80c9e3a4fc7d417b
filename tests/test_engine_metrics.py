"""Issue 20, §3 (first part): metrics that fit the task, on a real run. An imbalanced table
(three classes, 85 / 10 / 5 %) reports balanced accuracy, macro-F1 and per-class precision and
recall on the test split, equal to scikit-learn's on the same predictions; a regression run
reports MAE and R² beside its RMSE. Run detail shows them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support

from engine import MemorySink, resolve_config, run_training
from engine.data import load_dataset
from engine.train import class_scores


def _classes_csv(
    tmp_path, name: str, seed: int, n: int, classes: dict[str, tuple[float, float]], features: int
) -> str:
    """A table whose ``label`` takes each class with its share, the features shifted by the
    class's offset (how far apart it is); written to ``name``.csv, its path returned."""
    rng = np.random.default_rng(seed)
    labels = list(classes)
    y = rng.choice(labels, n, p=[classes[c][0] for c in labels])
    shift = pd.Series(y).map({c: classes[c][1] for c in labels}).to_numpy()
    cols = list("abcdefgh"[:features])
    frame = pd.DataFrame(rng.normal(size=(n, features)) + shift[:, None], columns=cols)
    frame["label"] = y
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _imbalanced(tmp_path):
    """Three classes, 85 / 10 / 5 %, well apart."""
    classes = {"common": (0.85, 0.0), "rare": (0.10, 1.2), "very rare": (0.05, 2.4)}
    return _classes_csv(tmp_path, "imbalanced", 1, 600, classes, 4)


def _weighted_run(source: str, raw, mode: str, epochs: int) -> tuple[dict, MemorySink]:
    """A quick run with ``train.class_weight`` = ``mode``: its summary and sink."""
    cfg = resolve_config(
        "quick",
        dataset=source,
        overrides={"train.epochs": epochs, "train.preflight": False, "train.class_weight": mode},
    )
    sink = MemorySink()
    return run_training(cfg, sink=sink, raw=raw).summary, sink


def test_an_imbalanced_run_reports_balanced_accuracy_macro_f1_and_per_class(tmp_path):
    source = _imbalanced(tmp_path)
    cfg = resolve_config(
        "quick", dataset=source, overrides={"train.epochs": 8, "train.preflight": False}
    )
    result = run_training(cfg, sink=MemorySink(), raw=load_dataset(source))
    s = result.summary
    assert result.status == "finished"
    cm = np.array(s["confusion_matrix"])
    y_true = np.repeat(np.arange(3), cm.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(3), row) for row in cm])
    assert np.isclose(s["test_balanced_accuracy"], balanced_accuracy_score(y_true, y_pred))
    assert np.isclose(
        s["test_macro_f1"], f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    assert [c["class"] for c in s["per_class"]] == s["class_names"]
    assert np.allclose([c["precision"] for c in s["per_class"]], p)
    assert np.allclose([c["recall"] for c in s["per_class"]], r)
    assert [c["support"] for c in s["per_class"]] == support.tolist()


def test_class_scores_count_a_class_never_predicted_as_zero():
    cm = [[50, 0, 0], [6, 0, 0], [3, 0, 0]]  # everything predicted as the majority
    s = class_scores(cm, ["a", "b", "c"])
    assert s["test_balanced_accuracy"] == 1 / 3  # accuracy would say 85%
    assert s["per_class"][1]["recall"] == 0 and s["per_class"][1]["predicted"] == 0


def test_a_regression_run_reports_mae_and_r2():
    cfg = resolve_config(
        "quick", dataset="builtin:diabetes", overrides={"train.epochs": 5, "train.preflight": False}
    )
    s = run_training(cfg, sink=MemorySink()).summary
    assert s["test_mae"] > 0 and s["test_mae"] <= s["test_metric"]  # MAE ≤ RMSE, always
    assert s["test_r2"] is not None and s["test_r2"] < 1


def test_run_detail_shows_balanced_accuracy_and_per_class_recall(tmp_path, monkeypatch):
    from jobs.store import registry
    from jobs.store.db import connect
    from tests.test_app import page

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    db = connect()
    cm = [[50, 0, 0], [6, 0, 0], [3, 0, 0]]
    summary = {
        "metric": "acc",
        "test_metric": 50 / 59,
        "test_rows": 59,
        "confusion_matrix": cm,
        "class_names": ["common", "rare", "very rare"],
        **class_scores(cm, ["common", "rare", "very rare"]),
    }
    rid = registry.create_run(db, spec={}, preset="quick", owner="local")
    registry.claim_run(db, rid, worker="w", device="cpu")
    registry.finish_run(db, rid, summary)
    for locale, words in (("en-US", "Balanced accuracy **33.3%**"), ("zh-TW", "平衡準確率")):
        at = page("run_detail", locale=locale, run_id=rid)
        text = "\n".join(m.value for m in at.markdown)
        assert words in text, text[:3000]
        tables = [df.value for df in at.dataframe]
        assert any("recall" in t.columns and "0.0%" in set(t["recall"]) for t in tables)


def test_imbalanced_classes_weigh_the_loss_and_pick_the_best_epoch_by_balanced_accuracy(
    tmp_path,
):
    """The smallest class under 1/3 of the largest: the loss is class-weighted and the best
    epoch is the one with the best balanced accuracy (its validation series is logged); off,
    neither. The rare classes are found more often with the weights."""
    source = _imbalanced(tmp_path)
    raw = load_dataset(source)
    found = {}
    for mode in ("auto", "off"):
        s, sink = _weighted_run(source, raw, mode, 12)
        balanced = [v for _, v in sink.series("val/balanced_acc")]
        if mode == "auto":
            assert s["class_weighted"] and s["best_by"] == "balanced_acc"
            assert np.isclose(s["best_val_balanced_accuracy"], max(balanced))
        else:
            assert not s["class_weighted"] and s["best_by"] == "val_loss" and not balanced
        found[mode] = s["test_balanced_accuracy"]
    print(found)
    assert found["auto"] >= found["off"]


def test_balanced_classes_get_no_weights():
    cfg = resolve_config("quick", dataset="builtin:breast-cancer", overrides={"train.epochs": 2})
    s = run_training(cfg, sink=MemorySink()).summary
    assert not s["class_weighted"] and s["best_by"] == "val_loss"


def test_the_auto_card_says_it_weighs_imbalanced_classes_in_every_language(tmp_path):
    from app import engine_text, i18n
    from engine.auto import DataFacts, derive
    from jobs.datasets.check import report_dict

    report = report_dict(load_dataset(_imbalanced(tmp_path)))
    facts = DataFacts.from_report(report)
    assert facts.smallest_class_ratio < 1 / 3
    (why,) = [d.why for d in derive(facts) if d.field == "train.class_weight"]
    assert "balanced accuracy" in why
    for lang, word in (("zh_Hans", "平衡准确率"), ("zh_Hant", "平衡準確率")):
        with i18n.language(lang):
            assert word in engine_text.text(why)
    balanced = DataFacts.from_raw(load_dataset("builtin:breast-cancer"))
    assert not [d for d in derive(balanced) if d.field == "train.class_weight"]


def _faint(tmp_path):
    """95 % / 5 %, the rare class only faintly apart: without weights a short run predicts
    the common class for every row."""
    return _classes_csv(tmp_path, "faint", 3, 800, {"ok": (0.95, 0.0), "fault": (0.05, 0.8)}, 3)


def test_a_class_never_predicted_is_found_and_weights_fix_it(tmp_path):
    source = _faint(tmp_path)
    raw = load_dataset(source)
    rules = {}
    for mode in ("off", "auto"):
        _, sink = _weighted_run(source, raw, mode, 6)
        rules[mode] = [e["data"] for e in sink.kinds("doctor")]
    never = [f for f in rules["off"] if f["rule"] == "class_never_predicted"]
    assert never and never[0]["data"]["class"] == "fault", rules["off"]
    assert never[0]["change"] == {"train.class_weight": "auto"}
    assert not [f for f in rules["auto"] if f["rule"] == "class_never_predicted"], rules["auto"]


def test_every_table_run_reports_scikit_learn_baselines_on_its_own_split():
    """Issue 20, §5: the linear model and gradient-boosted trees, fitted on the run's own
    training split and scored on its own test split, in summary.json beside the net's score.
    Real data (scikit-learn's breast-cancer and diabetes tables)."""
    from engine.baselines import fit_baselines
    from engine.config import resolve_config

    for source, metric in (("builtin:breast-cancer", "acc"), ("builtin:diabetes", "rmse")):
        cfg = resolve_config("auto", dataset=source, overrides={"train.epochs": 3})
        s = run_training(cfg, sink=MemorySink()).summary
        assert s["metric"] == metric
        base = s["baselines"]
        assert {b["model"] for b in base.values()} >= {"gradient-boosted trees"}
        assert base["gbm"]["fit_rows"] == s.get("train_rows", base["gbm"]["fit_rows"])
        if metric == "acc":
            assert 0.85 < base["linear"]["test_metric"] <= 1 and base["gbm"]["test_metric"] > 0.85
        else:  # diabetes: RMSE in the target's units (its spread is about 77)
            assert 40 < base["linear"]["test_metric"] < 77
        # the same split: the baseline's own fit on the prepared data gives the same numbers
        from engine.api import prepare_for

        again = fit_baselines(prepare_for(cfg, load_dataset(source)), seed=cfg.train.seed)
        assert again["linear"]["test_metric"] == pytest.approx(base["linear"]["test_metric"])
    off = resolve_config(
        "auto", dataset="builtin:diabetes", overrides={"train.epochs": 1, "train.baselines": False}
    )
    assert "baselines" not in run_training(off, sink=MemorySink()).summary
    image = resolve_config("quick", dataset="builtin:digits", overrides={"train.epochs": 1})
    assert run_training(image, sink=MemorySink()).summary.get("baselines") == {}
