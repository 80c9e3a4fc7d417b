"""The dashboard in English and 中文: a complete catalogue, translations that keep their
placeholders, doctor templates that reproduce the engine's own messages, the language switch
(browser default, remembered per user), and every page rendered in Chinese without English
text where a translation exists. Real SQLite, real runs trained by the real engine."""

from __future__ import annotations

import io
import json
import math
import os
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

from app import charts, engine_text, i18n
from engine import decide
from engine.messages import CATALOGUE, Message, as_json
from jobs import service
from jobs.datasets import ingest as datasets
from jobs.people import auth
from jobs.runs.format import format_duration
from jobs.store import registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter
from tests.test_app import FAST, _train, assert_clean, charts_of, page, texts, visible

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "app" / "main.py")
PO = ROOT / "app" / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po"
PO_HANT = ROOT / "app" / "locale" / "zh_Hant" / "LC_MESSAGES" / "messages.po"
MAPPING = ROOT / "app" / "locale" / "babel.cfg"
ZH = "zh_Hans"
HANT = "zh_Hant"
CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_RUN = re.compile(r"[A-Za-z]{2,} [A-Za-z]{2,} [A-Za-z]{2,}")  # three English words in a row
UPDATE = (
    "update the catalogue (docs/dashboard.md, 'Languages'):\n"
    "  .venv/bin/pybabel extract -F app/locale/babel.cfg -o app/locale/messages.pot --no-wrap .\n"
    "  .venv/bin/pybabel update -i app/locale/messages.pot -d app/locale -l zh_Hans --no-wrap\n"
    "then write each msgstr in app/locale/zh_Hans/LC_MESSAGES/messages.po, and\n"
    "  .venv/bin/python -m app.babel_hant   # the 繁體 catalogue from it"
)


def _key(msgid: str | tuple) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def extracted() -> dict[str, tuple]:
    """Every msgid of the UI, as `pybabel extract` with app/locale/babel.cfg finds them: the
    pages' _()/N_()/ngettext() strings and the engine's preset, tip and sample texts."""
    with MAPPING.open() as f:
        method_map, options_map = parse_mapping_cfg(f, str(MAPPING))
    out: dict[str, tuple] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        msgid = message if isinstance(message, str) else tuple(message)
        out.setdefault(_key(msgid), (msgid, f"{filename}:{lineno}"))
    return out


def catalogue() -> dict[str, object]:
    """msgid → Message of the zh_Hans .po file."""
    with PO.open("rb") as f:
        cat = read_po(f)
    return {_key(m.id): m for m in cat if m.id}


def _translated(m) -> bool:
    if m is None:
        return False
    strings = m.string if isinstance(m.string, tuple | list) else (m.string,)
    return m is not None and "fuzzy" not in m.flags and all(s.strip() for s in strings)


# --- the catalogue ---------------------------------------------------------------------------


def test_every_ui_string_has_a_chinese_translation():
    found, po = extracted(), catalogue()
    assert len(found) > 300  # the extraction itself works (pages, presets, tips, samples)
    missing = [
        f"  {where}: {msgid!r}"
        for key, (msgid, where) in sorted(found.items(), key=lambda kv: kv[1][1])
        if not _translated(po.get(key))
    ]
    assert missing == [], (
        f"{len(missing)} UI string(s) have no Chinese translation:\n"
        + "\n".join(missing)
        + "\n"
        + UPDATE
    )


def test_every_message_code_has_an_entry_in_both_chinese_catalogues():
    """A code of engine/catalogue.py without a translation would show English on a Chinese
    page; each must be translated in 简体 and 繁體 (and format with its own placeholders)."""
    for lang in ("zh_Hans", "zh_Hant"):
        with i18n.po_path(lang).open("rb") as f:
            po = {_key(m.id): m for m in read_po(f) if m.id}
        missing = [code for code, msgid in CATALOGUE.items() if not _translated(po.get(msgid))]
        assert missing == [], f"{lang}: no translation for {missing}\n" + UPDATE


def test_the_translation_layer_reads_no_text_back():
    """Engine messages are formatted from their code and params, never parsed: no regex in the
    translation layer (nor anywhere in app/ on engine text), and the layer stays small."""
    layer = (ROOT / "app" / "engine_text.py").read_text()
    assert not re.search(r"^\s*(import re|from re )", layer, re.M)
    assert len(layer.splitlines()) < 150
    for path in (ROOT / "app").rglob("*.py"):
        src = path.read_text()
        assert "engine_text" not in src or "re.compile" not in src or path.name == "ui.py", path


