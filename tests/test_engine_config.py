"""Config tree and presets: validation names the field; presets are data with a tip per setting."""

from __future__ import annotations

import json
import re

import pytest

from engine.auto import DataFacts, train_rows
from engine.config import (
    Config,
    apply_overrides,
    explain,
    get_preset,
    list_presets,
    parse_override,
    resolve_config,
)
from engine.errors import ConfigError, PresetNotFound

REQUIRED = {"sutskever", "sequence", "small-data", "ensemble", "quick"}


def test_the_required_presets_exist_auto_first_then_sutskever():
    names = [p.name for p in list_presets()]
    assert set(names) >= REQUIRED | {"auto"}
    assert names[:2] == ["auto", "sutskever"]


@pytest.mark.parametrize("rows", [10, 50, 142, 237, 569, 1797, 5000, 20000, 10**6])
def test_auto_batch_is_a_multiple_of_8_never_huge_with_about_20_steps(rows):
    facts = DataFacts(rows=rows, task="classification", classes=2, features=30)
    cfg = resolve_config("auto", dataset="x.csv", facts=facts)
    b, n_tr = cfg.train.batch_size, train_rows(facts)
    assert b % 8 == 0 and 8 <= b <= 128
    assert b == 8 or n_tr / b >= 18  # about 20 updates an epoch, unless the batch is at 8
    assert b == 128 or n_tr < 128 * 20
    # T6: a run of its epochs gets at least 10 ratio readings, also if it stops at a tenth
    steps = -(-n_tr // b) * cfg.train.epochs
    assert steps // cfg.train.ratio_every >= 10 * 3
    assert cfg.auto == facts.to_dict()


def test_auto_on_a_small_table_explains_each_derived_choice_with_its_tip():
    # The example: 237 rows leave 141 for training.
    facts = DataFacts(rows=237, task="classification", classes=3, features=13)
    cfg = resolve_config("auto", dataset="wine.csv", facts=facts)
    why = {s.field: s for s in explain(cfg)}
    assert why["train.batch_size"].tip == "T3"
    assert why["train.batch_size"].why.startswith("batch 8: 141 training rows would make only 2")
    assert why["ensemble.members"].value == 5 and why["ensemble.members"].tip == "T14"
    # 0.3: a classification table's columns are embedded (T2), which gives more to memorise
    assert why["model.dropout"].tip == "T13" and cfg.model.dropout == 0.3
    assert why["model.embedding"].tip == "T2" and cfg.model.embedding == "periodic"
    assert why["optim.lr"].value == pytest.approx(0.01)  # 0.1 × 8/128, at least 0.01
    for field in (
        "train.epochs",
        "optim.weight_decay",
        "schedule.plateau_patience",
        "schedule.plateau_factor",
        "train.early_stop_patience",
        "train.ratio_every",
    ):
        assert why[field].why and why[field].tip.startswith("T"), field
    # A user's override wins, and explain shows the value in force.
    cfg2 = resolve_config(
        "auto", dataset="wine.csv", facts=facts, overrides={"train.batch_size": 16}
    )
    assert {s.field: s.value for s in explain(cfg2)}["train.batch_size"] == 16


def test_auto_on_a_large_table_keeps_the_advice_defaults():
    cfg = resolve_config(
        "auto", dataset="big.csv", facts=DataFacts(rows=200_000, task="regression", features=40)
    )
    assert cfg.train.batch_size == 128 and cfg.optim.lr == 0.1
    assert cfg.ensemble.members == 1 and cfg.model.dropout == 0.0
    assert cfg.schedule.plateau_factor in (0.5, 0.2)


def test_auto_without_data_facts_is_the_plain_template():
    cfg = resolve_config("auto")
    assert cfg.preset == "auto" and cfg.auto is None
    assert cfg.optim.name == "sgd" and cfg.data.standardize


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_preset_setting_carries_a_tip_id_and_a_plain_explanation(name):
    preset = get_preset(name)
    assert preset.title and preset.summary and preset.suited_for
    assert preset.settings
    for s in preset.settings:
        assert re.fullmatch(r"T([1-9]|1[0-5])", s.tip), s
        assert len(s.why.split()) >= 5, f"{s.field}: explain it in words"
    cfg = resolve_config(name)
    for s in preset.settings:
        node = cfg.to_dict()
        for part in s.field.split("."):
            node = node[part]
        assert node == s.value


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("sutskever", "optim.lr", 0.1),
        ("sutskever", "optim.momentum", 0.9),
        ("sutskever", "schedule.plateau_factor", 0.5),
        ("sequence", "train.clip_norm", 5.0),
        ("sequence", "model.forget_bias", 2.0),
        ("small-data", "model.dropout", 0.3),
        ("ensemble", "ensemble.members", 10),
        ("quick", "train.overfit_one_batch", True),
    ],
)
def test_presets_apply_the_advice(name, field, value):
    node = resolve_config(name).to_dict()
    for part in field.split("."):
        node = node[part]
    assert node == value


def test_small_data_preset_waits_longer_than_the_default():
    assert (
        resolve_config("small-data").schedule.plateau_patience
        > resolve_config("sutskever").schedule.plateau_patience
    )
    assert resolve_config("small-data").augment.shift > 0


