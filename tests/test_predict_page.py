"""Issue 21, the pages with AppTest: Predict offers the finished runs that have a bundle, and
Run detail shows the parity line and the Predict button, in English and in 中文 (no English
text that has a translation); with no bundle the page says what to do."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from app import i18n
from jobs import service
from jobs.datasets import ingest as datasets
from jobs.store.db import connect
from tests.test_app import FAST, _train, page
from tests.test_i18n import CJK, ZH, _leaks, _shown


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("predict-home")
    old = os.environ.get("TRAINBOARD_HOME")
    os.environ["TRAINBOARD_HOME"] = str(path)
    try:
        db = connect()
        ds = datasets.register_builtin(db, "builtin:breast-cancer")
        run = _train(db, ds, "sutskever", FAST, "with a bundle")
        yield {"path": path, "run": run}
    finally:
        if old is None:
            os.environ.pop("TRAINBOARD_HOME", None)
        else:
            os.environ["TRAINBOARD_HOME"] = old


def test_predict_page_offers_the_run_with_a_bundle(home) -> None:
    at = page("predict", predict_run=home["run"])
    assert not at.exception
    assert at.title[0].value == "Predict"
    (pick,) = at.selectbox
    assert pick.value == home["run"]
    assert any("checked against the run's schema" in c.value for c in at.caption)


def test_run_detail_shows_the_parity_line_and_the_predict_button(home) -> None:
    at = page("run_detail", run_id=home["run"])
    assert not at.exception
    assert any(s.value.startswith("Bundle checked on ") for s in at.success)
    assert any(b.label == "Predict" for b in at.button)
    labels = [d.label for d in at.get("download_button")]
    assert any(x.startswith("Model bundle (.zip") for x in labels)
    # the button's deferred data: the bundle folder as one zip
    names = zipfile.ZipFile(io.BytesIO(service.bundle_zip(connect(), home["run"]))).namelist()
    assert sorted(names) == [
        f"bundle/{n}" for n in ("README.md", "example.csv", "model.ts", "predict.py", "schema.json")
    ]


@pytest.mark.parametrize("name", ["predict", "run_detail"])
def test_the_pages_in_chinese_show_no_english_that_has_a_translation(home, name) -> None:
    at = page(name, locale="zh-CN", run_id=home["run"], predict_run=home["run"])
    assert not at.exception
    shown = _shown(at)
    assert any(CJK.search(s) for s in shown)
    assert _leaks(shown) == [], shown
    assert at.radio(key=i18n.PICK_KEY).value == ZH


def test_predict_page_without_a_bundle_points_to_new_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "empty"))
    at = page("predict")
    assert not at.exception
    assert "No finished run has a model bundle yet" in at.info[0].value
