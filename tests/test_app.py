"""Every dashboard page under ``AppTest``, against a real database with real (tiny) runs.

The runs are trained in this process by the real engine with the real ``MetricWriter`` as sink
(``registry.claim_run`` / ``finish_run`` around it), once per module. Submitting and cancelling
need no worker: a submitted run is recorded ``queued`` (the embedded broker just writes a file)
and cancelling a queued run marks it ``cancelled``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from app import charts
from engine.data import DataError
from jobs.datasets import ingest as datasets
from jobs.runs import views
from jobs.store import reader, registry
from jobs.store.db import connect, db_path
from jobs.store.writer import MetricWriter

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
TIMEOUT = 60  # AppTest's per-run timeout; generous for a busy 2-core machine


def _train(db, dataset: dict, preset: str, overrides: dict, name: str) -> int:
    from engine.api import run_training
    from engine.config import resolve_config

    cfg = resolve_config(
        preset, dataset=dataset["path"], target=dataset["target"], overrides=overrides
    )
    run_id = registry.create_run(
        db, spec=cfg.to_dict(), preset=preset, dataset_id=dataset["id"], name=name
    )
    registry.claim_run(db, run_id, worker="test", device="cpu")
    with MetricWriter(db_path(), run_id) as sink:
        result = run_training(cfg, sink=sink, run_dir=views.run_dir(run_id))
    registry.finish_run(db, run_id, result.summary)
    return run_id


FAST = {
    "train.epochs": 4,
    "model.hidden": [16],
    "train.batch_size": 64,
    "train.preflight": False,
    "train.log_every": 2,
    "train.ratio_every": 5,
    "schedule.plateau_patience": 0,
    # A cut unless validation loss falls 60% in an epoch: one cut in 4 epochs on breast-cancer.
    "schedule.plateau_threshold": 0.6,
}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data directory with a dataset, a run whose LR was cut (with clipping), a fixed-LR run
    (plateau marks and a doctor finding), and a queued run."""
    path = tmp_path_factory.mktemp("home")
    old = os.environ.get("TRAINBOARD_HOME")
    os.environ["TRAINBOARD_HOME"] = str(path)
    try:
        db = connect()
        ds = datasets.register_builtin(db, "builtin:breast-cancer")
        cut = _train(db, ds, "sutskever", {**FAST, "train.clip_norm": 1.0}, "lr cuts")
        fixed = _train(db, ds, "sutskever", {**FAST, "schedule.enabled": False}, "fixed lr")
        queued = registry.create_run(
            db, spec={}, preset="quick", dataset_id=ds["id"], name="waiting"
        )
        yield {"path": path, "dataset": ds, "cut": cut, "fixed": fixed, "queued": queued}
    finally:
        if old is None:
            os.environ.pop("TRAINBOARD_HOME", None)
        else:
            os.environ["TRAINBOARD_HOME"] = old


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "empty"))
    return tmp_path / "empty"


def page(name: str, *, locale: str | None = None, **state) -> AppTest:
    """Run the app's entry file, then switch to the page ``name`` (e.g. "runs"); ``locale``:
    the browser's language (e.g. "zh-CN")."""
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    if locale is not None:
        at.context = {"locale": locale}
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if name != "home":
        at.switch_page(f"screens/{name}.py")
        at.run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    # main.py turns page bugs into a message: make sure none of those slipped through
    assert not [e for e in at.error if "Something went wrong" in e.value]


def visible(markdown: str) -> str:
    """What a reader sees of Markdown source whose user text went through ``ui.plain``: the
    backslash escapes gone."""
    return re.sub(r"\\([^\w\s])", r"\1", markdown)


def texts(at: AppTest) -> str:
    return visible(_sources(at))


