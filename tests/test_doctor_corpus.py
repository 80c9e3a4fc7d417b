"""Issue 20, §4: the doctor's corpus. Advice a beginner acts on blindly must never be wrong.

* Healthy runs: the ``auto`` preset, as a new user gets it, on 8 real public tables that ship
  inside installed packages (scikit-learn's breast-cancer, diabetes, digits, wine and iris;
  vega_datasets' Seattle weather, cars and barley), through the real loader, split and loop:
  not one warning may fire (dataset-report lines describe the data and are not findings).
* Broken runs, one fault at a time, on a real table: each gets the right root cause first,
  marked "Start here" by the findings panel's read model (``jobs.views.findings``).

Measured when written (auto preset, test split; the net and scikit-learn's best baseline on the
same split): breast-cancer 0.974 / 0.974, wine 1.000 / 1.000, iris 1.000 / 1.000, digits 0.975,
weather 0.645 / 0.744, cars 0.634 / 0.732, diabetes RMSE 57.1 / 58.4, barley RMSE 5.89 / 5.89.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine import MemorySink, resolve_config, run_training
from engine.auto import DataFacts
from engine.data import load_dataset
from jobs import views

local_data = pytest.importorskip("vega_datasets").local_data


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, tuple[str, str | None]]:
    """name → (source, target): every table as a CSV export of it, the way a user brings it."""
    from sklearn.datasets import load_iris, load_wine

    d = tmp_path_factory.mktemp("corpus")
    weather = local_data.seattle_weather()
    weather["date"] = weather["date"].dt.strftime("%Y-%m-%d")
    weather.to_csv(d / "weather.csv", index=False)
    pd.read_json(local_data.cars.filepath, dtype=False).to_csv(d / "cars.csv", index=False)
    local_data.barley().to_csv(d / "barley.csv", index=False)
    load_wine(as_frame=True).frame.to_csv(d / "wine.csv", index=False)
    load_iris(as_frame=True).frame.to_csv(d / "iris.csv", index=False)
    return {
        "breast-cancer": ("builtin:breast-cancer", None),
        "diabetes": ("builtin:diabetes", None),
        "digits": ("builtin:digits", None),
        "wine": (str(d / "wine.csv"), None),
        "iris": (str(d / "iris.csv"), None),
        "weather": (str(d / "weather.csv"), None),
        "cars": (str(d / "cars.csv"), "Origin"),
        "barley": (str(d / "barley.csv"), "yield"),
    }


def _run(source: str, target: str | None, overrides: dict, raw=None) -> tuple[dict, list[dict]]:
    loaded = load_dataset(source, target=target)
    cfg = resolve_config(
        "auto",
        dataset=source,
        target=target,
        overrides=overrides,
        facts=DataFacts.from_raw(loaded),
    )
    sink = MemorySink()
    result = run_training(cfg, sink=sink, raw=raw if raw is not None else loaded)
    found = views.findings([{**e, "id": i} for i, e in enumerate(sink.events)])
    return result.summary, [f for f in found if f["rule"] != "dataset_report"]


@pytest.mark.parametrize(
    "name", ["breast-cancer", "diabetes", "digits", "wine", "iris", "weather", "cars", "barley"]
)
def test_a_healthy_auto_run_on_a_real_table_raises_no_warning(tables, name):
    source, target = tables[name]
    overrides = {"data.max_rows": 600} if name == "digits" else {}
    summary, found = _run(source, target, overrides)
    assert summary["status"] == "finished"
    assert [(f["tip"], f["rule"], f["message"]) for f in found] == []


def _first(found: list[dict]) -> tuple[str, str]:
    (start,) = [f for f in found if f["start_here"]]
    assert found[0] is start  # the root cause is also first in the list
    return start["tip"], str(start["rule"])


def test_unscaled_inputs_are_found_first(tables):
    _s, found = _run(*tables["breast-cancer"], {"data.standardize": False, "data.log1p": "off"})
    assert _first(found) == ("T2", "inputs_standardized")


def test_an_lr_100x_too_high_is_found_first():
    source = "builtin:breast-cancer"
    lr = resolve_config("auto", dataset=source, facts=DataFacts.from_raw(load_dataset(source)))
    _s, found = _run(source, None, {"optim.lr": lr.optim.lr * 100})
    assert _first(found)[0] == "T5"  # diverged: the LR


def test_an_lr_100x_too_low_is_found_first():
    source = "builtin:breast-cancer"
    lr = resolve_config("auto", dataset=source, facts=DataFacts.from_raw(load_dataset(source)))
    _s, found = _run(source, None, {"optim.lr": lr.optim.lr / 100})
    assert _first(found) == ("T6", "ratio_low")


def test_an_init_10x_too_large_is_found_first():
    _s, found = _run(
        "builtin:breast-cancer", None, {"model.init": "scaled", "model.init_scale": 10.0}
    )
    assert _first(found) == ("T8", "init_loss")


def test_shuffled_labels_are_found_first():
    source = "builtin:breast-cancer"
    raw = load_dataset(source)
    raw.y = np.random.default_rng(0).permutation(raw.y)
    _s, found = _run(source, None, {}, raw=raw)
    assert _first(found) == ("T1", "learned_nothing")