def _fields(text: str) -> set[str]:
    return {f for _lit, f, _spec, _conv in string.Formatter().parse(text) if f is not None}


def test_translations_keep_every_placeholder_and_format_cleanly():
    bad = []
    for key, m in catalogue().items():
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            if not s:
                continue
            want = set().union(*(_fields(i) for i in ids))
            try:
                got = _fields(s)
            except ValueError as e:  # an unbalanced brace
                bad.append(f"{key!r}: {e}")
                continue
            if got != want:
                bad.append(f"{key!r}: placeholders {sorted(got)} ≠ {sorted(want)}")
    assert bad == []


def test_the_catalogue_is_compiled_from_the_po_file_and_translates():
    with i18n.language(ZH):
        assert i18n._("Home") == "首页"
        assert i18n._("no such msgid") == "no such msgid"
        assert i18n.ngettext(
            "{total} run; showing {first}–{last}.", "{total} runs; showing {first}–{last}.", 3
        ).startswith("共 {total}")
    with i18n.language("en"):
        assert i18n._("Home") == "Home"
    with pytest.raises(ValueError, match="zh_Hans"):
        i18n.language("fr").__enter__()


def test_the_compiled_catalogue_follows_the_po_file(tmp_path, monkeypatch):
    """No stale .mo: a changed .po is compiled again on the next page run."""
    po = tmp_path / ZH / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_bytes(PO.read_bytes())
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    monkeypatch.setattr(i18n, "_catalogs", {})
    assert i18n.translations(ZH).gettext("Home") == "首页"
    text = po.read_text().replace('msgstr "首页"', 'msgstr "主页"')
    po.write_text(text)
    os.utime(po, (po.stat().st_atime, po.stat().st_mtime + 5))
    assert i18n.translations(ZH).gettext("Home") == "首页"  # strings between checks: cached
    assert i18n.translations(ZH, check=True).gettext("Home") == "主页"


@pytest.mark.parametrize(
    "seconds", [None, 0, 0.4, 1, 45, 59.6, 60, 80, 599, 3599, 3600, 3660, 7500, 86400 * 3]
)
def test_durations_read_the_same_as_jobs_format_in_english_and_translate(seconds):
    with i18n.language("en"):
        assert i18n.duration(seconds) == format_duration(seconds)
        if seconds is not None:  # Home's "seen" column: "12 s ago"
            assert i18n.ago(seconds) == format_duration(seconds) + " ago"
    with i18n.language(ZH):
        zh = i18n.duration(seconds)
        if seconds is not None:
            assert i18n.ago(seconds) == zh + "前"
            assert CJK.search(zh) and not re.search(r"\b(s|min|h)\b", zh)


def test_a_missing_duration_is_a_dash_in_every_language():
    """The read models give seconds (None before a run starts, or for a worker never seen);
    a table column turns None into NaN."""
    for lang in ("en", ZH, HANT):
        with i18n.language(lang):
            for missing in (None, float("nan")):
                assert i18n.duration(missing) == i18n.ago(missing) == "—"


def test_browser_languages_map_to_the_supported_ones():
    assert i18n.match("zh-CN") == i18n.match("zh-Hans-SG") == i18n.match("zh") == ZH
    assert i18n.match("zh-SG") == i18n.match("zh-Hans") == i18n.match("zh-Hans-HK") == ZH
    assert i18n.match("zh-TW") == i18n.match("zh-HK") == i18n.match("zh-Hant") == HANT
    assert i18n.match("zh_Hant_TW") == i18n.match("zh-MO") == HANT
    assert i18n.match("en-GB") == "en" and i18n.match("de-DE") is None and i18n.match(None) is None
    assert i18n.from_accept_language("de-DE,zh-CN;q=0.9,en;q=0.8") == ZH
    assert i18n.from_accept_language("en;q=0.5, zh-TW;q=0.7") == HANT
    assert i18n.from_accept_language("fr, en-US;q=0.9") == "en"
    assert i18n.from_accept_language("") is None


