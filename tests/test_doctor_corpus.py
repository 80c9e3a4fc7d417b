"""Issue 20, §4: the doctor's corpus. Advice a beginner acts on blindly must never be wrong.

* Healthy runs: every preset that is for tables (``auto``, ``sutskever``, ``quick``,
  ``small-data``, ``ensemble``), as a new user gets it, on 8 real public tables that ship inside
  installed packages (scikit-learn's breast-cancer, diabetes, digits, wine and iris;
  vega_datasets' Seattle weather, cars and barley), through the real loader, split and loop:
  not one warning may fire (dataset-report lines describe the data and are not findings).
  ``sequence`` is an LSTM for sequences: it refuses a table (tested), and its healthy case is
  the adding problem it is for.
* Broken runs, one fault at a time: each gets the right root cause first, marked "Start here"
  by the findings panel's read model (``jobs.runs.views.findings``).
* Bite: with ``doctor.rule_ratio`` judging by the LR in effect again (not the run's starting
  LR), 6 healthy runs here get a false T6 ``ratio_low`` once the schedule has cut the LR.

What is capped, to keep the corpus to minutes on a 2-core machine, without changing what kind
of run a preset makes: digits runs on 600 of its 1,797 rows (every preset); ``ensemble`` trains
3 members instead of 10 (the same stacked, vmapped code path and the same shared schedule; a
member is a third of the time); the sequence runs use 800 rows of the adding problem and 3
epochs (4 for the long-LSTM pair, whose comment says why): the preset's 40 would take minutes of
LSTM steps on a CPU. On the tables every other setting is the preset's own, epochs included, so
a finding that only shows late in a run still shows.

Measured when written (auto preset, test split; the net and scikit-learn's best baseline on the
same split): breast-cancer 0.974 / 0.974, wine 1.000 / 1.000, iris 1.000 / 1.000, digits 0.975,
weather 0.645 / 0.744, cars 0.634 / 0.732, diabetes RMSE 57.1 / 58.4, barley RMSE 5.89 / 5.89.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import MemorySink, resolve_config, run_training
from engine.auto import DataFacts
from engine.data import load_dataset
from engine.errors import ConfigError
from jobs.runs import views
from tests.real_tables import export_tables

pytest.importorskip("vega_datasets")


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, tuple[str, str | None]]:
    """name → (source, target): every table as a CSV export of it, the way a user brings it."""
    return export_tables(tmp_path_factory.mktemp("corpus"))


TABLES = ["breast-cancer", "diabetes", "digits", "wine", "iris", "weather", "cars", "barley"]
TABLE_PRESETS = ["auto", "sutskever", "quick", "small-data", "ensemble"]
CAPS = {"digits": {"data.max_rows": 600}}
PRESET_CAPS = {"ensemble": {"ensemble.members": 3}}


def _run(
    source: str, target: str | None, overrides: dict, raw=None, preset: str = "auto"
) -> tuple[dict, list[dict]]:
    loaded = load_dataset(source, target=target)
    cfg = resolve_config(
        preset,
        dataset=source,
        target=target,
        overrides=overrides,
        facts=DataFacts.from_raw(loaded),
    )
    sink = MemorySink()
    result = run_training(cfg, sink=sink, raw=raw if raw is not None else loaded)
    found = views.findings([{**e, "id": i} for i, e in enumerate(sink.events)])
    return result.summary, [f for f in found if f["rule"] != "dataset_report"]


@pytest.mark.parametrize("name", TABLES)
@pytest.mark.parametrize("preset", TABLE_PRESETS)
def test_a_healthy_run_of_a_table_preset_on_a_real_table_raises_no_warning(tables, preset, name):
    source, target = tables[name]
    overrides = {**CAPS.get(name, {}), **PRESET_CAPS.get(preset, {})}
    summary, found = _run(source, target, overrides, preset=preset)
    assert summary["status"] == "finished"
    assert [(f["tip"], f["rule"], f["message"]) for f in found] == []


def test_the_sequence_preset_refuses_a_table():
    with pytest.raises(ConfigError, match="lstm"):
        _run("builtin:breast-cancer", None, {}, preset="sequence")


SEQUENCE = "builtin:adding"  # T=100: long-range, the sequence preset's own problem
SEQUENCE_CAPS = {"data.max_rows": 800, "train.epochs": 3}


def test_a_healthy_sequence_run_on_the_adding_problem_raises_no_warning():
    summary, found = _run(SEQUENCE, None, SEQUENCE_CAPS, preset="sequence")
    assert summary["status"] == "finished"
    assert [(f["tip"], f["rule"], f["message"]) for f in found] == []


def _first(found: list[dict]) -> tuple[str, str]:
    (start,) = [f for f in found if f["start_here"]]
    assert found[0] is start  # the root cause is also first in the list
    return start["tip"], str(start["rule"])


def test_unscaled_inputs_are_found_first(tables):
    _s, found = _run(*tables["breast-cancer"], {"data.standardize": False, "data.log1p": "off"})
    assert _first(found) == ("T2", "inputs_standardized")


def _auto_lr(source: str) -> float:
    facts = DataFacts.from_raw(load_dataset(source))
    return resolve_config("auto", dataset=source, facts=facts).optim.lr


def test_an_lr_100x_too_high_is_found_first():
    source = "builtin:breast-cancer"
    _s, found = _run(source, None, {"optim.lr": _auto_lr(source) * 100})
    assert _first(found)[0] == "T5"  # diverged: the LR


def test_an_lr_10x_too_high_gets_nothing_false():
    """At 10× (0.125 at batch 16 on breast-cancer) the auto preset's run is in fact fine: it
    does not diverge, and it scores 0.974 on the test split, against 0.965 at its own LR
    (measured when written, with auto's numeric embeddings; before them it scored 0.956 and got
    T6 ``ratio_high`` first). So there is no root cause to find, and the doctor says nothing.
    What the test holds it to: the run finishes and scores well, and any finding it ever makes
    is about the LR and lowers it (T5/T6), nothing else and nothing false."""
    source = "builtin:breast-cancer"
    lr = _auto_lr(source) * 10
    summary, found = _run(source, None, {"optim.lr": lr})
    assert summary["status"] == "finished"
    assert summary["test_metric"] >= 0.95
    for f in found:
        assert f["tip"] in ("T5", "T6") and f["change"]["optim.lr"] < lr, f


def test_an_lr_100x_too_low_is_found_first():
    source = "builtin:breast-cancer"
    _s, found = _run(source, None, {"optim.lr": _auto_lr(source) / 100})
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


# Clipping off on a long LSTM. The sequence preset's Adam at 0.003 never reaches its clip on the
# adding problem, so the case takes the advice's SGD with momentum at 0.1 (T5) on 200-step
# sequences, clipped at 5 as the preset does (T9). Both twins are the same until step 9, whose
# norm of 6.9 the clipped run scales back to 5 and the other takes whole; from there the
# unclipped run's norms climb to 11.5 at step 20 (12x their median: T9 first), then 40-80, and
# its training loss triples (T5, T6 follow), while the clipped run's stay under 4: silent.
# Capped at 4 epochs (32 steps) and 800 rows, a few seconds each; the norm is logged every step
# (train.log_every, monitoring only) so T9 has its 10 readings. Run a 5th epoch and the clipped
# twin gets T6 ratio_high at step 36 (0.02 on a loss that has not started falling: at 800 rows
# the adding problem takes far longer to learn), which is T6's to say and not a clipping fault.
LONG_LSTM = "builtin:adding-200"
SGD_CLIPPED = {
    "data.max_rows": 800,
    "train.epochs": 4,
    "optim.name": "sgd",
    "optim.lr": 0.1,
    "train.log_every": 1,
}


def test_a_long_lstm_clipped_at_5_raises_no_warning():
    summary, found = _run(LONG_LSTM, None, SGD_CLIPPED, preset="sequence")
    assert summary["status"] == "finished"
    assert [(f["tip"], f["rule"], f["message"]) for f in found] == []


def test_clipping_off_on_a_long_lstm_is_found_first():
    _s, found = _run(LONG_LSTM, None, {**SGD_CLIPPED, "train.clip_norm": None}, preset="sequence")
    assert _first(found) == ("T9", "exploding_gradient")
    assert found[0]["change"] == {"train.clip_norm": 5.0}
