"""Issue 20, §1: the columns people have. Real public tables that ship with the ``vega_datasets``
package (no download), written to CSV as a beginner's export would be, go through the real
loader, the upload check and the CLI: dates train, IDs and free text are ignored with a reason,
numbers written as text are numbers, and a user's own kinds (``data.columns``) win or are
refused by name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from engine.data import DataError, load_dataset
from engine.data.columns import column_pass

local_data = pytest.importorskip("vega_datasets").local_data


def _cars() -> pd.DataFrame:
    # read the shipped file directly: vega_datasets' own reader passes a keyword pandas
    # deprecates; its Year cells are ISO dates ("1970-01-01"), as a CSV export keeps them
    return pd.read_json(local_data.cars.filepath, dtype=False)


def _kinds(raw) -> dict[str, str]:
    return {c["name"]: c["kind"] for c in raw.columns}


@pytest.fixture(scope="module")
def weather(tmp_path_factory):
    """Seattle's daily weather 2012–2015 (1461 rows): a date column, four measurements and an
    imbalanced label (sun 640, fog 101, drizzle 53, snow 26)."""
    path = tmp_path_factory.mktemp("real") / "seattle-weather.csv"
    df = local_data.seattle_weather()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d")  # as a CSV holds it: text
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cars(tmp_path_factory):
    """406 cars (1970–1982): a free-text name, gaps in two measurements, a year written as a
    date, and a three-valued origin."""
    path = tmp_path_factory.mktemp("real") / "cars.csv"
    df = _cars()
    df.to_csv(path, index=False)
    return path


def test_a_daily_weather_table_with_dates_loads_instead_of_being_refused(weather):
    raw = load_dataset(str(weather))
    assert raw.target == "weather" and raw.task == "classification"
    kinds = _kinds(raw)
    assert kinds["date"] == "date" and kinds["temp_max"] == "number"
    assert {"date.year", "date.days", "date.month.sin", "date.weekday.cos"} <= set(
        raw.feature_names
    )
    col = raw.feature_names.index("date.year")
    assert sorted(set(raw.x[:, col].tolist())) == [2012, 2013, 2014, 2015]
    assert not np.isnan(raw.x).any()
    why = next(c["why"] for c in raw.columns if c["name"] == "date")
    assert "month" in why and "weekday" in why


def test_real_cars_free_text_is_ignored_with_its_reason_and_gaps_stay_missing(cars):
    raw = load_dataset(str(cars), target="Origin")
    kinds = _kinds(raw)
    assert kinds["Name"] in ("text", "id") and kinds["Year"] == "date"
    assert kinds["Horsepower"] == "number" and not any(
        f.startswith("Name") for f in raw.feature_names
    )
    why = next(c["why"] for c in raw.columns if c["name"] == "Name")
    assert "ignored" in why
    hp = raw.feature_names.index("Horsepower")
    assert np.isnan(raw.x[:, hp]).sum() == _cars()["Horsepower"].isna().sum() > 0


def test_the_users_kinds_win_and_a_kind_the_values_cant_have_is_refused_by_name(weather):
    raw = load_dataset(str(weather), columns={"wind": "ignore"})
    assert "wind" not in raw.feature_names and _kinds(raw)["wind"] == "ignore"
    assert next(c for c in raw.columns if c["name"] == "wind")["chosen"]
    with pytest.raises(DataError, match="column 'temp_max' can't be read as dates"):
        load_dataset(str(weather), columns={"temp_max": "date"})
    with pytest.raises(DataError, match="data.columns names 'rainfall', which is not a feature"):
        load_dataset(str(weather), columns={"rainfall": "ignore"})
    with pytest.raises(DataError, match="column 'date' is text with 1461 distinct values"):
        load_dataset(str(weather), columns={"date": "category"})


def test_numbers_written_as_text_yes_no_and_day_first_dates():
    n = 40
    df = pd.DataFrame(
        {
            "price": [f"${1000 + 37 * i:,}" for i in range(n)],
            "share": [f"{i % 10 * 10}%" for i in range(n)],
            "member": ["yes", "no"] * (n // 2),
            "day": [f"{i % 28 + 1:02d}/02/2021" for i in range(n)],
            "row": range(1, n + 1),
        }
    )
    df.loc[df.index >= 28, "day"] = "15/03/2021"  # days above 12 first: day/month order
    cols = {c.name: c for c in column_pass(df, None, "t.csv")}
    assert [cols[k].kind for k in df.columns] == ["number", "number", "boolean", "date", "id"]
    assert cols["day"].dayfirst
    from engine.data.columns import encode

    x, names = encode(df, [cols["price"], cols["share"], cols["member"], cols["day"]], "t.csv")
    assert x[1, 0] == 1037 and x[3, 1] == pytest.approx(0.3) and x[:2, 2].tolist() == [1, 0]
    month = names.index("day.month.sin")
    assert x[-1, month] == pytest.approx(np.sin(2 * np.pi * 2 / 12), abs=1e-6)  # March


def test_a_date_column_mixing_zoned_and_plain_times_or_iso_and_day_first_cells_parses():
    """pandas raised "Mixed timezones detected" on a column with both zoned and plain times
    (the CLI died with a traceback), and its dayfirst read 2020-01-05 as 1 May in a column
    whose other cells are day first. Zoned times go to UTC; year-first cells stay ISO."""
    from engine.data.columns import parse_dates

    n = 30
    df = pd.DataFrame(
        {
            "when": [
                f"2020-01-{i % 28 + 1:02d}T10:00:00+02:00"
                if i % 3 == 0
                else f"2020-01-{i % 28 + 1:02d} 11:00"
                for i in range(n)
            ],
            "x": range(n),
        }
    )
    cols = {c.name: c for c in column_pass(df, None, "t.csv")}
    assert cols["when"].kind == "date"
    got = parse_dates(pd.Series(["2020-01-05T10:00:00+02:00", "2020-01-05 11:00"]), False)
    assert got.tolist() == [pd.Timestamp("2020-01-05 08:00"), pd.Timestamp("2020-01-05 11:00")]
    mixed = pd.Series(["13/01/2020", "2020-01-05", "2020/01/06", "05/02/2020"])
    assert parse_dates(mixed, True).tolist() == [
        pd.Timestamp(d) for d in ("2020-01-13", "2020-01-05", "2020-01-06", "2020-02-05")
    ]


@pytest.mark.parametrize("dayfirst", [False, True])
def test_the_bundles_predict_py_reads_each_date_as_training_read_it(dayfirst):
    """engine.bundle_predict.read_day (predict.py, standard library only) against the
    engine's parse_dates on the forms a date column takes: the same day and time, or both
    none."""
    from engine.bundle_predict import read_day
    from engine.data.columns import parse_dates

    cells = [
        "2020-01-05",
        "2020-01-05T10:30:00",
        "2020-01-05 10:30:00+02:00",
        "2020-01-05T23:30:00-05:00",
        "2020/01/05",
        "2020.01.07",
        "2020-01",
        "05/01/2020",
        "1/5/2020",
        "13/01/2020",
        "7.1.2020",
        "05-01-20",
        "31/12/1999 23:59:59",
        "not a date",
        "2020-13-45",
    ]
    parsed = parse_dates(pd.Series(cells), dayfirst)
    epoch = pd.Timestamp("1970-01-01")
    for cell, p in zip(cells, parsed, strict=True):
        want = None if pd.isna(p) else (p - epoch).total_seconds() / 86400
        assert read_day(cell, dayfirst) == want, cell


def test_the_cli_trains_on_the_dates_table_and_says_what_it_used(weather, tmp_path):
    """``trainboard train`` on the weather CSV as a new user would call it, with the user's own
    kinds through --set: it trains, and the summary records the target and the date features."""
    from tests.test_engine_run import _cli

    out = tmp_path / "out"
    proc = _cli(
        "--dataset",
        str(weather),
        "--set",
        "train.epochs=2",
        "--set",
        'data.columns={"wind": "ignore"}',
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == "weather" and summary["test_metric"] is not None


def test_the_datasets_page_shows_each_kind_and_a_choice_travels_into_the_queued_run(
    weather, tmp_path, monkeypatch
):
    """AppTest, as a beginner clicks: the Datasets page lists every column's kind and why; the
    user ignores ``wind`` there; New run shows the choice and queues a run whose settings carry
    it (``data.columns``), and the worker's loader then leaves the column out."""
    from jobs.datasets import ingest as datasets
    from jobs.store import registry
    from jobs.store.db import connect
    from tests.test_app import assert_clean, page, texts

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    db = connect()
    ds = datasets.ingest(db, weather.read_bytes(), "seattle-weather.csv")
    at = page("datasets", dataset_id=ds["id"])
    assert "What each column is" in texts(at)
    (kinds,) = [d.value for d in at.dataframe if "kind" in d.value.columns]
    shown = dict(zip(kinds["column"], kinds["kind"], strict=True))
    assert shown["date"] == "date" and shown["wind"] == "number"
    assert "weekday" in kinds.set_index("column").loc["date", "why"]
    names = [c["name"] for c in ds["report"]["column_kinds"]]
    at.selectbox(key=f"colkind_datasets_{ds['id']}_{names.index('wind')}").set_value("ignore")
    at.run()
    assert_clean(at)
    (kinds,) = [d.value for d in at.dataframe if "kind" in d.value.columns]
    assert kinds.set_index("column").loc["wind", "kind"] == "ignored"
    before = registry.count_runs(db)
    at.session_state["new_run_dataset"] = ds["id"]
    at.switch_page("screens/new_run.py")
    at.run()
    assert_clean(at)
    assert any("(1 chosen)" in e.label for e in at.expander)
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    assert registry.count_runs(db) == before + 1
    run = registry.list_runs(db)[0]
    assert run["spec"]["data"]["columns"] == {"wind": "ignore"}
    raw = load_dataset(run["spec"]["data"]["dataset"], columns=run["spec"]["data"]["columns"])
    assert "wind" not in raw.feature_names and "temp_max" in raw.feature_names