def _sources(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [
        e.value for kind in ("info", "success", "warning", "error") for e in getattr(at, kind)
    ]
    parts += [f"{m.label}: {m.value}" for m in at.metric] + [h.value for h in at.subheader]
    return "\n".join(parts)


def csv_bytes(rows: int = 300, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)
    df = pd.DataFrame(rng.normal(size=(rows, 3)) + y[:, None], columns=["a", "b", "c"])
    df["income"] = np.exp(rng.normal(8, 3, rows)).round(2)
    df["label"] = np.array(["red", "green", "blue"])[y]
    return df.to_csv(index=False).encode()


def charts_of(at: AppTest) -> list[dict]:
    """The Vega-Lite charts on the page: their spec, with the rows of every dataset (which
    Streamlit ships separately, as Arrow tables) under ``"rows"``."""
    out = []
    for c in at.get("vega_lite_chart"):
        spec = json.loads(c.proto.spec)
        spec["rows"] = [
            row
            for d in c.proto.datasets
            for row in pa.ipc.open_stream(d.data.data).read_pandas().to_dict("records")
        ]
        out.append(spec)
    return out


def chart_datasets(spec: dict) -> list[dict]:
    return spec["rows"]


# --- Home ------------------------------------------------------------------------------------


def test_home_shows_workers_queue_length_and_recent_runs(home):
    db = connect()
    registry.upsert_worker(db, "cpu@test", device="cpu", host="test", status="online")
    at = page("home")
    shown = texts(at)
    assert "Workers online" in shown and "Queued" in shown
    assert "lr cuts" in shown and "fixed lr" in shown  # recent runs, by name
    workers = at.dataframe[0].value
    assert list(workers["name"]) == ["cpu@test"] and workers["state"][0] == "idle"
    assert "Quick start" not in shown  # only for a first-time user


def test_home_for_a_first_time_user_shows_the_quick_start(empty_home):
    at = page("home")
    shown = texts(at)
    assert "Quick start" in shown
    assert "No worker is online" in shown
    assert "No runs yet" in shown


# --- Datasets --------------------------------------------------------------------------------


def test_upload_through_the_file_uploader_adds_a_dataset_with_its_report(empty_home):
    at = page("datasets")
    assert "No datasets yet" in texts(at)
    at.file_uploader(key="upload").set_value(("colours.csv", csv_bytes(), "text/csv"))
    at.run()
    assert_clean(at)
    shown = texts(at)
    assert "Added dataset **colours.csv**" in shown
    assert "column income spans" in shown and "log(1 + x)" in shown  # T2 finding
    assert "only 300 rows" in shown  # T1 finding
    (ds,) = registry.list_datasets(connect())
    assert ds["target"] == "label" and ds["task"] == "classification"
    stored = Path(ds["path"])
    assert stored.name == f"{ds['sha256']}.csv" and stored.is_file()
    assert not list(stored.parent.glob("tmp-*"))


def test_a_bad_upload_shows_a_message_and_leaves_nothing_behind(empty_home):
    at = page("datasets")
    bad = "name,label\n" + "\n".join(f"person{i},{i % 2}" for i in range(80))  # 80 text values
    at.file_uploader(key="upload").set_value(("people.csv", bad.encode(), "text/csv"))
    at.run()
    assert_clean(at)
    errors = [visible(e.value) for e in at.error]
    assert errors and errors[0].startswith("people.csv: every feature column was ignored")
    assert errors[0].count("people.csv") == 1 and "'name'" in errors[0]  # the file named once
    assert registry.list_datasets(connect()) == []
    assert not list((empty_home / "datasets").glob("*"))


def test_a_bundled_sample_is_added_with_one_click_and_the_target_can_be_changed(empty_home):
    at = page("datasets")
    at.button(key="builtin-builtin:diabetes").click()
    at.run()
    assert_clean(at)
    assert "Added **builtin:diabetes**" in texts(at)
    (ds,) = registry.list_datasets(connect())
    assert ds["path"] == "builtin:diabetes" and ds["task"] == "regression"

    at.file_uploader(key="upload").set_value(("colours.csv", csv_bytes(), "text/csv"))
    at.run()
    assert at.selectbox(key="target_pick").value == "label"
    at.selectbox(key="target_pick").set_value("a")  # predict column a instead
    next(b for b in at.button if b.label == "Use this target").click()
    at.run()
    assert_clean(at)
    assert "Target set to **a**" in texts(at)
    targets = [(d["name"], d["target"], d["task"]) for d in registry.list_datasets(connect())]
    assert ("colours.csv", "a", "regression") in targets
    assert ("colours.csv", "label", "classification") in targets


def test_ingest_refuses_unknown_types_and_stores_identical_content_once(empty_home):
    db = connect()
    with pytest.raises(DataError, match="unsupported file type"):
        datasets.ingest(db, b"hello", "notes.docx")
    a = datasets.ingest(db, csv_bytes(), "one.csv")
    b = datasets.ingest(db, csv_bytes(), "two.csv")
    assert a["id"] == b["id"] and len(registry.list_datasets(db)) == 1
    assert not list((empty_home / "datasets").glob("tmp-*"))


# --- New run ---------------------------------------------------------------------------------


def _new_run(home) -> AppTest:
    return page("new_run", new_run_dataset=home["dataset"]["id"])


def test_new_run_shows_preset_cards_with_tip_and_why(home):
    at = _new_run(home)
    assert at.radio(key="nr_preset").value == "auto"  # the default: fitted to the data
    card = at.table[0].value
    assert {"value", "tip", "why"} <= set(card.columns)
    assert "optim.lr" in set(card.index) and "T5" in set(card["tip"])
    # The auto card lists what it derived from this dataset (breast-cancer: 341 training rows)
    assert card.loc["train.batch_size", "value"] == "16"
    assert card.loc["train.batch_size", "why"].startswith("batch 16: 341 training rows")
    assert "Target column: target; task: classification." in texts(at)


def test_new_run_queues_a_run_with_the_preset_and_the_overrides(home):
    db = connect()
    before = registry.count_runs(db)
    at = _new_run(home)
    at.number_input(key="nr_auto_epochs").set_value(7)
    at.text_area(key="nr_extra").set_value("schedule.plateau_patience=2")
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    assert registry.count_runs(db) == before + 1
    run = registry.list_runs(db, limit=1)[0]
    assert f"Queued run: run {run['id']}" in texts(at)
    assert run["status"] == "queued" and run["preset"] == "auto"
    assert run["spec"]["train"]["batch_size"] == 16  # derived from the dataset's report
    assert run["spec"]["train"]["epochs"] == 7
    assert run["spec"]["schedule"]["plateau_patience"] == 2
    assert run["dataset_id"] == home["dataset"]["id"]


def test_new_run_names_each_invalid_field_and_queues_nothing(home):
    db = connect()
    before = registry.count_runs(db)
    at = _new_run(home)
    at.number_input(key="nr_auto_lr").set_value(-1.0)
    at.text_area(key="nr_extra").set_value("optim.colour=blue\nnot an assignment")
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    (err,) = [e.value for e in at.error]
    assert "Nothing was queued" in err
    assert "not an assignment" in err
    at.text_area(key="nr_extra").set_value("")
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    (err,) = [e.value for e in at.error]
    assert "**Learning rate** (optim\\.lr)" in err and "greater than 0" in err
    assert registry.count_runs(db) == before


def test_new_run_refuses_a_data_source_typed_in_the_browser(home):
    """The worker reads only the dataset chosen in the form: `data.dataset=/a/server/file`
    typed under "More settings" is refused by name, and nothing is queued (issue 12, #1)."""
    db = connect()
    before = registry.count_runs(db)
    secret = home["path"] / "server_secrets.csv"
    secret.write_text("password,target\nhunter2,1\n")
    at = _new_run(home)
    at.text_area(key="nr_extra").set_value(f"data.dataset={secret}\ndata.target=password")
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    (err,) = [e.value for e in at.error]
    assert "data\\.dataset" in err and "data\\.target" in err and "chosen above" in err
    assert registry.count_runs(db) == before
    next(b for b in at.button if b.label == "A/B one tip").click()  # the pair path too
    at.run()
    assert "chosen above" in at.error[0].value and registry.count_runs(db) == before


def test_names_typed_by_users_show_as_plain_text_and_are_cut(home):
    """A run name full of Markdown (a remote image, a link, a red notice, LaTeX) is shown
    literally on Home and Run detail, and a 20,000-character name is cut (issue 12, #3, #7)."""
    db = connect()
    evil = (
        "![b](http://127.0.0.1:9/beacon.png) [Session expired](http://x) :red[ADMIN NOTICE] $x^2$"
    )
    rid = registry.create_run(db, spec={}, preset="quick", name=evil)
    long_id = registry.create_run(db, spec={}, preset="quick", name="A" * 20_000)
    home_page = page("home")
    shown = "\n".join(m.value for m in home_page.markdown)
    assert "![b](" not in shown and ":red[" not in shown and "$x^2$" not in shown
    assert "\\!\\[b\\]\\(http\\:" in shown  # escaped: Markdown shows the characters themselves
    assert "A" * 250 not in shown and "A" * 150 in shown
    detail = page("run_detail", run_id=rid)
    header = next(m.value for m in detail.markdown if m.value.startswith("### "))
    assert "![b](" not in header and "\\:red\\[ADMIN NOTICE\\]" in header
    options = page("run_detail", run_id=long_id).selectbox[0].options
    assert max(len(o) for o in options) < 200


def test_new_run_queues_an_ensemble_and_an_ab_pair(home):
    db = connect()
    at = _new_run(home)  # auto on breast-cancer already trains 5 nets (T14): it says so
    assert "Queue an ensemble" not in [b.label for b in at.button]
    assert "this preset already trains 5 nets" in at.number_input(key="nr_members").label
    at.number_input(key="nr_members").set_value(3)
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    run = registry.list_runs(db, limit=1)[0]
    assert run["spec"]["ensemble"]["members"] == 3

    at = _new_run(home)  # a preset of one net keeps the button
    at.radio(key="nr_preset").set_value("sutskever").run()
    at.number_input(key="nr_members").set_value(3)
    next(b for b in at.button if b.label == "Queue an ensemble").click()
    at.run()
    assert_clean(at)
    run = registry.list_runs(db, limit=1)[0]
    assert run["spec"]["ensemble"]["members"] == 3 and run["preset"] == "sutskever"

    at = _new_run(home)
    at.selectbox(key="nr_auto_abtip").set_value("T7")
    at.number_input(key="nr_ab_seeds").set_value(1)  # one pair (5 seeds: tests/test_ab_groups.py)
    next(b for b in at.button if b.label == "A/B one tip").click()
    at.run()
    assert_clean(at)
    off, on = registry.list_runs(db, limit=2)
    assert on["group_id"] == off["group_id"] and on["group_id"].startswith("ab-")
    assert on["spec"]["schedule"]["enabled"] is True
    assert off["spec"]["schedule"]["enabled"] is False
    assert at.session_state["compare_ids"] == [on["id"], off["id"]]
    assert "Queued an A/B pair" in texts(at)


def test_new_run_without_datasets_points_to_the_datasets_page(empty_home):
    at = page("new_run")
    assert "No datasets yet" in texts(at)


# --- Runs ------------------------------------------------------------------------------------


def test_runs_table_lists_runs_and_filters_by_status(home):
    at = page("runs")
    table = at.dataframe[0].value
    assert {
        "status",
        "progress",
        "dataset",
        "preset",
        "best",
        "duration",
        "owner",
        "device",
    } <= set(table.columns)
    cut = table[table["id"] == home["cut"]].iloc[0]
    assert cut["status"] == "finished" and cut["best"].endswith("%")
    assert cut["dataset"] == "builtin:breast-cancer" and cut["progress"] == 1.0
    at.multiselect(key="runs_status").set_value(["finished"])
    at.run()
    assert set(at.dataframe[0].value["status"]) == {"finished"}


def test_runs_page_cancels_a_queued_run(home):
    from jobs.runs.submit import submit

    ds = home["dataset"]
    run_id = submit("quick", ds["path"], target=ds["target"], dataset_id=ds["id"]).run_id
    at = page("runs")
    at.multiselect(key="runs_picked").set_value([run_id])
    at.run()
    next(b for b in at.button if b.label == "Cancel").click()
    at.run()
    assert_clean(at)
    assert registry.get_run(connect(), run_id)["status"] == "cancelled"
    assert f"Run {run_id}: cancelled." in texts(at)


def test_runs_page_compares_selected_runs(home):
    at = page("runs")
    at.multiselect(key="runs_picked").set_value([home["cut"], home["fixed"]])
    at.run()
    next(b for b in at.button if b.label == "Compare").click()
    at.run()
    assert_clean(at)
    assert at.title[0].value == "Compare runs"
    assert at.multiselect(key="compare_pick").value == [home["cut"], home["fixed"]]
    diff = at.dataframe[-1].value  # the settings that differ, below the outcome
    assert "schedule.enabled" in set(diff["setting"])
    assert charts_of(at)


def test_runs_empty_state(empty_home):
    assert "No runs yet" in texts(page("runs"))


# --- Run detail ------------------------------------------------------------------------------


def test_run_detail_draws_every_panel_with_lr_cut_annotations(home):
    at = page("run_detail", run_id=home["cut"])
    specs = charts_of(at)
    titles = [s.get("title") for s in specs]
    assert titles[0] == "Loss (train and validation)"
    assert any("Learning rate" in str(t) for t in titles)
    assert any("Update / weight ratio" in str(t) for t in titles)
    assert any("Gradient norm" in str(t) for t in titles)
    labels = {r.get("label") for r in chart_datasets(specs[0])}
    assert "LR 0.1 → 0.05" in labels  # the plateau cut, drawn as a labelled rule
    assert "LR 0.1 → 0.05" in texts(at)
    ratio = next(s for s in specs if "ratio" in str(s.get("title")))
    assert any(r.get("mid") == 1e-3 for r in chart_datasets(ratio))  # the T6 band
    grad = next(s for s in specs if "Gradient" in str(s.get("title")))
    assert any(r.get("y") == 1.0 for r in chart_datasets(grad))  # the clip bound (T9)
    # Rendering skips Altair's schema validation for speed; the specs must still be valid.
    run = registry.get_run(connect(), home["cut"])
    data = charts.run_chart_data(connect(), home["cut"], spec=run["spec"])
    for chart in charts.run_charts(data).values():
        chart.to_dict(validate=True)
        # tick labels keep 4 significant digits: a flat 44.9% showed 0.4492753744125… (issue 20)
        axes = [
            layer["encoding"]["y"].get("axis")
            for layer in chart.to_dict()["layer"]
            if layer.get("encoding", {}).get("y", {}).get("field") in ("value", "ema")
        ]
        assert axes and all(a == {"format": ".4~g"} for a in axes), axes
    assert [d.label for d in at.get("download_button")][0] == "Resolved config (JSON)"


def test_run_detail_marks_where_a_cut_would_have_helped_and_queues_the_doctors_fix(home):
    db = connect()
    at = page("run_detail", run_id=home["fixed"])
    assert "a cut would have helped here" not in texts(at)  # short label on the chart, not this
    assert "Dashed marks — fixed LR" in texts(at)
    assert "T7" in texts(at)
    fix = next(
        b
        for b in at.button
        if b.label.startswith("Queue a run with this change") and "schedule.enabled=True" in b.label
    )
    fix.click()
    at.run()
    assert_clean(at)
    new = registry.list_runs(db, limit=1)[0]
    assert new["spec"]["schedule"]["enabled"] is True
    assert new["spec"]["train"]["epochs"] == FAST["train.epochs"]  # the rest is the same run
    assert at.session_state["run_id"] == new["id"]


def test_run_detail_of_a_queued_run_says_it_waits_and_can_be_cancelled(home):
    from jobs.runs.submit import submit

    ds = home["dataset"]
    run_id = submit("quick", ds["path"], target=ds["target"], dataset_id=ds["id"]).run_id
    at = page("run_detail", run_id=run_id)
    assert "Queued — waiting for a worker" in texts(at)
    next(b for b in at.button if b.label == "Cancel this run").click()
    at.run()
    assert_clean(at)
    assert registry.get_run(connect(), run_id)["status"] == "cancelled"


def test_run_detail_offers_config_model_checkpoint_and_metrics_downloads(home):
    at = page("run_detail", run_id=home["cut"])
    labels = [d.label for d in at.get("download_button")]
    assert labels[0] == "Resolved config (JSON)"
    assert any("model.pt" in x for x in labels) and any("checkpoint.pt" in x for x in labels)
    assert "Metrics (CSV: key, step, value)" in labels
    # the metrics button's deferred data: the run's points exported into its folder
    path = views.export_metrics_csv(home["cut"])
    exported = pd.read_csv(path)
    assert list(exported.columns) == ["key", "step", "value"]
    assert {"train/loss", "val/loss", "lr"} <= set(exported["key"])


def test_run_detail_with_an_unknown_run_id_falls_back_with_a_message(home):
    at = page("run_detail", run_id=99999)
    assert "There is no run 99999" in texts(at)


# --- Compare ---------------------------------------------------------------------------------


def test_compare_overlays_runs_and_lists_their_differences(home):
    at = page("compare", compare_ids=[home["cut"], home["fixed"]])
    (spec,) = charts_of(at)
    series = {r["series"] for r in chart_datasets(spec) if "series" in r}
    assert series == {f"#{home['cut']} lr cuts", f"#{home['fixed']} fixed lr"}
    # each class's test recall, per run, from what the engine stored (issue 20, §3)
    per_class = at.dataframe[1].value
    assert list(per_class.columns) == ["class", f"run {home['cut']}", f"run {home['fixed']}"]
    assert len(per_class) == 2 and per_class.iloc[0, 1].endswith("%")
    diff = at.dataframe[-1].value  # the settings that differ, below the outcome
    row = diff[diff["setting"] == "schedule.enabled"].iloc[0]
    assert row[f"run {home['cut']}"] == "True" and row[f"run {home['fixed']}"] == "False"


def test_compare_with_fewer_than_two_runs_explains_what_to_do(empty_home):
    assert "Compare needs at least two runs" in texts(page("compare"))


# --- chart data ------------------------------------------------------------------------------


def test_live_refresh_reads_only_new_points_and_matches_a_full_read(home):
    db = connect()
    run_id = registry.create_run(db, spec={}, preset="quick")
    with MetricWriter(db_path(), run_id) as w:
        for s in range(1, 101):
            w.log(s, {"train/loss": 1.0 / s, "lr": 0.1})
    cache = charts.RunCache(run_id)
    first = charts.run_chart_data(db, run_id, cache=cache)
    assert first.points == 200 and first.last_step == 100
    with MetricWriter(db_path(), run_id) as w:
        for s in range(101, 111):
            w.log(s, {"train/loss": 1.0 / s, "lr": 0.05})
        w.event(105, "lr_cut", "cut", {"old_lr": 0.1, "new_lr": 0.05})
    fresh = reader.series(db, run_id, ["train/loss"], since_step=100)["train/loss"]
    assert fresh.step == list(range(101, 111))  # what the refresh reads
    second = charts.run_chart_data(db, run_id, cache=cache)
    full = reader.series(db, run_id, ["train/loss"])["train/loss"]
    assert cache.series["train/loss"].step == full.step
    assert second.points == 220 and list(second.events["label"]) == ["LR 0.1 → 0.05"]


def test_long_series_stay_within_the_point_budget_and_keep_spikes(home):
    db = connect()
    run_id = registry.create_run(db, spec={}, preset="quick")
    with MetricWriter(db_path(), run_id) as w:
        for s in range(50_000):
            w.log(s, {"train/loss": 100.0 if s == 31_337 else 1.0})
    data = charts.run_chart_data(db, run_id, max_points=500)
    frame = data.frames["loss"]
    assert len(frame) <= 500 and frame["downsampled"].all()
    assert frame["value"].max() == 100.0  # the spike survives downsampling
    assert "mark" in json.dumps(charts.run_charts(data)["loss"].to_dict(validate=True))


def test_ema_smoothing_is_debiased_and_skips_nan():
    out = charts.ema(np.array([1.0, np.nan, 3.0]), 0.5)
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    with pytest.raises(ValueError):
        charts.ema(np.array([1.0]), 1.0)


def test_run_detail_of_a_running_run_refreshes_with_only_the_new_points(home):
    db = connect()
    ds = home["dataset"]
    from engine.config import resolve_config

    spec = resolve_config("quick", dataset=ds["path"], target=ds["target"]).to_dict()
    run_id = registry.create_run(db, spec=spec, preset="quick", dataset_id=ds["id"], name="live")
    registry.claim_run(db, run_id, worker="test", device="cpu")
    registry.heartbeat(db, run_id, worker="test", progress=0.25)
    with MetricWriter(db_path(), run_id) as w:
        for s in range(1, 51):
            w.log(s, {"train/loss": 2.0 / s, "lr": 0.1})
    at = page("run_detail", run_id=run_id)
    assert [p.value for p in at.get("progress")] == [25]
    cache = at.session_state[f"chart-cache-{run_id}"]
    assert cache.reads == 1 and cache.series["train/loss"].last_step == 50
    with MetricWriter(db_path(), run_id) as w:
        for s in range(51, 61):
            w.log(s, {"train/loss": 2.0 / s, "lr": 0.05})
        w.event(55, "lr_cut", "validation loss plateaued", {"old_lr": 0.1, "new_lr": 0.05})
    at.run()  # what the fragment's timer does every 2 s
    assert_clean(at)
    cache = at.session_state[f"chart-cache-{run_id}"]
    assert cache.reads == 2 and cache.series["train/loss"].step == list(range(1, 61))
    assert "LR 0.1 → 0.05" in texts(at)
    registry.finish_run(db, run_id, {})
    at.run()
    assert_clean(at)
    assert not at.get("progress")  # finished: no progress bar, no refresh


# --- live pages, readable charts, forms that keep state ("The pages people live in") -----------


def fragment_rerun(at: AppTest) -> None:
    """What a live fragment's 2-second timer does: rerun only the page's fragments. Its tree
    then holds only what the fragments drew (the rest of the page stays as it was)."""
    import functools
    from unittest import mock

    from streamlit.testing.v1 import local_script_runner as lsr

    ids = list(at._fragment_storage._fragments)
    assert ids, "the page has no live fragment"
    data = functools.partial(lsr.RerunData, fragment_id_queue=ids, is_auto_rerun=True)
    with mock.patch.object(lsr, "RerunData", data):
        at.run()
    assert_clean(at)


def _running(home, name: str, progress: float = 0.25) -> int:
    from engine.config import resolve_config

    db = connect()
    ds = home["dataset"]
    spec = resolve_config("quick", dataset=ds["path"], target=ds["target"]).to_dict()
    run_id = registry.create_run(db, spec=spec, preset="quick", dataset_id=ds["id"], name=name)
    registry.claim_run(db, run_id, worker="test", device="cpu")
    registry.heartbeat(db, run_id, worker="test", progress=progress)
    with MetricWriter(db_path(), run_id) as w:
        for s in range(1, 21):
            w.log(s, {"train/loss": 2.0 / s, "lr": 0.1})
    return run_id


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_run_detail_refreshes_tiles_doctor_and_event_log_while_running(home):
    db = connect()
    run_id = _running(home, "live tiles")
    at = page("run_detail", run_id=run_id)
    assert _metrics(at)["Progress"] == "25%"
    # 70 s later: more progress, a doctor warning; only the fragment's timer runs
    db.execute("UPDATE runs SET started_at = ? WHERE id = ?", [time.time() - 70, run_id])
    db.conn.commit()
    registry.heartbeat(db, run_id, worker="test", progress=0.5)
    with MetricWriter(db_path(), run_id) as w:
        w.event(
            20, "doctor", "update/weight ratio 3e-2 is high", {"tip": "T6", "rule": "ratio_high"}
        )
    fragment_rerun(at)
    tiles = _metrics(at)
    assert tiles["Progress"] == "50%"
    assert re.fullmatch(r"1 min 1\d s", tiles["Duration"]), tiles["Duration"]
    assert "update/weight ratio 3e-2 is high" in texts(at)  # the doctor panel
    log = next(d.value for d in at.dataframe if "kind" in d.value.columns)
    assert "doctor" in set(log["kind"])  # the event log
    assert at.get("vega_lite_chart")  # and the charts, as before
    registry.finish_run(db, run_id, {})


def test_the_stopping_notice_stays_while_stopping_and_clears_once_cancelled(home):
    db = connect()
    run_id = _running(home, "stop me")
    at = page("run_detail", run_id=run_id)
    next(b for b in at.button if b.label == "Cancel this run").click()
    at.run()
    assert_clean(at)
    assert registry.get_run(db, run_id)["status"] == "running"  # saving its checkpoint
    assert "Stopping (saving a checkpoint)…" in texts(at)
    fragment_rerun(at)
    assert "Stopping (saving a checkpoint)…" in texts(at)  # the live part says so
    registry.cancel_run(db, run_id)  # the worker stopped
    fragment_rerun(at)  # the fragment sees "cancelled" and redraws the page once
    assert "Stopping" not in texts(at)
    assert ":violet-badge[cancelled]" in texts(at)
    assert not [b for b in at.button if b.label == "Cancel this run"]


def test_runs_home_and_compare_show_live_status(home):
    db = connect()
    run_id = _running(home, "live lists")
    runs = page("runs")
    row = runs.dataframe[0].value.set_index("id").loc[run_id]
    assert row["progress"] == 0.25
    assert runs.multiselect(key="runs_status").placeholder == "(any)"
    home_page = page("home")
    assert not home_page.get("progress")  # the same progress column as on Runs, not st.progress
    compare = page("compare", compare_ids=[run_id, home["cut"]])
    registry.heartbeat(db, run_id, worker="test", progress=0.75)
    fragment_rerun(runs)
    assert runs.dataframe[0].value.set_index("id").loc[run_id]["progress"] == 0.75
    fragment_rerun(home_page)
    progress = [d.value for d in home_page.dataframe if list(d.value.columns) == ["progress"]]
    assert [0.75] in [list(p["progress"]) for p in progress]
    assert _metrics(home_page)["Running"] == "1"
    fragment_rerun(compare)
    outcome = compare.dataframe[0].value.set_index("run")
    assert outcome.loc[f"run {run_id}", "status"] == "running"
    registry.finish_run(db, run_id, {})


def test_workers_show_a_dash_not_none(home):
    db = connect()
    registry.upsert_worker(db, "idle@test", device="cpu", host="test", status="online")
    workers = page("home").dataframe[0].value
    row = workers[workers["name"] == "idle@test"].iloc[0]
    assert row["run"] == "—"
    assert "None" not in workers.astype(str).to_string()


def test_run_selector_keeps_its_choice_when_the_run_list_changes(home):
    db = connect()
    at = page("run_detail", run_id=home["cut"])
    at.selectbox(key="rd_run").set_value(home["fixed"])
    # meanwhile someone queues a run: the selector's list (and labels) change
    registry.create_run(db, spec={}, preset="quick", dataset_id=home["dataset"]["id"], name="x")
    at.run()
    assert_clean(at)
    assert at.selectbox(key="rd_run").value == home["fixed"]
    assert at.session_state["run_id"] == home["fixed"]
    at.run()
    assert at.selectbox(key="rd_run").value == home["fixed"]


def test_run_panels_share_the_step_axis_and_compare_tells_runs_apart(home):
    at = page("run_detail", run_id=home["cut"])
    domains = set()
    for spec in charts_of(at):
        for layer in spec["layer"]:
            x = layer.get("encoding", {}).get("x")
            if x:
                domains.add(json.dumps((x.get("scale") or {}).get("domain")))
    assert len(domains) == 1 and json.loads(domains.pop())[0] == 0
    at = page("compare", compare_ids=[home["cut"], home["fixed"]])
    (spec,) = charts_of(at)
    enc = next(layer["encoding"] for layer in spec["layer"] if "strokeDash" in layer["encoding"])
    assert enc["color"]["scale"]["scheme"] == "tableau10"
    assert enc["color"]["legend"]["labelLimit"] >= 1000
    assert len(enc["strokeDash"]["scale"]["range"]) == 2
    assert enc["strokeDash"]["scale"]["range"][0] != enc["strokeDash"]["scale"]["range"][1]


def test_run_detail_tiles_read_like_people_write_them(home):
    at = page("run_detail", run_id=home["cut"])
    tiles = _metrics(at)
    assert re.fullmatch(r"\d{1,3}(\.\d)?%", tiles["Best validation accuracy"])
    assert re.fullmatch(r"\d+ s|\d+ min \d\d s", tiles["Duration"])


def test_new_run_form_keeps_template_and_shows_values_in_effect(home):
    other = datasets.register_builtin(connect(), "builtin:adding")  # sequence data
    at = _new_run(home)
    at.radio(key="nr_kind").set_value("lstm")
    at.run()
    at.selectbox(key="nr_dataset").set_value(other["id"])
    at.run()
    assert_clean(at)
    assert at.radio(key="nr_kind").value == "lstm"
    at.selectbox(key="nr_dataset").set_value(home["dataset"]["id"])
    at.run()
    at.number_input(key="nr_auto_lr").set_value(0.01)
    at.text_area(key="nr_extra").set_value("not an assignment")  # so nothing is queued
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert_clean(at)
    card = at.table[0].value
    assert card.loc["optim.lr", "value"] == "0.0125"  # auto: 0.1 × 16/128
    assert card.loc["optim.lr", "in effect"] == "0.01"


def test_ensemble_size_follows_the_preset_and_ab_offers_every_tip(home):
    db = connect()
    at = _new_run(home)
    at.radio(key="nr_preset").set_value("ensemble")
    at.run()
    assert_clean(at)
    assert at.number_input(key="nr_members").value == 10
    at.radio(key="nr_preset").set_value("sequence")
    at.run()
    at.selectbox(key="nr_sequence_abtip").set_value("T5")
    at.number_input(key="nr_ab_seeds").set_value(1)
    next(b for b in at.button if b.label == "A/B one tip").click()
    at.run()
    assert_clean(at)
    off, on = registry.list_runs(db, limit=2)
    assert on["name"] == "A/B T5 on" and off["name"] == "A/B T5 off"
    assert on["spec"]["optim"]["name"] == "adam" and off["spec"]["optim"]["name"] == "sgd"