def test_the_traditional_catalogue_is_generated_complete_and_traditional():
    """繁體 is generated from 简体 (app/babel_hant.py: OpenCC s2twp and the glossary): the
    committed file is exactly what the script writes, every msgid has an entry, its
    placeholders are the English ones, and no character only Simplified uses is left."""
    from app import babel_hant

    assert PO_HANT.read_bytes() == babel_hant.hant_catalogue(), (
        "run: .venv/bin/python -m app.babel_hant"
    )
    with PO_HANT.open("rb") as f:
        hant = {_key(m.id): m for m in read_po(f) if m.id}
    hans = catalogue()
    assert set(hant) == set(hans)
    leftovers = []
    for key, m in hant.items():
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        for s in strings:
            assert _translated(m), key
            assert _fields(s) == set().union(*(_fields(i) for i in ids)), key
            if any(c in s for c in babel_hant.SIMPLIFIED_ONLY):
                leftovers.append(s)
            assert "“" not in s and "”" not in s, s  # Taiwan's quotes: 「…」
    assert leftovers == []
    with i18n.language(HANT):
        assert i18n._("Datasets") == "資料集" and i18n._("Learning rate") == "學習率"


def test_the_glossary_fixes_what_opencc_gets_wrong_here():
    from app.babel_hant import converter, to_hant

    assert to_hant("目标列 {target}；{rows} 行数据") == "目標欄 {target}；{rows} 列資料"
    assert to_hant("默认预设") == "預設預設集"
    assert (
        to_hant("一个数据集") == "一個資料集" and converter().convert("一个数据集") != "一個資料集"
    )
    assert to_hant("“集成”") == "「集成」"


# --- engine texts
# --- engine texts ------------------------------------------------------------------------------


def _findings():
    """Real findings from engine.doctor: every rule, passed and failed, each variant."""
    import torch
    from torch import nn

    from engine import doctor

    torch.manual_seed(0)
    deep = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(8, 8), nn.Tanh())])
    for layer in deep:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=0.01)
    shallow = nn.Sequential(nn.Linear(4, 3))
    x = torch.randn(64, 8)

    class Broken(nn.Module):  # a custom layer whose gradient is wrong
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 3))

        def forward(self, x):
            return BadGrad.apply(x @ self.w)

    class BadGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    def make():
        return nn.Sequential(nn.Linear(8, 3))

    def make_blind():  # can't memorise: its output ignores the input
        return nn.Sequential(nn.Linear(8, 3), nn.Flatten(), nn.Dropout(1.0))

    y = torch.randint(0, 3, (64,))
    loss = nn.functional.cross_entropy
    mse = nn.functional.mse_loss
    out = [
        doctor.check_init_loss(1.1, "classification", 3),
        doctor.check_init_loss(9.0, "classification", 3),
        doctor.check_init_loss(9.0, "classification", 3, init="normal-0.02"),
        doctor.check_init_loss(7.0, "regression", None),
        doctor.check_standardized(torch.randn(100, 3), "tabular"),
        doctor.check_standardized(torch.randn(100, 3) + 50, "tabular"),
        doctor.check_batch_size(128, 10_000),
        doctor.check_batch_size(130, 200),
        doctor.check_batch_size(5000, 1_000_000),
        doctor.check_batch_size(100, 120),
        doctor.check_activation_scale(deep, x),
        doctor.check_activation_scale(deep, x, init="scaled"),
        doctor.check_activation_scale(nn.Sequential(nn.Linear(8, 3)), x),
        doctor.check_activation_scale(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 3)), x),
        doctor.gradcheck_model(shallow, torch.randn(4, 4)),
        doctor.gradcheck_model(Broken(), x),
        doctor.overfit_one_batch(make, x, y, loss, "classification", steps=150),
        doctor.overfit_one_batch(make_blind, x, y, loss, "classification", steps=5),
        doctor.overfit_one_batch(
            lambda: nn.Linear(8, 1), x, torch.randn(64, 1), mse, "regression", steps=3
        ),
        doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=0.1),
        doctor.rule_ratio([1e-6] * 5, 1e-4, 1e-2, 5, lr=10.0),
        doctor.rule_ratio([0.5] * 5, 1e-4, 1e-2, 5, lr=0.1),
        doctor.rule_exploding([1.0] * 20 + [500.0], 10, clip_norm=None, lr=0.1),
        doctor.rule_exploding([1.0] * 20 + [500.0], 10, clip_norm=5.0, lr=0.1),
        doctor.rule_plateau([1.0, 1.0, 1.0, 1.0], factor=0.5, patience=2, threshold=0.01),
        doctor.rule_overfitting(
            [1.0, 0.8, 0.6, 0.4], [1.0, 1.1, 1.2, 1.3], dropout=0.0, noise_std=0.0
        ),
        doctor.rule_overfitting(
            [1.0, 0.8, 0.6, 0.4], [1.0, 1.1, 1.2, 1.3], dropout=0.5, noise_std=0.1
        ),
        doctor.rule_divergence([1.0, 5.0], 1.0, lr=0.1),
        doctor.rule_never_predicted([[9, 0], [6, 0]], ["yes", "no"], class_weight="off"),
        doctor.rule_never_predicted([[9, 0], [6, 0]], ["yes", "no"], class_weight="auto"),
    ]
    assert [i for i, f in enumerate(out) if f is None] == []
    return out


