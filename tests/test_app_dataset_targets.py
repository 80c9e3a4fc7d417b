"""Issue 20, §8 "duplicate datasets": a file given another target is one entry on the Datasets
page, its targets listed as versions, while each target stays the dataset row that runs name
(``registry.reads_dataset``; the worker checks it again before it reads the file)."""

from __future__ import annotations

import pytest

from jobs.datasets import ingest as datasets
from jobs.runs import views
from jobs.store import registry
from jobs.store.db import connect
from tests.test_app import assert_clean, csv_bytes, page, texts


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    return tmp_path


def _use_target(at, target: str) -> None:
    at.selectbox(key="target_pick").set_value(target)
    next(b for b in at.button if b.label == "Use this target").click()
    at.run()
    assert_clean(at)


def test_three_files_with_new_targets_are_three_entries_with_their_targets_as_versions(
    empty_home,
):
    db = connect()
    files = [datasets.ingest(db, csv_bytes(seed=i), f"f{i}.csv") for i in range(3)]
    at = page("datasets", dataset_id=files[0]["id"])
    before = list(at.selectbox(key="dataset_pick").options)
    _use_target(at, "a")
    at.selectbox(key="dataset_pick").set_value(files[1]["id"])
    at.run()
    _use_target(at, "b")
    assert len(registry.list_datasets(db)) == 5  # 3 files, 2 more targets: a row each
    picker = at.selectbox(key="dataset_pick")
    # one entry per file, whose label a new target does not change (a picker's label is its
    # value in the browser: one that changed would come back matching no file)
    assert sorted(picker.options) == sorted(before) and len(before) == 3
    assert f"f1.csv · #{files[1]['id']}" in before
    # the file shows its targets; the new one is selected and shown
    version = at.radio(key="dataset_version")
    assert version.value == max(d["id"] for d in registry.list_datasets(db))
    assert "target **b**" in texts(at)
    # going back to the first target shows that row, and adds nothing
    version.set_value(files[1]["id"])
    at.run()
    assert_clean(at)
    assert "target **label**" in texts(at) and len(registry.list_datasets(db)) == 5
    # a third target from there: the version choice follows it
    _use_target(at, "c")
    assert at.radio(key="dataset_version").value == max(d["id"] for d in registry.list_datasets(db))
    assert "target **c**" in texts(at)
    # a file with one target has no version choice
    at.selectbox(key="dataset_pick").set_value(files[2]["id"])
    at.run()
    assert not [r for r in at.radio if r.key == "dataset_version"]


def test_runs_of_an_earlier_target_still_read_their_own_row(empty_home):
    """Why targets are versions, not rewritten in place: the old row is what its runs name."""
    db = connect()
    old = datasets.ingest(db, csv_bytes(), "colours.csv")
    new = datasets.retarget(db, old["id"], "a")
    spec = {"data": {"dataset": old["path"], "target": "label"}}
    assert registry.reads_dataset(spec["data"], registry.get_dataset(db, old["id"]))
    assert not registry.reads_dataset(spec["data"], new)
    (f,) = views.dataset_files(registry.list_datasets(db))
    assert f["id"] == old["id"] and [v["target"] for v in f["versions"]] == ["a", "label"]


def test_the_run_filter_tells_two_targets_of_one_file_apart(empty_home):
    db = connect()
    old = datasets.ingest(db, csv_bytes(), "colours.csv")
    new = datasets.retarget(db, old["id"], "a")
    other = datasets.ingest(db, csv_bytes(seed=1), "other.csv")
    for ds in (old, new, other):
        registry.create_run(db, spec={}, preset="auto", dataset_id=ds["id"], name="r")
    at = page("runs")
    options = at.selectbox(key="runs_dataset").options
    assert f"colours.csv · label · #{old['id']}" in options
    assert f"colours.csv · a · #{new['id']}" in options and "other.csv" in options
    at.selectbox(key="runs_dataset").set_value(new["id"])
    at.run()
    assert_clean(at)
    assert list(at.dataframe[0].value["dataset"]) == ["colours.csv"]
    assert len(at.dataframe[0].value) == 1
