"""One validated, JSON-serialisable config tree, and presets (TOML data files) that fill it.

Every field has a default and a short "why". Presets in ``engine/presets/*.toml`` set fields and
say, per field, which tip (T1…T15, see docs/presets.md) it comes from and why in plain words.
A user's overrides merge on top; anything invalid raises :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import argparse
import functools
import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine import auto
from engine.auto import DataFacts
from engine.errors import ConfigError, PresetNotFound
from engine.messages import Message

PRESET_DIR = Path(__file__).parent / "presets"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    dataset: str = Field("builtin:digits", description="File path or builtin:NAME.")
    target: str | None = Field(
        None, description="Target column; default: target/label/y/class, else the last column."
    )
    task: Literal["auto", "classification", "regression"] = "auto"
    val_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=0.9,
        description="T7: held out, never trained on; drives LR cuts, early stopping, best epoch.",
    )
    test_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=0.5,
        description="Held out until the end and scored once with the best weights: an honest "
        "score, since nothing was chosen on it. A `split` column in the file overrides both.",
    )
    standardize: bool = Field(
        True, description="T2: zero mean, unit variance from training statistics."
    )
    log1p: Literal["auto", "off"] = Field(
        "auto", description="T2: log(1+x) for wide-range non-negative columns."
    )
    max_rows: int | None = Field(None, ge=10)
    columns: dict[str, Literal["ignore", "number", "boolean", "category", "date"]] = Field(
        default_factory=dict,
        description='T1: a table\'s column kinds you chose, e.g. {"id": "ignore", "day": '
        '"date"}; every other column\'s kind is guessed (and shown in the dataset report).',
    )


class ModelConfig(_Section):
    kind: Literal["auto", "mlp", "cnn", "lstm", "gru"] = Field(
        "auto", description="auto: tables→mlp, images→cnn, sequences→lstm."
    )
    hidden: list[int] = Field(default_factory=lambda: [256, 256], description="MLP hidden widths.")
    channels: list[int] = Field(
        default_factory=lambda: [32, 64], description="CNN channels per conv block."
    )
    rnn_hidden: int = Field(128, ge=1, le=4096)
    rnn_layers: int = Field(1, ge=1, le=8)
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="T13: off at evaluation time.")
    init: Literal["default", "normal-0.02", "scaled"] = Field(
        "default", description="T8 init scheme."
    )
    init_scale: float = Field(
        1.0, gt=0.0, le=10.0, description="T8: scale for the 'scaled' scheme."
    )
    forget_bias: float = Field(0.0, ge=0.0, le=10.0, description="T11: LSTM forget-gate bias.")
    embedding: Literal["off", "periodic"] = Field(
        "off",
        description="T2 tables: periodic: each input value also enters as sines and cosines of "
        "fixed random frequencies through one small shared layer (PLR-lite numeric embeddings), "
        "so the net can draw sharp thresholds the way trees do.",
    )

    @model_validator(mode="after")
    def _widths_positive(self) -> ModelConfig:
        for name in ("hidden", "channels"):
            widths = getattr(self, name)
            if not widths or any(w < 1 or w > 65536 for w in widths):
                raise ValueError(f"{name} must be a non-empty list of widths between 1 and 65536")
        return self


class OptimConfig(_Section):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0.0, le=10.0, description="T5: 0.1 is a good start for SGD+momentum.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="T15.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="T15.")
    nesterov: bool = False
    loss_reduction: Literal["mean", "sum"] = Field(
        "mean", description="T4: mean keeps the LR batch-size independent."
    )
    range_test_lr: float | None = Field(
        None,
        gt=0.0,
        le=10.0,
        description="T5: the LR the range test suggested, when lr came from it; the doctor "
        "compares it with where the plateau cuts fell.",
    )


class ScheduleConfig(_Section):
    plateau_factor: float = Field(
        0.5, gt=0.0, lt=1.0, description="T7: divide the LR by 2 (0.5) or 5 (0.2)."
    )
    plateau_patience: int = Field(3, ge=0, le=1000)
    plateau_threshold: float = Field(1e-4, ge=0.0, lt=1.0)
    cooldown: int = Field(0, ge=0, le=1000)
    lr_floor: float = Field(1e-4, ge=0.0, description="T7: stop once the LR falls below this.")
    enabled: bool = Field(True, description="Off: a fixed LR; the doctor still marks plateaus.")


class AugmentConfig(_Section):
    shift: int = Field(0, ge=0, le=16, description="T12 images: random shift in pixels.")
    flip: bool = Field(False, description="T12 images: horizontal flip (wrong for digits/text).")
    rotate_deg: float = Field(
        0.0, ge=0.0, le=45.0, description="T12 images: small random rotation."
    )
    noise_std: float = Field(
        0.0,
        ge=0.0,
        le=5.0,
        description="T12 tables/sequences: Gaussian noise on standardized inputs.",
    )


class TrainConfig(_Section):
    epochs: int = Field(30, ge=1, le=10000, description="T15: tens to hundreds.")
    batch_size: int = Field(128, ge=1, le=65536, description="T3: ~128.")
    seed: int = Field(0, ge=0)
    baselines: bool = Field(
        True,
        description="Also fit scikit-learn's linear model and gradient-boosted trees on the "
        "same training split and score them on the same test split (tables only): reference "
        "scores shown beside the net's.",
    )
    clip_norm: float | None = Field(
        None, gt=0.0, description="T9: bound on the gradient norm (5 or 15 for RNNs)."
    )
    early_stop_patience: int | None = Field(
        10, ge=1, description="T7: epochs without improvement before stopping."
    )
    ratio_every: int = Field(
        50, ge=1, description="T6: measure the update/weight ratio every N steps."
    )
    log_every: int = Field(10, ge=1, description="Steps between logged training points.")
    preflight: bool = Field(True, description="T8/T10 checks before training.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: the forward pass autocasts to bfloat16 on a CUDA device (faster on "
        "recent GPUs); runs on the CPU stay in fp32.",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model: a one-time compile cost that pays off on long GPU "
        "runs (single models; an ensemble runs as is).",
    )
    overfit_one_batch: bool = Field(
        False, description="Sanity check: can the model memorise one batch?"
    )
    class_weight: Literal["auto", "sqrt", "off"] = Field(
        "auto",
        description="T1: auto: when the smallest class has under 1/3 of the largest's training "
        "rows, each class's loss is weighted n/(classes × its rows) and the best epoch is the "
        "one with the best balanced accuracy; sqrt: the same with the square root of those "
        "weights (rare classes count more, overall accuracy gives up less); off: plain loss "
        "and the lowest validation loss.",
    )


class EnsembleConfig(_Section):
    members: int = Field(
        1, ge=1, le=64, description="T14: K networks from different seeds, predictions averaged."
    )


class DoctorConfig(_Section):
    ratio_low: float = Field(1e-4, gt=0.0, description="T6: below this the net learns too slowly.")
    ratio_high: float = Field(1e-2, gt=0.0, description="T6: above this learning is unstable.")
    ratio_window: int = Field(
        5, ge=1, description="T6: consecutive measurements outside the band before a warning."
    )
    grad_explode_factor: float = Field(
        10.0, gt=1.0, description="T9: norm above this × its running median is an explosion."
    )


class Config(_Section):
    preset: str | None = None
    # The dataset facts (engine.auto.DataFacts) the preset derived its settings from (auto, or a
    # preset with settings that follow the data).
    auto: dict[str, Any] | None = None
    # True: the queued job is the LR range test (engine/lr_find.py, issue 23) with this run's
    # model, optimizer and batch size, not a training run. Set by jobs.service's LR test, never
    # by a member's overrides (not a section's field, so not in settable_fields).
    lr_find: bool = False
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        try:
            return cls.model_validate(d)
        except ValidationError as e:
            raise ConfigError(_describe(e), _field_errors(e)) from e


def _field_errors(e: ValidationError) -> dict[str, Message]:
    """Pydantic's errors as {dotted field: what is wrong}, several per field joined by '; '."""
    grouped: dict[str, list[Message]] = {}
    for name, msg in _lines(e):
        grouped.setdefault(name, []).append(msg)
    return {
        f: ms[0] if len(ms) == 1 else Message("config.many", problems=ms)
        for f, ms in grouped.items()
    }