@pytest.fixture(scope="module")
def findings():
    return _findings()


def test_findings_cover_every_rule_and_both_outcomes(findings):
    rules = {f.rule for f in findings}
    assert rules >= {
        "init_loss",
        "inputs_standardized",
        "gradcheck",
        "batch_size",
        "activation_scale",
        "overfit_one_batch",
        "ratio_low",
        "ratio_high",
        "exploding_gradient",
        "plateau",
        "overfitting",
        "loss_rising",
    }
    assert {f.passed for f in findings if f.rule == "gradcheck"} == {True, False}


def test_every_finding_is_a_coded_message_and_stores_its_code(findings):
    """A finding's words are a catalogue code with params, not text: its stored form (the
    event's ``message_msg``/``suggestion_msg``) rebuilds exactly the engine's English."""
    for f in findings:
        assert isinstance(f.message, Message) and f.message.code in CATALOGUE, f.rule
        assert f.suggestion == "" or isinstance(f.suggestion, Message), f.rule
        d = json.loads(json.dumps(f.to_dict()))
        assert Message.from_json(d["message_msg"]) == f.message
        if f.suggestion:
            assert Message.from_json(d["suggestion_msg"]) == f.suggestion


def test_each_doctor_finding_reads_in_chinese(findings):
    with i18n.language(ZH):
        for f in findings:
            event = {
                "data": {
                    "msg": Message("event.doctor", finding=f.message, tip=f.tip).to_json(),
                    "suggestion_msg": as_json(f.suggestion),
                }
            }
            view = {"message": f"{f.message} ({f.tip})", "suggestion": str(f.suggestion)}
            msg, sug = engine_text.finding(view, event)
            assert msg.endswith(f"（{f.tip}）"), msg
            for text, english in ((msg, f.message), (sug, f.suggestion)):
                if english:
                    assert CJK.search(text) and "{" not in text, (f.rule, text)
            for k, v in f.change.items():  # a change the advice names stays as written
                if f"{k}={v}" in f.suggestion:
                    assert f"{k}={v}" in sug


def test_a_finding_stored_before_messages_had_codes_shows_its_english(findings):
    f = next(f for f in findings if f.rule == "ratio_high")
    view = {"message": f"{f.message} ({f.tip})", "suggestion": str(f.suggestion)}
    old_event = {"data": {"rule": f.rule, "data": f.data}}  # no codes: the one fallback
    with i18n.language(ZH):
        assert engine_text.finding(view, old_event) == (view["message"], view["suggestion"])
        # a code from a newer or older version whose params don't fit: English, never a crash
        bad = {"data": {"msg": {"code": "doctor.ratio_high", "params": {"high": "x"}}}}
        assert engine_text.finding(view, bad)[0] == view["message"]


def _report_raw(tmp_path):
    from engine.data import load_dataset

    rng = np.random.default_rng(0)
    n = 120
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "income": np.exp(rng.normal(8, 3, n)).round(2),
            "same": 1.0,
            "word": rng.choice(["x", "y"], n),
            "label": np.where(rng.random(n) < 0.1, "rare", rng.choice(["p", "q"], n)),
        }
    )
    df.loc[:5, "a"] = np.nan
    df.loc[:4, "word"] = None
    df = pd.concat([df, df.iloc[:6]], ignore_index=True)  # duplicates
    df.loc[len(df)] = df.iloc[10].tolist()[:-1] + ["q" if df.iloc[10]["label"] != "q" else "p"]
    df.loc[len(df)] = [0.0, 1.0, 1.0, "x", None]  # no target
    path = tmp_path / "messy.csv"
    df.to_csv(path, index=False)
    return load_dataset(str(path), target="label")


