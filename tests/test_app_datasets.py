"""``jobs.datasets.ingest``: uploads go to disk at once, are validated by the engine's loader, and
either become a dataset stored under its content hash or leave nothing behind."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from engine.data import DataError
from jobs.datasets import ingest as datasets
from jobs.store import registry
from jobs.store.db import connect


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    return connect()


def _left_behind(tmp_path) -> list[str]:
    folder = tmp_path / "datasets"
    return sorted(p.name for p in folder.glob("tmp-*")) if folder.exists() else []


def _npz() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.normal(size=(200, 5)).astype(np.float32), y=rng.integers(0, 2, 200))
    return buf.getvalue()


def _image_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for label, shade in (("dark", 30), ("light", 220)):
            for i in range(12):
                img = io.BytesIO()
                Image.new("L", (8, 8), shade + i).save(img, format="PNG")
                z.writestr(f"shapes/{label}/{i}.png", img.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "modality", "target"),
    [
        ("arrays.npz", _npz(), "tabular", "y"),
        ("shapes.zip", _image_zip(), "image", "folder"),
        (
            "table.tsv",
            b"a\tb\tlabel\n" + b"".join(b"%d\t%d\t%d\n" % (i, i * 2, i % 2) for i in range(60)),
            "tabular",
            "label",
        ),
    ],
)
def test_supported_uploads_become_datasets_stored_under_their_hash(
    db, tmp_path, name, content, modality, target
):
    ds = datasets.ingest(db, io.BytesIO(content), name)
    assert ds["name"] == name and ds["report"]["modality"] == modality
    assert ds["target"] == target
    path = tmp_path / "datasets" / f"{ds['sha256']}{name[name.rindex('.') :]}"
    assert ds["path"] == str(path) and path.read_bytes() == content
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty"),
        ("notes.docx", b"PK\x03\x04", "unsupported file type"),
        ("broken.zip", b"not a zip at all", "broken.zip"),
        ("broken.npz", b"\x93NUMPY garbage", "broken.npz"),
        (
            "people.csv",
            b"name,label\n" + b"".join(b"p%d,%d\n" % (i, i % 2) for i in range(80)),
            "name",
        ),
    ],
)
def test_a_bad_upload_raises_a_data_error_and_leaves_nothing(db, tmp_path, name, content, message):
    with pytest.raises(DataError, match=message) as e:
        datasets.ingest(db, content, name)
    assert "tmp-" not in str(e.value)  # the user knows the file by its own name
    assert registry.list_datasets(db) == []
    assert not list((tmp_path / "datasets").glob("*"))  # (a wrong extension creates no folder)


def test_a_wrong_target_names_the_columns(db):
    with pytest.raises(DataError, match="price"):
        datasets.ingest(db, b"a,b\n1,2\n3,4\n", "t.csv", target="price")


def test_bundled_samples_register_once(db):
    a = datasets.register_builtin(db, "builtin:digits")
    b = datasets.register_builtin(db, "builtin:digits")
    assert a["id"] == b["id"] and a["report"]["modality"] == "image"
    with pytest.raises(DataError, match="builtin:digits"):
        datasets.register_builtin(db, "builtin:mnist")


def test_a_300_character_extension_is_refused_before_anything_is_written(db, tmp_path):
    """It used to reach the file system as "File name too long" (issue 12, #10)."""
    with pytest.raises(DataError, match="302 characters long"):
        datasets.ingest(db, b"a,b\n1,2\n", "x." + "c" * 300)
    with pytest.raises(DataError, match="unsupported file type"):
        datasets.ingest(db, b"a,b\n1,2\n", "x." + "c" * 100)
    assert registry.list_datasets(db) == []
    assert not list((tmp_path / "datasets").glob("*"))


def test_dataset_names_lose_control_and_format_characters_and_long_ones_are_refused(db):
    """NUL bytes, newlines, bidi overrides and zero-width characters never reach a stored name
    (issue 12, #11; issue 18), and a name over 200 characters is refused, not cut."""
    rows = "".join(f"{i * 7 % 40},{i % 2}\n" for i in range(40))
    data = f"a,target\n{rows}".encode()
    ds = datasets.ingest(db, data, "evil\x00\nna\u202eme\u200b\ufeffgpj.csv")
    assert ds["name"] == "evil namegpj.csv"  # the U+202E would have shown "gpj" reversed
    with pytest.raises(DataError, match="file name is 205 characters long; at most 200"):
        datasets.ingest(db, data, "x" * 201 + ".csv")
    assert len(registry.list_datasets(db)) == 1