def _describe(e: ValidationError) -> Message:
    """Pydantic's errors, one per field: 'optim.lr: Input should be greater than 0 (got -1)'."""
    lines = [Message("config.field", field=f, problem=m) for f, m in _lines(e)]
    return lines[0] if len(lines) == 1 else Message("config.many", problems=lines)


# Pydantic's error types whose message Trainboard translates, with the context value it names;
# any other type keeps pydantic's own English words (code "config.pydantic").
_PYDANTIC_CODES = {
    "greater_than": "config.greater_than",
    "greater_than_equal": "config.greater_equal",
    "less_than": "config.less_than",
    "less_than_equal": "config.less_equal",
}


def _lines(e: ValidationError) -> list[tuple[str, Message]]:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        ctx = {k: v for k, v in (err.get("ctx") or {}).items() if isinstance(v, int | float | str)}
        if err["type"] == "extra_forbidden":
            msg = Message("config.unknown_setting")
        elif err["type"] in _PYDANTIC_CODES:
            msg = Message(_PYDANTIC_CODES[err["type"]], **ctx)
        else:
            msg = Message("config.pydantic", text=err["msg"])
        got = err.get("input")
        if not isinstance(got, dict):
            msg = Message("config.got", problem=msg, value=got)
        lines.append((loc or "config", msg))
    return lines


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class PresetSetting:
    field: str  # dotted path, e.g. "optim.lr"
    value: Any
    tip: str  # "T5"
    why: str  # plain words for a beginner
    # True: on a known dataset the value is the one the auto preset derives for this field
    # (e.g. T3's batch from the training rows); ``value`` is for when no data is known yet.
    follows_data: bool = False


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    summary: str
    suited_for: str
    settings: list[PresetSetting] = field(default_factory=list)

    def overrides(self) -> dict[str, Any]:
        return {s.field: s.value for s in self.settings}

    @property
    def follows_data(self) -> bool:
        """Whether any setting is worked out from the dataset (``auto``, or a setting marked
        ``follows_data``): then the run needs the dataset's facts, and keeps them."""
        return self.name == auto.AUTO or any(s.follows_data for s in self.settings)