def test_every_dataset_report_warning_reads_in_chinese(tmp_path):
    from engine.data.report import dataset_report

    raw = _report_raw(tmp_path)
    warnings = dataset_report(raw).warnings + dataset_report(raw, batch_size=64).warnings
    tips = {w["tip"] for w in warnings}
    assert len(warnings) >= 8 and tips >= {"T1", "T2", "T3"}
    with i18n.language(ZH):
        for w in warnings:
            zh = engine_text.report_warning(json.loads(json.dumps(w)))
            assert CJK.search(zh) and not ENGLISH_RUN.search(zh), w["message"]
            assert f"（{w['tip']}）" in zh or w["tip"] == "T1" and "T1" not in w["message"]


def test_event_messages_and_chart_marks_read_in_chinese():
    def event(kind, message, **data):
        return {"kind": kind, "message": str(message), "data": {**data, "msg": message.to_json()}}

    events = [
        event("lr_cut", Message("event.lr_cut", old=0.1, new=0.05), old_lr=0.1, new_lr=0.05),
        event(
            "plateau_hint",
            Message("event.plateau_hint", epochs=3, old=0.1, new=0.05),
            old_lr=0.1,
            new_lr=0.05,
        ),
        {"kind": "doctor", "data": {"tip": "T6", "rule": "ratio_high"}, "message": "x"},
        event("early_stop", Message("event.early_stop", epochs=10)),
        event("clip_burst", Message("event.clip_burst", clipped=7, steps=9, epoch=3)),
    ]
    with i18n.language(ZH):
        labels = [charts.event_label(e) for e in events]
        assert labels[:3] == ["学习率 0.1 → 0.05", "此处宜降学习率：0.1 → 0.05", "⚠ T6 比值过高"]
        assert labels[3:] == ["提前停止", "频繁裁剪（T9）"]
        for e in events[:2] + events[3:]:
            assert CJK.search(engine_text.event_message(e)), e["message"]
    with i18n.language("en"):
        assert [charts.event_label(e) for e in events][:3] == [
            "LR 0.1 → 0.05",
            "cut would help: 0.1 → 0.05",
            "⚠ T6 ratio high",
        ]


def test_the_bundle_event_has_its_mark_on_the_charts():
    """Issue 21: the bundle's parity check is drawn as the other events are, with its colour
    and its word in each language; a failed check reads apart."""
    assert "bundle" in charts.EVENT_KINDS and charts.EVENT_COLORS["bundle"]
    ok = {"kind": "bundle", "data": {"ok": True, "rows": 69}, "message": "x"}
    failed = {"kind": "bundle", "data": {"ok": False, "why": "x"}, "message": "x"}
    with i18n.language("en"):
        assert charts.event_label(ok) == "model bundle checked"
        assert charts.event_label(failed) == "model bundle failed its check"
    for lang in (ZH, HANT):
        with i18n.language(lang):
            labels = [charts.event_label(ok), charts.event_label(failed)]
            assert all(CJK.search(x) for x in labels) and labels[0] != labels[1], labels


def test_every_event_message_of_engine_decide_reads_in_chinese():
    from engine import decide

    made = [
        decide.lr_cut(0.1, 0.05, epoch=2),
        decide.plateau_hint(0.1, 0.05, epoch=3, patience=2),
        decide.lr_floor(1e-5, floor=1e-4, epoch=9),
        decide.early_stop(epoch=12, best_epoch=2, bad_epochs=10, patience=10),
        decide.diverged({"train/loss": math.nan}, lr=0.1, base_lr=0.1, clip_norm=None),
        decide.diverged({"val/loss": math.inf}, lr=0.1, base_lr=0.1, clip_norm=5.0),
        decide.clip_burst(7, 9, bound=1.0, epoch=3),
    ]
    assert [d for d in made if d is None] == []
    with i18n.language(ZH):
        for d in made:
            data = {**d.data, "msg": d.message.to_json()}
            zh = engine_text.event_message(
                {"kind": d.kind, "message": str(d.message), "data": data}
            )
            assert CJK.search(zh) and not ENGLISH_RUN.search(zh), d.message


def test_the_auto_presets_derived_reasons_read_in_chinese():
    auto = pytest.importorskip("engine.auto")
    reasons = set()
    for rows in (150, 900, 5000, 60_000):
        for task, classes in (("classification", 3), ("regression", None)):
            facts = auto.DataFacts(rows=rows, task=task, classes=classes, features=10)
            reasons |= {d.why for d in auto.derive(facts)}
    with i18n.language(ZH):
        untranslated = [w for w in sorted(reasons) if not CJK.search(engine_text.text(w))]
    assert not untranslated, (
        "the auto preset's reasons with no Chinese template:\n"
        + "\n".join(f"  {w}" for w in untranslated)
        + "\nadd its msgid to engine/catalogue.py, then "
        + UPDATE
    )


