"""Issue 20, §8 "stale labels": the run picker of Run detail, the chips of Compare and the
run choice of Runs said "running" after the run had finished. In Streamlit 1.67 a select
widget's value travels as its label, so a label that changes while the page is open stays on
screen and comes back as a value that matches no run. The labels therefore hold only what
never changes (id, name, preset); each run's status is shown where the page keeps it current
(Run detail's header badge, the Outcome and Runs tables). ``tests/test_e2e_labels.py`` checks
the same in a real browser."""

from __future__ import annotations

import pytest

from jobs.store import registry
from jobs.store.db import connect
from tests.test_app import assert_clean, page


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A finished run and one that is running."""
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    db = connect()
    done = registry.create_run(db, spec={"train": {"epochs": 3}}, preset="auto", name="done")
    registry.claim_run(db, done, worker="w", device="cpu")
    registry.finish_run(db, done, {"metric": "acc"})
    going = registry.create_run(db, spec={"train": {"epochs": 3}}, preset="auto", name="going")
    registry.claim_run(db, going, worker="w", device="cpu")
    return {"db": db, "done": done, "going": going}


def test_run_pickers_labels_stay_put_when_the_shown_run_finishes(runs):
    at = page("run_detail", run_id=runs["going"])
    picker = at.selectbox(key="rd_run")
    before = list(picker.options)
    assert before[0] == f"#{runs['going']} going" and picker.value == runs["going"]
    assert ":blue-badge[running]" in "".join(m.value for m in at.markdown)
    registry.finish_run(runs["db"], runs["going"], {"metric": "acc"})
    at.run()  # what the live part does once the run is over
    assert_clean(at)
    assert list(at.selectbox(key="rd_run").options) == before
    assert at.selectbox(key="rd_run").value == runs["going"]
    assert ":green-badge[finished]" in "".join(m.value for m in at.markdown)  # the header


def test_compare_chips_stay_put_while_the_outcome_table_follows_the_run(runs):
    at = page("compare", compare_ids=[runs["done"], runs["going"]])
    chips = at.multiselect(key="compare_pick")
    before = list(chips.options)
    assert f"#{runs['going']} going · auto" in before
    assert list(at.dataframe[0].value["status"]) == ["finished", "running"]
    registry.finish_run(runs["db"], runs["going"], {"metric": "acc"})
    at.run()
    assert_clean(at)
    assert list(at.multiselect(key="compare_pick").options) == before
    assert at.multiselect(key="compare_pick").value == [runs["done"], runs["going"]]
    assert list(at.dataframe[0].value["status"]) == ["finished", "finished"]


def test_runs_choice_labels_carry_no_status(runs):
    at = page("runs")
    options = at.multiselect(key="runs_picked").options
    assert set(options) == {f"#{runs['done']} done", f"#{runs['going']} going"}