def _load_preset_file(path: Path) -> Preset:
    # Cached on (path, mtime): a page render asks for the presets many times; an edited preset
    # file is read again.
    return _load_preset_cached(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_preset_cached(path: Path, _mtime_ns: int) -> Preset:
    with path.open("rb") as f:
        raw = tomllib.load(f)
    try:
        settings = [
            PresetSetting(
                s["field"], s["value"], s["tip"], s["why"], bool(s.get("follows_data", False))
            )
            for s in raw.get("set", [])
        ]
        preset = Preset(raw["name"], raw["title"], raw["summary"], raw["suited_for"], settings)
    except KeyError as e:
        msg = Message("config.preset_file", file=path.name, key=str(e))
        raise ConfigError(msg, {"preset": msg}) from e
    # A preset that does not validate is a bug in the preset, caught here and in tests.
    apply_overrides(Config(), preset.overrides())
    return preset


def list_presets() -> list[Preset]:
    """All presets shipped in engine/presets, the default ("auto") first, then "sutskever"."""
    presets = [_load_preset_file(p) for p in sorted(PRESET_DIR.glob("*.toml"))]
    presets.sort(key=lambda p: (p.name != auto.AUTO, p.name != "sutskever", p.name))
    return presets


def get_preset(name: str) -> Preset:
    path = PRESET_DIR / f"{name}.toml"
    if not name.replace("-", "").replace("_", "").isalnum() or not path.is_file():
        names = ", ".join(p.name for p in list_presets())
        msg = Message("config.no_preset", name=name, names=names)
        raise PresetNotFound(Message("config.field", field="preset", problem=msg), {"preset": msg})
    return _load_preset_file(path)


def add_set_option(p: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` option of every command that takes settings (each
    value is read by :func:`parse_override`)."""
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=0.05' → ('optim.lr', 0.05). Values are JSON where they parse, else strings."""
    if "=" not in text:
        msg = Message("config.override_syntax")
        raise ConfigError(Message("config.override", text=text, problem=msg), {text.strip(): msg})
    key, _, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if raw.lower() in ("none", "null"):
        return key, None
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def apply_overrides(config: Config, overrides: dict[str, Any] | list[str] | None) -> Config:
    """Return a new Config with dotted-path overrides merged on top; ConfigError names the field."""
    if not overrides:
        return config
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    tree = config.to_dict()
    for key, value in overrides.items():
        parts = key.split(".")
        node = tree
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                section = ".".join(parts[: i + 1])
                sections = ", ".join(k for k, v in tree.items() if isinstance(v, dict))
                msg = Message("config.unknown_section", sections=sections)
                raise ConfigError(
                    Message("config.field", field=section, problem=msg), {section: msg}
                )
            node = node[part]
        if parts[-1] not in node:
            allowed = ", ".join(sorted(node))
            msg = Message("config.unknown_setting_allowed", allowed=allowed)
            raise ConfigError(Message("config.field", field=key, problem=msg), {key: msg})
        node[parts[-1]] = value
    return Config.from_dict(tree)


def leaf_fields() -> tuple[str, ...]:
    """Every settable leaf of the config tree as a dotted name (``optim.lr``, ``data.dataset``):
    the names an override may use. A section (``data``) is not a leaf."""
    out: list[str] = []
    for section, value in Config().to_dict().items():
        if isinstance(value, dict):
            out.extend(f"{section}.{k}" for k in value)
        else:
            out.append(section)
    return tuple(out)


# Fields a run takes from elsewhere, never from a person's overrides on a shared server: the data
# it reads (the chosen dataset's stored file, target and task) and the bookkeeping fields the
# preset fills in. Every other leaf is settable (:func:`settable_fields`).
LOCKED_FIELDS = ("preset", "auto", "data.dataset", "data.target", "data.task")


def settable_fields() -> dict[str, str]:
    """Every field a member's overrides may set, with its description: an allowlist of exact
    dotted names (docs/presets.md lists them)."""
    out: dict[str, str] = {}
    for section, field_info in Config.model_fields.items():
        sub = field_info.annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            continue
        for name, info in sub.model_fields.items():
            dotted = f"{section}.{name}"
            if dotted not in LOCKED_FIELDS:
                out[dotted] = info.description or ""
    return out


def preset_for(name: str, facts: DataFacts | None = None) -> Preset:
    """The preset ``name``; for ``auto`` with dataset facts, its settings include the ones
    derived from the data (engine.auto), each with its tip and reason."""
    p = get_preset(name)
    if not p.follows_data or facts is None:
        return p
    derived = [PresetSetting(d.field, d.value, d.tip, d.why) for d in auto.derive(facts)]
    if p.name != auto.AUTO:
        return replace(p, settings=[_follow(s, derived, p) for s in p.settings])
    fields = {d.field for d in derived}
    return replace(p, settings=[s for s in p.settings if s.field not in fields] + derived)


def _follow(s: PresetSetting, derived: list[PresetSetting], p: Preset) -> PresetSetting:
    """A ``follows_data`` setting of preset ``p`` with the value auto derives for it on this
    dataset; as it is when auto derives nothing for the field there (dropout on a big table) or
    derives it for another optimizer (Adam's LR for sequences, not SGD's). The reason stays the
    preset's own, which states the rule: auto's may speak of its own setup (its dropout 0.3
    is "with numeric embeddings", which the other presets don't have)."""
    d = next((d for d in derived if d.field == s.field), None)
    if not s.follows_data or d is None:
        return s
    optim = {x.field: x.value for x in derived}.get("optim.name")
    if s.field == "optim.lr" and optim is not None and optim != p.overrides().get("optim.name"):
        return s
    return replace(s, value=d.value)


def resolve_config(
    preset: str = "sutskever",
    *,
    dataset: str | None = None,
    target: str | None = None,
    overrides: dict[str, Any] | list[str] | None = None,
    facts: DataFacts | None = None,
) -> Config:
    """Preset → dataset/target → user overrides, validated at each layer. ``facts``: the
    dataset's facts, from which the ``auto`` preset derives its data-dependent settings."""
    p = preset_for(preset, facts)
    cfg = apply_overrides(Config(), p.overrides())
    cfg = apply_overrides(cfg, {"preset": p.name})
    if p.follows_data and facts is not None:
        cfg = apply_overrides(cfg, {"auto": facts.to_dict()})
    base: dict[str, Any] = {}
    if dataset is not None:
        base["data.dataset"] = dataset
    if target is not None:
        base["data.target"] = target
    cfg = apply_overrides(cfg, base)
    return apply_overrides(cfg, overrides)


def explain(config: Config) -> list[PresetSetting]:
    """The tip-annotated settings of the config's preset, with the values actually in force."""
    if not config.preset:
        return []
    tree = config.to_dict()
    out = []
    facts = auto.DataFacts.from_dict(config.auto) if config.auto else None
    for s in preset_for(config.preset, facts).settings:
        node: Any = tree
        for part in s.field.split("."):
            node = node[part]
        out.append(PresetSetting(s.field, node, s.tip, s.why))
    return out
