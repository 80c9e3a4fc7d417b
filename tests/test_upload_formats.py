"""Issue 20, §1: Excel (.xlsx, the first sheet, through openpyxl) and JSON Lines uploads, bounded
like every upload. A real public table (Seattle's daily weather, from ``vega_datasets``) saved
as a beginner's spreadsheet goes through the file uploader; hostile workbooks and nested JSON
are refused by name and leave nothing behind."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from jobs.datasets import ingest as datasets
from jobs.store import registry
from jobs.store.db import connect
from tests.test_app import assert_clean, page, texts, visible

local_data = pytest.importorskip("vega_datasets").local_data
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _weather() -> pd.DataFrame:
    df = local_data.seattle_weather()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")
    return df


def _xlsx(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_excel(buf, index=False)
    return buf.getvalue()


def test_an_excel_workbook_uploads_through_the_page_with_its_dates(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    at = page("datasets")
    at.file_uploader(key="upload").set_value(("weather.xlsx", _xlsx(_weather()), XLSX))
    at.run()
    assert_clean(at)
    assert "Added dataset **weather.xlsx**" in texts(at)
    (ds,) = registry.list_datasets(connect())
    assert ds["target"] == "weather" and ds["report"]["rows"] == 1461
    kinds = {c["name"]: c["kind"] for c in ds["report"]["column_kinds"]}
    assert kinds["date"] == "date"


def test_json_lines_upload_and_nested_objects_are_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    lines = _weather().head(300).to_json(orient="records", lines=True).encode()
    ds = datasets.ingest(db, lines, "weather.jsonl")
    assert ds["target"] == "weather" and ds["report"]["rows"] == 300
    nested = b'{"a": {"b": 1}, "label": "x"}\n' * 40
    with pytest.raises(datasets.DataError, match="key 'a' holds a nested object"):
        datasets.ingest(db, nested, "nested.jsonl")
    with pytest.raises(datasets.DataError, match="the first line is not JSON"):
        datasets.ingest(db, b"a,b\n1,2\n", "plain.jsonl")
    assert len(registry.list_datasets(db)) == 1


def test_a_workbook_bomb_is_refused_before_openpyxl_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(
            "xl/worksheets/sheet1.xml", b"<worksheet>" + b" " * (50 << 20) + b"</worksheet>"
        )
    with pytest.raises(datasets.DataError, match="that is how zip bombs look"):
        datasets.ingest(connect(), buf.getvalue(), "bomb.xlsx")
    wide = io.BytesIO()
    with zipfile.ZipFile(wide, "w") as zf:
        zf.writestr("xl/worksheets/sheet1.xml", '<worksheet><dimension ref="A1:ZZZ9"/></worksheet>')
    with pytest.raises(datasets.DataError, match="columns is more than the 5000"):
        datasets.ingest(connect(), wide.getvalue(), "wide.xlsx")
    assert registry.list_datasets(connect()) == []


def test_a_broken_workbook_shows_a_plain_message_on_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    at = page("datasets")
    at.file_uploader(key="upload").set_value(("report.xlsx", b"not a zip at all", XLSX))
    at.run()
    assert_clean(at)
    (error,) = [visible(e.value) for e in at.error]
    assert "report.xlsx: not a valid Excel (.xlsx) workbook." in error


def _bomb_xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(
            "xl/worksheets/sheet1.xml", b"<worksheet>" + b" " * (50 << 20) + b"</worksheet>"
        )
    return buf.getvalue()


def _many_arrays() -> bytes:
    """An .npz with more arrays than any training set has."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(100):
            zf.writestr(f"a{i}.npy", b"")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("bomb.xlsx", _bomb_xlsx(), "upload.xlsx_ratio"),
        ("report.xlsx", b"not a zip at all", "upload.bad_xlsx"),
        ("nested.jsonl", b'{"a": {"b": 1}, "label": "x"}\n' * 40, "upload.jsonl_nested"),
        ("plain.jsonl", b"a,b\n1,2\n", "upload.jsonl_not_json"),
        ("arrays.npz", _many_arrays(), "upload.npz_arrays"),
    ],
)
def test_the_upload_checks_refusals_keep_their_code_across_the_child(
    tmp_path, monkeypatch, name, data, code
):
    """Issue 19: the check runs in a child process; its refusal comes back as a coded message
    (code + params), not English text, so the page can say it in the reader's language."""
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    with pytest.raises(datasets.DataError) as caught:
        datasets.ingest(connect(), data, name)
    message = caught.value.args[0]
    assert getattr(message, "code", None) == code, repr(message)
    assert message.params["file"] == name
    assert str(message).startswith(f"{name}: ")  # the English reads as before


def test_an_upload_refusal_reads_in_traditional_chinese_on_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    at = page("datasets", locale="zh-TW")
    at.file_uploader(key="upload").set_value(("bomb.xlsx", _bomb_xlsx(), XLSX))
    at.run()
    assert_clean(at)
    (error,) = [visible(e.value) for e in at.error]
    assert "bomb.xlsx：該工作簿解壓後膨脹" in error and "壓縮炸彈" in error, error
    assert "zip bombs" not in error
    assert registry.list_datasets(connect()) == []
