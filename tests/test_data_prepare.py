"""Split, preprocessing (T2), the dataset report (T1) and the preprocessor in a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from engine.data import (
    DataError,
    Preprocessor,
    RawDataset,
    dataset_report,
    load_dataset,
    log1p_rule,
    prepare,
)


def _raw(x, y, task="classification", modality="tabular", class_names=None) -> RawDataset:
    x = np.asarray(x, dtype=np.float32)
    names = [f"f{i}" for i in range(x.shape[1 if modality == "image" else -1])]
    if task == "classification" and class_names is None:
        class_names = [str(c) for c in range(int(np.max(y)) + 1)]
    y = np.asarray(y, dtype=np.int64 if task == "classification" else np.float32)
    return RawDataset(x, y, modality, task, names, class_names, "test", "y")


def test_stratified_three_way_split_keeps_class_proportions_and_is_seeded():
    y = np.array([0] * 800 + [1] * 150 + [2] * 50)
    raw = _raw(np.arange(1000)[:, None], y)
    a = prepare(raw, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert np.bincount(a.y_test.numpy()).tolist() == [160, 30, 10]
    assert np.bincount(a.y_val.numpy()).tolist() == [160, 30, 10]
    assert np.bincount(a.y_train.numpy()).tolist() == [480, 90, 30]
    assert a.split == "stratified"
    b = prepare(raw, val_fraction=0.2, test_fraction=0.2, seed=3)
    c = prepare(raw, val_fraction=0.2, test_fraction=0.2, seed=4)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.x_val, b.x_val)
    assert not torch.equal(a.x_test, c.x_test)
    assert a.n_classes == 3 and a.input_shape == (1,)


def test_splits_are_disjoint_and_cover_every_row():
    raw = _raw(np.arange(200)[:, None], np.arange(200) % 2)
    p = prepare(raw, seed=0, standardize=False, log1p="off")
    parts = [p.x_train[:, 0].tolist(), p.x_val[:, 0].tolist(), p.x_test[:, 0].tolist()]
    assert [len(x) for x in parts] == [120, 40, 40]
    assert sorted(sum(parts, [])) == list(range(200))


def test_a_split_column_in_the_file_overrides_the_random_split(tmp_path):
    n = 30
    df = pd.DataFrame(
        {
            "a": np.arange(n) * 2.0,  # (0, 1, 2 … would be a row number, ignored as an ID)
            "split": ["train"] * 20 + ["Validation"] * 5 + ["TEST"] * 5,
            "target": np.arange(n) % 2,
        }
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    raw = load_dataset(str(tmp_path / "t.csv"))
    assert raw.feature_names == ["a"]  # the split column is not a feature
    p = prepare(raw, seed=0, standardize=False, log1p="off")
    assert p.split == "column"
    assert p.x_train[:, 0].tolist() == list(range(0, 40, 2))
    assert p.x_val[:, 0].tolist() == list(range(40, 50, 2))
    assert p.x_test[:, 0].tolist() == list(range(50, 60, 2))


@pytest.mark.parametrize(
    "values, message",
    [
        (["train"] * 20 + ["val"] * 10, "no 'test' rows"),
        (["train"] * 20 + ["val"] * 5 + ["holdout"] * 5, "'holdout'"),
    ],
)
def test_a_bad_split_column_is_refused_by_name(tmp_path, values, message):
    df = pd.DataFrame({"a": np.arange(30) * 2.0, "split": values, "target": np.arange(30) % 2})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=message):
        prepare(load_dataset(str(tmp_path / "t.csv")))


@pytest.mark.parametrize("rows", [1, 2, 3, 9])
def test_tiny_datasets_are_refused_with_a_clear_message(rows):
    raw = _raw(np.arange(rows)[:, None], np.arange(rows) % 2, class_names=["a", "b"])
    with pytest.raises(DataError, match=f"only {rows} rows.*at least 10"):
        prepare(raw)


def test_a_class_with_a_single_row_is_refused_naming_it():
    y = np.array([0] * 50 + [1] * 50 + [2])
    with pytest.raises(DataError, match=r"single row \('rare'\).*at least 2 rows"):
        prepare(_raw(np.arange(101)[:, None], y, class_names=["a", "b", "rare"]))


def test_ten_rows_with_two_per_class_train_and_score_a_test_split():
    p = prepare(_raw(np.arange(10)[:, None], np.arange(10) % 2), seed=0)
    assert len(p.x_test) >= 1 and len(p.x_val) >= 1 and len(p.x_train) >= 1


def test_fractions_leaving_no_training_rows_are_a_data_error():
    with pytest.raises(DataError, match="no training rows"):
        prepare(
            _raw(np.arange(10)[:, None], np.arange(10) % 2), val_fraction=0.6, test_fraction=0.4
        )


def test_single_class_is_a_data_error():
    with pytest.raises(DataError, match="single class"):
        prepare(_raw(np.ones((10, 1)), [0] * 10, class_names=["a", "b"]))


def test_standardization_uses_training_statistics_only():
    # Regression rows sorted so the validation rows (known after the split) can be moved far
    # away: the fitted mean must not notice.
    x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    raw = _raw(x, np.arange(200), task="regression")
    base = prepare(raw, seed=1, log1p="off")
    val_idx = np.setdiff1d(np.arange(200), _train_rows(raw, base))
    x[val_idx] += 100.0
    p = prepare(_raw(x, np.arange(200), task="regression"), seed=1, log1p="off")
    train = x[_train_rows(raw, base)]
    torch.testing.assert_close(p.preprocessor.mean, torch.tensor(train.mean(0)))
    assert not torch.allclose(p.preprocessor.mean, torch.tensor(x.mean(0)), atol=1.0)
    torch.testing.assert_close(p.x_train.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    assert p.x_val.mean() > 50  # validation is transformed with the training statistics
    # Regression targets are standardized with the training split too.
    assert p.y_mean == pytest.approx(float(raw.y[_train_rows(raw, base)].mean()))
    assert abs(float(p.y_train.mean())) < 1e-5


def _train_rows(raw: RawDataset, p) -> np.ndarray:
    # Row i has y == i in these tests, so y_train (standardized) maps back to row ids.
    return np.rint(p.y_train.numpy() * p.y_std + p.y_mean).astype(int)


def test_constant_column_stays_zero_and_missing_values_get_the_training_median():
    x = np.column_stack([np.full(100, 7.0), np.arange(100.0)])
    x[5, 1] = np.nan
    p = prepare(_raw(x, np.arange(100) % 2), seed=0)
    assert torch.all(p.x_train[:, 0] == 0) and torch.all(p.x_val[:, 0] == 0)
    assert not torch.isnan(p.x_train).any() and not torch.isnan(p.x_val).any()
    assert p.preprocessor.std[0] == 1.0


def test_missing_values_are_filled_as_the_report_says():
    # The report's words ("the median of that column over the training rows") are what happens.
    rng = np.random.default_rng(0)
    x = np.column_stack([np.arange(100.0), rng.random(100) ** 3, np.full(100, np.nan)])
    x[::7, 1] = np.nan
    raw = _raw(x, np.arange(100) % 2)
    p = prepare(raw, seed=0, standardize=False, log1p="off")
    train_idx = p.x_train[:, 0].numpy().astype(int)  # column 0 is the row number
    col = x[train_idx, 1]
    fill = p.preprocessor.median.numpy()
    assert fill[1] == pytest.approx(np.median(col[~np.isnan(col)]), rel=1e-6)
    assert fill[1] != pytest.approx(np.nanmedian(x[:, 1]), rel=1e-6)  # training rows only
    assert fill[2] == 0.0  # a column with no value at all is filled with 0
    message = " ".join(w["message"] for w in dataset_report(raw).warnings)
    assert "median of that column over the training rows (0 if the column has no value" in message


def test_image_statistics_are_per_channel():
    x = np.random.default_rng(0).random((40, 3, 4, 4)).astype(np.float32)
    x[:, 2] += 10
    p = prepare(_raw(x, np.arange(40) % 2, modality="image"), seed=0)
    assert p.preprocessor.mean.shape == (3,) and p.preprocessor.mean[2] > 10
    assert p.input_shape == (3, 4, 4)
    torch.testing.assert_close(p.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_preprocessor_state_dict_round_trips_through_a_weights_only_checkpoint(tmp_path):
    x = np.column_stack([np.logspace(0, 6, 100), np.random.default_rng(0).normal(size=100)])
    p = prepare(_raw(x, np.arange(100) % 2), seed=0)
    assert p.preprocessor.log1p_mask.tolist() == [True, False]
    torch.save({"preprocessor": p.preprocessor.state_dict()}, tmp_path / "ckpt.pt")
    d = torch.load(tmp_path / "ckpt.pt", weights_only=True)["preprocessor"]
    back = Preprocessor.from_state_dict(d)
    batch = torch.tensor(x[:7], dtype=torch.float32)
    torch.testing.assert_close(back.transform(batch), p.preprocessor.transform(batch))
    assert back.modality == "tabular" and back.log1p_mask.dtype == torch.bool


@pytest.mark.parametrize(
    ("column", "fires"),
    [
        (np.logspace(0, 5, 200), True),  # 1 .. 100,000
        (np.r_[np.zeros(50), np.logspace(1, 4, 150)], True),  # zeros and 10 .. 10,000
        (np.linspace(10, 500, 200), False),  # narrow
        (np.linspace(1e6, 5e6, 200), False),  # large but narrow: standardizing is enough
        (np.r_[-1.0, np.logspace(0, 6, 199)], False),  # a negative value
        (np.array([0.0, 1.0] * 100), False),  # a flag
        (np.r_[np.nan, np.logspace(0, 5, 99)], True),  # missing values are ignored
    ],
)
def test_log1p_rule(column, fires):
    assert log1p_rule(column) is fires


def test_log1p_off_disables_the_rule():
    x = np.logspace(0, 6, 100)[:, None]
    assert not prepare(_raw(x, np.arange(100) % 2), log1p="off").preprocessor.log1p_mask.any()


def test_a_wide_column_is_information_when_squashed_and_a_warning_when_log1p_is_off(tmp_path):
    """T2 said "log(1 + x) will be applied" on a run with data.log1p=off, where nothing squashed
    the column: advice that was wrong. The run's timeline now says what its own setting does:
    information when the preparation squashes the column, a warning (with the setting to
    change) when it is off."""
    from engine import MemorySink, resolve_config, run_training

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"income": rng.lognormal(8, 3, 200), "age": rng.integers(18, 90, 200).astype(float)}
    )
    df["label"] = np.where(df["age"] > 50, "old", "young")
    path = tmp_path / "wide.csv"
    df.to_csv(path, index=False)

    def report_lines(log1p: str) -> list[dict]:
        sink = MemorySink()
        cfg = resolve_config(
            "quick", dataset=str(path), overrides={"train.epochs": 1, "data.log1p": log1p}
        )
        run_training(cfg, sink=sink)
        return [e for e in sink.events if (e.get("data") or {}).get("rule") == "dataset_report"]

    (squashed,) = [e for e in report_lines("auto") if "income" in e["message"]]
    assert squashed["data"]["severity"] == "info" and "will be applied" in squashed["message"]
    (off,) = [e for e in report_lines("off") if "income" in e["message"]]
    assert off["data"]["severity"] == "warning"
    assert "will be applied" not in off["message"] and "data.log1p=auto" in off["message"]


def test_max_rows_subsamples_before_the_split():
    p = prepare(load_dataset("builtin:digits"), max_rows=300, seed=0)
    assert len(p.y_train) + len(p.y_val) + len(p.y_test) == 300 and p.n_classes == 10


def test_report_finds_missing_duplicates_constant_columns_and_imbalance(tmp_path):
    n = 300
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "income": np.r_[rng.lognormal(8, 3, n - 1), 0.0],
            "age": rng.integers(18, 90, n).astype(float),
            "const": 1.0,
            "label": ["common"] * 285 + ["rare"] * 15,
        }
    )
    df.loc[[3, 4, 5], "age"] = np.nan
    df.iloc[10] = df.iloc[11]
    df.iloc[20] = df.iloc[11]
    df.to_csv(tmp_path / "t.csv", index=False)
    report = dataset_report(load_dataset(str(tmp_path / "t.csv")))
    assert report.rows == n and report.columns == 4 and report.target == "label"
    assert report.missing == {"age": 3}
    assert report.duplicates == 2
    assert report.constant_columns == ["const"]
    assert report.log1p_columns == ["income"]
    assert report.class_balance == {"common": 285, "rare": 15}
    messages = " | ".join(w["message"] for w in report.warnings)
    assert "class 'rare' has" in messages
    assert "column age has 3 missing values" in messages
    assert "2 duplicate rows (0.7%)" in messages, (
        "T1: duplicates are warned about, not only counted"
    )
    assert "income spans" in messages and "orders of magnitude" in messages
    assert {w["tip"] for w in report.warnings} >= {"T1", "T2"}
    assert json.loads(json.dumps(report.to_dict()))["duplicates"] == 2


def test_report_flags_identical_inputs_with_different_labels_and_small_data():
    x = np.r_[np.ones((2, 3)), np.random.default_rng(0).normal(size=(38, 3))]
    y = np.r_[0, 1, np.arange(38) % 2]
    report = dataset_report(_raw(x, y))
    assert report.conflicting_labels == 1 and report.duplicates == 0
    messages = " | ".join(w["message"] for w in report.warnings)
    assert "different targets" in messages
    assert "only 40 rows for 2 classes" in messages
    assert any(w["tip"] == "T3" for w in report.warnings)


def test_report_warns_about_duplicate_rows_of_arrays():
    """The path without a table (npz, images): a row repeated with its target is a duplicate."""
    x = np.random.default_rng(0).normal(size=(600, 3))
    x[5], x[7] = x[3], x[3]
    y = np.arange(600) % 2
    y[5] = y[7] = y[3]
    report = dataset_report(_raw(x, y))
    assert report.duplicates == 2
    dup = [w for w in report.warnings if "duplicate rows" in w["message"]]
    assert len(dup) == 1 and dup[0]["tip"] == "T1"
    assert dup[0]["message"].startswith("2 duplicate rows")


def test_report_t3_warning_names_the_batch_it_judges():
    """At upload the report judges the batch the presets will pick on these rows (they follow
    the data, T3), the number New run shows, not a fixed 128 (issue 20, §8: the report said
    "about 275 training rows … at the default batch size 128" while New run said batch 8)."""
    from engine.auto import batch_for

    x = np.random.default_rng(1).normal(size=(300, 3))
    y = np.arange(300) % 2
    assert len(prepare(_raw(x, y)).x_train) == 180  # the same count the split leaves
    assert batch_for(180) == 8
    assert [w for w in dataset_report(_raw(x, y)).warnings if w["tip"] == "T3"] == []
    assert [w for w in dataset_report(_raw(x, y), batch_size=32).warnings if w["tip"] == "T3"] == []
    at_64 = [w["message"] for w in dataset_report(_raw(x, y), batch_size=64).warnings]
    assert (
        "about 180 training rows make fewer than 4 batches at batch size 64: a smaller batch "
        "(e.g. 32) gives more updates per epoch (T3)." in at_64
    )


def test_report_on_digits_is_clean():
    report = dataset_report(load_dataset("builtin:digits"))
    assert report.rows == 1797 and report.modality == "image"
    assert report.duplicates == 0 and report.missing == {} and report.warnings == []
    assert sum(report.class_balance.values()) == 1797
