"""Loading: every format from a real file, target/task inference and the errors users see."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from engine.data import BUILTINS, DataError, load_dataset


def _table(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.integers(0, 5, n),
            "color": rng.choice(["red", "green"], n),
            "label": rng.choice(["cat", "dog"], n),
        }
    )


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".txt", ".parquet"])
def test_table_formats_load_with_one_hot_text_features(tmp_path, ext):
    df = _table()
    path = tmp_path / f"data{ext}"
    if ext == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, sep="," if ext == ".csv" else "\t", index=False)
    raw = load_dataset(str(path))
    assert raw.modality == "tabular"
    assert raw.x.shape == (60, 4) and raw.x.dtype == np.float32
    assert raw.feature_names == ["a", "b", "color=green", "color=red"]
    assert raw.target == "label" and raw.task == "classification"
    assert raw.class_names == ["cat", "dog"]
    assert raw.y.dtype == np.int64
    assert raw.frame is not None and raw.frame.shape == (60, 4)


def test_npz_loads_tabular_sequence_and_image(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    for shape, modality in [
        ((90, 4), "tabular"),
        ((90, 7, 2), "sequence"),
        ((90, 1, 6, 6), "image"),
    ]:
        np.savez(tmp_path / "d.npz", x=rng.random(shape), y=y)
        raw = load_dataset(str(tmp_path / "d.npz"))
        assert raw.modality == modality and raw.x.shape == shape
        assert raw.task == "classification" and raw.class_names == ["0", "1", "2"]
    np.savez(tmp_path / "h.npz", x=rng.random((90, 6, 6)), y=y, modality=np.array("image"))
    assert load_dataset(str(tmp_path / "h.npz")).x.shape == (90, 1, 6, 6)


def test_npz_falls_back_to_the_first_two_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", feats=np.ones((10, 2)), out=np.arange(10.0) / 3)
    raw = load_dataset(str(tmp_path / "d.npz"))
    assert raw.x.shape == (10, 2) and raw.target == "out" and raw.task == "regression"


def _png(size, mode="L", value=128) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_zip_of_class_folders_loads_and_resizes_to_the_common_size(tmp_path):
    path = tmp_path / "imgs.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(3):
            z.writestr(f"set/cat/{i}.png", _png((10, 12)))
            z.writestr(f"set/dog/{i}.png", _png((10, 12), value=255))
        z.writestr("set/dog/odd.png", _png((20, 20)))
        z.writestr("__MACOSX/._junk", b"x")
    raw = load_dataset(str(path))
    assert raw.modality == "image" and raw.x.shape == (7, 1, 12, 10)
    assert raw.class_names == ["cat", "dog"] and raw.y.tolist().count(1) == 4
    assert raw.x.max() == pytest.approx(1.0)


def test_zip_keeps_rgb(tmp_path):
    path = tmp_path / "imgs.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/0.png", _png((4, 4), "RGB"))
        z.writestr("b/0.png", _png((4, 4), "RGB"))
    assert load_dataset(str(path)).x.shape == (2, 3, 4, 4)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("../evil/0.png", _png((4, 4)), "unsafe path"),
        ("/abs/0.png", _png((4, 4)), "unsafe path"),
        ("cat/notes.txt", b"hello", "not an image"),
        ("cat/broken.png", b"not a png", "can't be decoded"),
        ("loose.png", _png((4, 4)), "class folder"),
    ],
)
def test_zip_rejects_bad_entries(tmp_path, name, data, message):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("dog/0.png", _png((4, 4)))
        z.writestr(name, data)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_target_defaults_to_a_target_named_column_else_the_last(tmp_path):
    # "last" is a measurement, not a running number (which would be an ID: tests/test_data_target.py)
    df = pd.DataFrame({"Y": [0, 1] * 20, "f": range(40), "last": [i * 7 % 13 for i in range(40)]})
    df.to_csv(tmp_path / "a.csv", index=False)
    assert load_dataset(str(tmp_path / "a.csv")).target == "Y"
    df.rename(columns={"Y": "q"}).to_csv(tmp_path / "b.csv", index=False)
    assert load_dataset(str(tmp_path / "b.csv")).target == "last"


def test_target_override_picks_the_named_column(tmp_path):
    _table().to_csv(tmp_path / "t.csv", index=False)
    raw = load_dataset(str(tmp_path / "t.csv"), target="a")
    assert raw.target == "a" and raw.task == "regression" and raw.y.dtype == np.float32
    assert "a" not in raw.feature_names and "label=cat" in raw.feature_names


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["x", "y"] * 50, "classification"),  # text
        ([0, 1, 2, 3] * 25, "classification"),  # few whole numbers
        (list(range(100)), "regression"),  # many whole numbers
        ([0.5, 1.5] * 50, "regression"),  # fractions
        ([True, False] * 50, "classification"),
        (list(range(10)) * 10, "regression"),  # 10 values in 100 rows: over 5 %
        (list(range(10)) * 20, "classification"),
    ],
)
def test_task_inference_rule(tmp_path, values, task):
    f = np.random.default_rng(0).normal(size=len(values))
    pd.DataFrame({"f": f, "target": values}).to_parquet(tmp_path / "t.pq")
    assert load_dataset(str(tmp_path / "t.pq")).task == task


def test_task_override(tmp_path):
    f = np.random.default_rng(0).normal(size=100)
    pd.DataFrame({"f": f, "target": list(range(50)) * 2}).to_csv(tmp_path / "t.csv", index=False)
    raw = load_dataset(str(tmp_path / "t.csv"), task="classification")
    assert raw.task == "classification" and len(raw.class_names) == 50
    pd.DataFrame({"f": f, "target": [0, 1] * 50}).to_csv(tmp_path / "r.csv", index=False)
    raw = load_dataset(str(tmp_path / "r.csv"), task="regression")
    assert raw.task == "regression" and raw.y.dtype == np.float32 and raw.class_names is None


def test_rows_without_a_target_are_dropped_with_a_warning(tmp_path):
    (tmp_path / "t.csv").write_text("f,target\n1,0\n2,\n3,1\n4,0\n")
    raw = load_dataset(str(tmp_path / "t.csv"))
    assert raw.x.shape == (3, 1)
    assert "1 row(s)" in raw.load_warnings[0]["message"]


def _write(tmp_path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (
            lambda p: _write(p, "t.csv", "a,b\n1,2\n3,4\n"),
            {"target": "price"},
            "no target column 'price'",
        ),
        (lambda p: _write(p, "t.csv", "a,b\n1,x\n3,y\n"), {"task": "regression"}, "holds text"),
        (lambda p: _write(p, "t.csv", "a,b\n1,0\ninf,1\n"), {}, "column 'a' holds infinite"),
        (lambda p: _write(p, "t.csv", ""), {}, "empty"),
        (lambda p: _write(p, "t.csv", "a,b\n"), {}, "no rows"),
        (lambda p: _write(p, "t.json", "{}"), {}, "unsupported file type '.json'"),
        (lambda p: str(p / "missing.csv"), {}, "not found"),
        (lambda p: "builtin:nope", {}, "unknown built-in dataset 'nope'"),
        (lambda p: _write(p, "t.csv", "a\n1\n2\n"), {}, "at least one feature column"),
        (lambda p: _write(p, "t.zip", "not a zip"), {}, "not a valid zip"),
        (lambda p: "x.csv", {"task": "guess"}, "task must be one of"),
    ],
)
def test_bad_inputs_raise_data_error_naming_the_problem(tmp_path, make, kwargs, message):
    source = make(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(source, **kwargs)


def test_a_table_whose_only_feature_is_an_id_is_refused_by_name(tmp_path):
    df = pd.DataFrame({"id": [f"u{i}" for i in range(80)], "target": [0, 1] * 40})
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"every feature column was ignored \('id'"):
        load_dataset(str(tmp_path / "t.csv"))


def test_numbers_with_a_text_placeholder_read_it_as_missing(tmp_path):
    vals = [str(i * 7 % 80) for i in range(79)] + ["?"]
    pd.DataFrame({"n": vals, "target": [0, 1] * 40}).to_csv(tmp_path / "t.csv", index=False)
    raw = load_dataset(str(tmp_path / "t.csv"))
    (col,) = raw.columns
    assert col["kind"] == "number" and "'?'" in col["why"]
    assert np.isnan(raw.x[-1, 0]) and raw.x[1, 0] == 7


def test_builtins_load_offline_with_the_right_shapes():
    assert {"digits", "diabetes", "adding"} <= set(BUILTINS)
    digits = load_dataset("builtin:digits")
    assert digits.x.shape == (1797, 1, 8, 8) and digits.modality == "image"
    assert digits.task == "classification" and len(digits.class_names) == 10
    assert digits.x.min() >= 0.0 and digits.x.max() <= 1.0
    diabetes = load_dataset("builtin:diabetes")
    assert diabetes.x.shape == (442, 10) and diabetes.task == "regression"
    cancer = load_dataset("builtin:breast-cancer")
    assert cancer.x.shape == (569, 30) and cancer.class_names == ["malignant", "benign"]


def test_adding_problem_is_deterministic_and_sums_the_marked_values():
    a, b = load_dataset("builtin:adding"), load_dataset("builtin:adding")
    assert a.x.shape == (4000, 100, 2) and a.modality == "sequence" and a.task == "regression"
    np.testing.assert_array_equal(a.x, b.x)
    assert (a.x[:, :, 1].sum(1) == 2).all()
    np.testing.assert_allclose((a.x[:, :, 0] * a.x[:, :, 1]).sum(1), a.y, rtol=1e-5)
    assert load_dataset("builtin:adding-30").x.shape == (4000, 30, 2)
    with pytest.raises(DataError, match="length"):
        load_dataset("builtin:adding-1")


# --- NPZ bounds, checked from the .npy headers before anything is inflated (issue 12, #2, #10)


def _npz_with_header(path, shape, descr="<f8"):
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", buf.getvalue())  # a header that claims far more than the file holds
        z.writestr("y.npy", buf.getvalue())
    return path


def test_an_npz_header_claiming_745_gib_is_refused_before_allocating(tmp_path):
    path = _npz_with_header(tmp_path / "liar.npz", (10**7, 10**4))
    with pytest.raises(DataError, match="MB limit"):
        load_dataset(str(path))


def test_npz_images_over_the_pixel_limit_are_refused(tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((4, 1, 6000, 6000), dtype=np.uint8), y=np.arange(4))
    with pytest.raises(DataError, match="pixels allowed per image"):
        load_dataset(str(path))


def test_a_csv_renamed_npz_gets_a_plain_message_without_numpys_pickle_hint(tmp_path):
    path = tmp_path / "table.npz"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a zip of .npy arrays") as e:
        load_dataset(str(path))
    assert "allow_pickle" not in str(e.value)