def test_presets_and_tips_read_in_chinese():
    with i18n.language(ZH):
        for p in service.presets():
            for text in (p.title, p.summary, p.suited_for, *(s.why for s in p.settings)):
                assert CJK.search(engine_text.text(text)), text
        assert engine_text.tip_label("T9").startswith("T9 — 梯度裁剪")
        assert engine_text.tip_title("T7").startswith("使用验证集")


def test_the_traditional_presets_page_is_up_to_date():
    from engine.presets_doc import presets_markdown

    page = ROOT / "docs" / "presets.zh-Hant.md"
    assert page.read_text() == presets_markdown("zh_Hant"), (
        "run: python -m engine.presets_doc --lang zh_Hant > docs/presets.zh-Hant.md"
    )


def test_the_chinese_presets_page_is_up_to_date():
    from engine.presets_doc import presets_markdown

    page = ROOT / "docs" / "presets.zh.md"
    assert page.read_text() == presets_markdown("zh_Hans"), (
        "run: python -m engine.presets_doc --lang zh_Hans > docs/presets.zh.md"
    )
    assert "## `sutskever` — Sutskever 默认" in page.read_text()


# --- the dashboard in Chinese ----------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data directory with a dataset (with report warnings), a run whose LR was cut, a
    fixed-LR run with doctor findings, and a queued run."""
    path = tmp_path_factory.mktemp("i18n-home")
    old = os.environ.get("TRAINBOARD_HOME")
    os.environ["TRAINBOARD_HOME"] = str(path)
    try:
        db = connect()
        ds = datasets.register_builtin(db, "builtin:breast-cancer")
        cut = _train(db, ds, "sutskever", {**FAST, "train.clip_norm": 1.0}, "lr cuts")
        # The cut this test translates, whatever the tiny run did (tests/test_app.py checks
        # that the engine cuts): the event as engine.decide.lr_cut writes it.
        with MetricWriter(db_path(), cut) as w:
            w.event(
                3,
                "lr_cut",
                decide.lr_cut(0.1, 0.05, epoch=2).message,
                {"tip": "T7", "old_lr": 0.1, "new_lr": 0.05, "epoch": 2},
            )
        fixed = _train(
            db,
            ds,
            "sutskever",
            {**FAST, "schedule.enabled": False, "train.preflight": True, "train.batch_size": 60},
            "fixed lr",
        )
        registry.create_run(db, spec={}, preset="quick", dataset_id=ds["id"], name="waiting")
        csv = io.BytesIO(_messy_csv())
        datasets.ingest(db, csv, "messy.csv", owner="local")
        yield {"path": path, "dataset": ds, "cut": cut, "fixed": fixed}
    finally:
        if old is None:
            os.environ.pop("TRAINBOARD_HOME", None)
        else:
            os.environ["TRAINBOARD_HOME"] = old


def _messy_csv() -> bytes:
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "income": np.exp(rng.normal(8, 3, n)).round(2),
            "label": rng.choice(["p", "q"], n),
        }
    )
    df.loc[:3, "a"] = np.nan
    return df.to_csv(index=False).encode()


def zh_page(name: str, **state) -> AppTest:
    """A page in Chinese, the way a browser set to Chinese opens it."""
    return page(name, locale="zh-CN", **state)


def _shown(at: AppTest) -> list[str]:
    """Every piece of text a reader sees: Markdown and notices, titles, metric labels,
    buttons, widget labels and options, expanders and tabs."""
    parts = texts(at).splitlines()
    parts += [t.value for t in at.title] + [m.label for m in at.metric]
    parts += [b.label for b in at.button] + [e.label for e in at.get("expander")]
    parts += [t.label for t in at.tabs]
    for kind in ("selectbox", "multiselect", "radio", "text_input", "number_input", "slider"):
        for w in getattr(at, kind):
            parts.append(w.label)
            parts += [str(o) for o in getattr(w, "options", [])]
    for d in at.dataframe:  # cell values that are words (statuses, states)
        parts += [str(v) for v in d.value.to_numpy().ravel() if isinstance(v, str)]
    # Words inside a line count on their own: a badge (":green-badge[finished]") and each
    # piece of a "name · status · preset" line.
    parts += [b for p in parts for b in re.findall(r":\w+-badge\[([^\]]*)\]", p)]
    parts += [piece for p in parts for piece in p.split(" · ")]
    return [visible(p).strip() for p in parts if p and p.strip()]


def _leaks(shown: list[str]) -> list[str]:
    """English msgids (with a different translation) that appear in the text shown: a whole
    element that is a msgid, or any literal run of three words or more of one."""
    po = catalogue()
    exact, runs = set(), set()
    for key, m in po.items():
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not strings[0] or strings[0] == key:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        for msgid in ids:
            if not _fields(msgid):
                exact.add(msgid.strip())
            for literal, *_rest in string.Formatter().parse(msgid):
                for piece in re.split(r"[()\[\]\n:;·—–→,.]", literal):
                    if sum(w.isalpha() for w in piece.split()) >= 3:
                        runs.add(piece.strip())
    blob = "\n".join(shown)
    found = sorted({s for s in shown if s in exact} | {r for r in runs if r in blob})
    return found


PAGES = ("home", "datasets", "new_run", "runs", "run_detail", "compare")


@pytest.mark.parametrize("name", PAGES)
def test_each_page_in_chinese_shows_no_english_text_that_has_a_translation(home, name):
    state = {"run_id": home["fixed"], "compare_ids": [home["cut"], home["fixed"]]}
    if name == "datasets":
        state["dataset_id"] = max(d["id"] for d in service.list_datasets(connect()))
    at = zh_page(name, **state)
    shown = _shown(at)
    assert any(CJK.search(s) for s in shown)
    assert _leaks(shown) == [], f"English on the {name} page in 中文"
    assert at.radio(key=i18n.PICK_KEY).value == ZH


def test_the_leak_check_finds_english():
    assert _leaks(["运行列表", "Workers online"]) == ["Workers online"]
    assert _leaks(["x · Queued runs stop at once · y"]) == ["Queued runs stop at once"]
    assert "up to step" in _leaks(["1,234 points drawn, up to step 9"])
    assert _leaks(["step"]) == ["step"]  # a whole element that is a msgid
    assert _leaks(["val/loss at step 3", "lr cuts", "首页"]) == []  # short runs, user text


def test_run_detail_in_chinese_marks_the_lr_cut_and_translates_the_doctor(home):
    at = zh_page("run_detail", run_id=home["cut"])
    specs = charts_of(at)
    assert specs
    labels = {r.get("label") for s in specs for r in s["rows"] if "label" in r}
    assert "学习率 0.1 → 0.05" in labels
    titles = [s.get("title") for s in specs]
    assert "损失（训练与验证）" in titles
    assert "**学习率 0.1 → 0.05**" in "\n".join(c.value for c in at.caption)
    assert [t.label for t in at.tabs] == ["配置", "事件日志", "下载"]
    metrics = {m.label: m.value for m in at.metric}
    assert "最佳验证准确率" in metrics and re.fullmatch(r"\d+ 秒|\d+ 分 \d\d 秒", metrics["用时"])
    doctor = zh_page("run_detail", run_id=home["fixed"])
    shown = texts(doctor)
    assert "训练诊断" in shown
    assert "验证损失已有" in shown or "批大小" in shown  # a translated finding


def test_every_event_of_real_runs_reads_in_chinese(home):
    """The event log of runs the engine trained (start, pre-flight checks, dataset report,
    doctor, LR cuts, best weights, test score, end): no message left in English."""
    db = connect()
    events = [e for run in (home["cut"], home["fixed"]) for e in service.events(db, run)]
    assert {"run_start", "preflight", "doctor", "run_end"} <= {e["kind"] for e in events}
    with i18n.language(ZH):
        shown = {e["message"]: engine_text.event_message(e) for e in events}
    english = [m for m, zh in shown.items() if not CJK.search(zh) or ENGLISH_RUN.search(zh)]
    assert english == [], "give each a code in engine/catalogue.py, then " + UPDATE


def test_datasets_page_in_chinese_translates_the_report(home):
    db = connect()
    messy = max(d["id"] for d in service.list_datasets(db))
    at = zh_page("datasets", dataset_id=messy)
    warned = [w.value for w in at.warning]
    assert warned and all(CJK.search(w) for w in warned)
    assert any("缺失值" in w for w in warned) and any("数量级" in w for w in warned)


# --- choosing and remembering the language ---------------------------------------------------


A_BROWSER, ANOTHER = "a" * 32, "b" * 32  # ids as app.hardening's cookie gives browsers


def in_browser(monkeypatch, browser_id: str | None) -> None:
    """The next sessions come from the browser with this id cookie (None: cookies off).
    AppTest can't send cookies, so the one function that reads the header is pointed at it."""
    monkeypatch.setattr(i18n, "browser", lambda: browser_id)


