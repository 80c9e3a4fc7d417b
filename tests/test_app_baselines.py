"""Issue 20, §5 on the page: Run detail shows scikit-learn's scores on the run's own split
beside the net's, in English and 中文 (AppTest, a real run on the breast-cancer table)."""

from __future__ import annotations

from jobs.datasets import ingest as datasets
from jobs.store.db import connect
from tests.test_app import FAST, _train, page, texts


def test_run_detail_shows_the_reference_scores_beside_the_nets(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    ds = datasets.register_builtin(db, "builtin:breast-cancer")
    run = _train(db, ds, "auto", FAST, "with baselines")
    shown = texts(page("run_detail", run_id=run))
    assert "Reference scores on the same test split" in shown
    assert "gradient-boosted trees" in shown and "logistic regression" in shown
    assert "this net" in shown
    zh = texts(page("run_detail", locale="zh-CN", run_id=run))
    assert "同一测试集上的参考分数" in zh and "梯度提升树" in zh
    off = _train(db, ds, "auto", {**FAST, "train.baselines": False}, "without")
    assert "Reference scores" not in texts(page("run_detail", run_id=off))
