"""Hostile and broken uploads: each gets its own clear message and leaves nothing behind.

The corpus and the expected messages live in tests/uploads/make_corpus.py (small files are
committed under tests/uploads/corpus/, big ones are generated here)."""

from __future__ import annotations

import pytest

from engine.data import DataError
from jobs import datasets
from jobs.store import registry
from jobs.store.db import connect
from tests.reliability import record_upload
from tests.uploads.make_corpus import CORPUS, LARGE, SMALL, _good_images, _zip, write_large


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _assert_no_trace(home, db):
    folder = datasets.datasets_dir(home)
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    assert leftovers == [], f"files left behind: {leftovers}"
    assert registry.list_datasets(db) == []


def _try(home, path, expected, target):
    db = connect(home / "trainboard.db")
    with path.open("rb") as f, pytest.raises(DataError) as e:
        datasets.ingest(db, f, path.name, target=target, home=home)
    message = str(e.value)
    folder = datasets.datasets_dir(home)
    left = (folder.exists() and any(folder.iterdir())) or bool(registry.list_datasets(db))
    record_upload(path.name, rejected=True, message=message, trace_left=left)
    assert expected.lower() in message.lower(), message
    assert path.name in message or "upload" in message, f"the message names the file: {message}"
    assert "Traceback" not in message and "tmp-" not in message, message
    assert str(home) not in message and "/tmp" not in message, (
        f"no server paths in messages: {message}"
    )
    _assert_no_trace(home, db)


def test_the_corpus_has_at_least_thirty_cases():
    assert len(SMALL) + len(LARGE) >= 30
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(SMALL), (
        "run: python tests/uploads/make_corpus.py"
    )


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_hostile_file_is_rejected_with_its_message(home, name):
    _, expected, target = SMALL[name]
    _try(home, CORPUS / name, expected, target)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_hostile_file_is_rejected_with_its_message(home, tmp_path, monkeypatch, name):
    _, expected, target = LARGE[name]
    import engine.data.loaders as loaders

    # small limits so the big cases stay quick to generate; the checks are the same code
    monkeypatch.setattr(datasets, "MAX_UPLOAD_BYTES", 2 << 20)
    monkeypatch.setattr(loaders, "MAX_ZIP_FILES", 2_000)
    write_large(tmp_path, [name])
    _try(home, tmp_path / name, expected, target)


def test_good_files_next_to_the_corpus_are_accepted(home, tmp_path):
    """The control: the same shapes, well-formed, are accepted (so the checks aren't blanket refusals)."""
    db = connect(home / "trainboard.db")
    ok_csv = tmp_path / "ok.csv"
    ok_csv.write_text("a,b,label\n" + "\n".join(f"{i},{i % 7},{i % 2}" for i in range(40)))
    ok_zip = tmp_path / "ok.zip"
    ok_zip.write_bytes(_zip(_good_images()))
    for p in (ok_csv, ok_zip):
        with p.open("rb") as f:
            row = datasets.ingest(db, f, p.name, home=home)
        assert row["sha256"]
    assert len(registry.list_datasets(db)) == 2