def test_a_pick_is_remembered_in_this_browser_and_a_new_browser_follows_its_own(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    in_browser(monkeypatch, A_BROWSER)
    at = zh_page("home")  # a Chinese browser: Chinese until the user picks
    assert at.metric[0].label == "在线工作进程"
    assert service.user_setting(db, f"local@{A_BROWSER}", "language") is None
    at.radio(key=i18n.PICK_KEY).set_value("en").run()
    assert_clean(at)
    assert at.metric[0].label == "Workers online"
    assert service.user_setting(db, f"local@{A_BROWSER}", "language") == "en"
    again = zh_page("home")  # a new session in the same browser: its pick wins
    assert again.metric[0].label == "Workers online"
    in_browser(monkeypatch, ANOTHER)  # a new browser, set to Chinese: its own language
    assert zh_page("home").metric[0].label == "在线工作进程"
    in_browser(monkeypatch, None)  # cookies off: a pick lasts for its session only
    english = AppTest.from_file(MAIN, default_timeout=60)
    english.context = {"locale": "en-US"}
    english.run()
    english.radio(key=i18n.PICK_KEY).set_value(ZH).run()
    assert english.metric[0].label == "在线工作进程"
    assert [r[0] for r in db.execute("SELECT user FROM user_settings")] == [f"local@{A_BROWSER}"]


def test_team_members_each_keep_their_own_language_in_a_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    monkeypatch.setenv("TRAINBOARD_TEAM", "1")
    db = connect()
    auth.add_user(db, "ada", "ada's long password")
    auth.add_user(db, "bob", "bob's long password")
    in_browser(monkeypatch, A_BROWSER)

    def visit(name: str) -> AppTest:
        at = AppTest.from_file(MAIN, default_timeout=60)
        at.session_state["tb_session_token"] = auth.login(db, name, f"{name}'s long password")
        return at.run()

    ada = visit("ada")
    ada.radio(key=i18n.PICK_KEY).set_value(ZH).run()
    assert ada.metric[0].label == "在线工作进程"
    assert service.user_setting(db, f"ada@{A_BROWSER}", "language") == ZH
    assert visit("ada").metric[0].label == "在线工作进程"
    assert visit("bob").metric[0].label == "Workers online"
    in_browser(monkeypatch, ANOTHER)
    assert visit("ada").metric[0].label == "Workers online"  # her other browser: its own
    login = AppTest.from_file(MAIN, default_timeout=60)  # before logging in: the browser's
    login.context = {"locale": "zh-CN"}
    login.run()
    assert [b.label for b in login.button] == ["登录"]
    assert service.user_setting(db, f"@{ANOTHER}", "language") is None


def test_a_user_setting_must_be_an_allowed_value(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    with pytest.raises(ValueError, match="language: en/zh_Hans/zh_Hant"):
        service.set_user_setting(db, "local", "language", "fr")
    service.set_user_setting(db, "local", "language", ZH)
    service.set_user_setting(db, "local", "language", "en")
    assert service.user_setting(db, "local", "language") == "en"
    assert db.execute("SELECT count(*) FROM user_settings").fetchone()[0] == 1


def test_the_team_servers_guards_read_in_chinese(tmp_path):
    """Every message the issue-18 guards write, produced by the real code, reads in Chinese."""
    from engine.errors import DataError
    from jobs.runs import names, quotas, submit

    texts = list(
        submit.member_override_errors(
            {"data": {}, "Optim.LR": 1, "model": {}, "preset": "x", "data.dataset": "/x"}
        ).values()
    )
    for what in ("run name", "file name"):
        with pytest.raises(names.TextRefused) as e:
            names.clean_text("x" * 300, what=what)
        texts.append(e.value)
    texts.append(quotas.time_limit_message(1800))
    ds = {"name": "a.csv", "path": str(tmp_path / "elsewhere.csv"), "target": "y", "sha256": "0"}
    for spec, row in (
        ({"data": {"dataset": "/etc/x", "target": "y"}}, ds),
        ({"data": {"dataset": ds["path"], "target": "y"}}, ds),
        ({"data": {"dataset": ds["path"], "target": "y"}}, None),
    ):
        with pytest.raises(DataError) as e:
            datasets.verify_for_run(spec, row, tmp_path)
        texts.append(e.value)
    with i18n.language(ZH):
        for text in texts:
            zh = engine_text.text(text)
            assert CJK.search(zh) and zh != str(text), text