def test_overrides_merge_on_top_of_the_preset_and_the_result_is_json():
    cfg = resolve_config(
        "sequence",
        dataset="builtin:adding",
        overrides=["optim.lr=0.01", "model.hidden=[8, 8]", "train.clip_norm=null"],
    )
    assert cfg.optim.lr == 0.01 and cfg.model.hidden == [8, 8] and cfg.train.clip_norm is None
    assert cfg.model.forget_bias == 2.0, "untouched preset values stay"
    assert cfg.data.dataset == "builtin:adding"
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ({"optim.lr": -1}, ["optim.lr", "greater than 0"]),
        ({"optim.name": "rmsprop"}, ["optim.name", "'sgd', 'adam' or 'adamw'"]),
        ({"optim.lrr": 0.1}, ["optim.lrr", "unknown setting", "lr"]),
        ({"optimizer.lr": 0.1}, ["optimizer", "unknown section", "optim"]),
        ({"model.dropout": 1.5}, ["model.dropout", "less than 1"]),
        ({"train.batch_size": "big"}, ["train.batch_size", "integer"]),
        ({"model.init": "xavier"}, ["model.init", "'default', 'normal-0.02' or 'scaled'"]),
        ({"model.hidden": []}, ["hidden", "non-empty"]),
    ],
)
def test_invalid_values_are_rejected_naming_the_field_and_what_is_allowed(override, names):
    with pytest.raises(ConfigError) as e:
        resolve_config("sutskever", overrides=override)
    for n in names:
        assert n in str(e.value)


def test_an_override_without_equals_sign_is_explained():
    with pytest.raises(ConfigError, match="field=value"):
        parse_override("optim.lr 0.1")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(PresetNotFound, match="sutskever"):
        get_preset("../etc/passwd")


def test_explain_shows_values_in_force_with_their_tips():
    cfg = apply_overrides(resolve_config("sutskever"), {"optim.lr": 0.05})
    rows = {s.field: s for s in explain(cfg)}
    assert rows["optim.lr"].value == 0.05 and rows["optim.lr"].tip == "T5"


def test_docs_presets_page_is_generated_from_the_current_presets():
    from pathlib import Path

    from engine.presets_doc import presets_markdown

    page = Path(__file__).resolve().parents[1] / "docs" / "presets.md"
    assert page.read_text() == presets_markdown(), (
        "run: python -m engine.presets_doc > docs/presets.md"
    )


# --- presets whose settings follow the data (issue 20, §4: T3 on small tables) -------------

WINE = DataFacts(rows=178, task="classification", classes=3, features=13)
BIG = DataFacts(rows=50_000, task="classification", classes=3, features=13)


@pytest.mark.parametrize("preset", ["sutskever", "quick", "small-data", "ensemble"])
def test_a_table_presets_batch_and_lr_follow_the_data_as_auto_derives_them(preset):
    """106 training rows at a fixed 128 would be one batch an epoch (T3's check says so); the
    batch and its LR follow the data as in auto, and the facts travel with the config."""
    cfg = resolve_config(preset, facts=WINE)
    auto = resolve_config("auto", facts=WINE)
    assert (cfg.train.batch_size, cfg.optim.lr) == (auto.train.batch_size, auto.optim.lr)
    assert cfg.train.batch_size * 4 <= train_rows(WINE)
    assert cfg.auto == WINE.to_dict()
    shown = {s.field: s.value for s in explain(cfg)}  # the values in force, with the rule
    assert shown["train.batch_size"] == cfg.train.batch_size
    big = resolve_config(preset, facts=BIG)
    assert (big.train.batch_size, big.optim.lr) == (128, 0.1)
    plain = resolve_config(preset)  # no data known: the file's own values
    assert plain.auto is None and plain.optim.lr == 0.1


def test_dropout_follows_the_data_only_where_auto_derives_one():
    derived = resolve_config("auto", facts=WINE).model.dropout
    assert derived > 0 and resolve_config("sutskever", facts=WINE).model.dropout == derived
    assert resolve_config("sutskever", facts=BIG).model.dropout == 0.0
    assert resolve_config("small-data", facts=WINE).model.dropout == 0.3  # its own, fixed


def test_a_derived_lr_for_another_optimizer_is_not_followed():
    """On sequences auto derives Adam's LR (0.003); SGD presets keep their own 0.1."""
    seq = DataFacts(rows=4000, task="regression", modality="sequence", features=200)
    cfg = resolve_config("sutskever", facts=seq)
    assert (cfg.optim.name, cfg.optim.lr) == ("sgd", 0.1)


def test_the_queue_path_gives_a_table_preset_the_batch_of_its_dataset():
    from jobs.runs import submit

    info = {"rows": 178, "task": "classification", "class_balance": {"0": 59, "1": 71, "2": 48}}
    req = submit.validate("sutskever", "builtin:wine", info=info)
    assert req.spec["train"]["batch_size"] == 8 and req.spec["auto"]["rows"] == 178
    assert submit.validate("sequence", "builtin:adding", info=info).spec["auto"] is None
