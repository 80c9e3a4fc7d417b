"""Issue 20, §8 "stale labels": the run picker of Run detail and the chips of Compare carry
each run's status; they are drawn with the page, not in its live part, so they must follow the
store when a run changes while the page stays open.

``tick`` does what the browser does every 2 s on a page with live parts: it reruns only the
fragments that asked for it (``st.fragment(run_every=…)``), not the page. AppTest has no
public call for that, so it sends the rerun request the browser would send."""

from __future__ import annotations

import functools

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import local_script_runner as runner

from jobs.store import registry
from jobs.store.db import connect
from tests.test_app import assert_clean, page


@pytest.fixture
def timed(monkeypatch):
    """Records which fragments of the last page run asked to be rerun on a timer."""
    asked: list[str] = []
    parse = runner.parse_tree_from_messages

    def recording(msgs):
        asked[:] = [m.auto_rerun.fragment_id for m in msgs if m.HasField("auto_rerun")]
        return parse(msgs)

    monkeypatch.setattr(runner, "parse_tree_from_messages", recording)
    return asked


def tick(at: AppTest, timed: list[str], monkeypatch) -> None:
    """One timer tick: rerun the fragments that asked for one (none asked: nothing runs)."""
    assert timed, "no part of the page refreshes itself"
    with monkeypatch.context() as m:
        rerun = functools.partial(
            runner.RerunData, fragment_id_queue=list(timed), is_auto_rerun=True
        )
        m.setattr(runner, "RerunData", rerun)
        at.run()
    assert_clean(at)


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


def test_run_pickers_labels_follow_a_run_that_finishes_while_another_is_shown(
    runs, timed, monkeypatch
):
    """The finished run is shown, so its live part does not refresh; the other run's label in
    the picker still must."""
    at = page("run_detail", run_id=runs["done"])
    assert f"#{runs['going']} going · running" in at.selectbox(key="rd_run").options
    registry.finish_run(runs["db"], runs["going"], {"metric": "acc"})
    tick(at, timed, monkeypatch)
    picker = at.selectbox(key="rd_run")
    assert f"#{runs['going']} going · finished" in picker.options
    assert picker.value == runs["done"]  # still the run the user looks at


def test_run_pickers_label_follows_the_shown_run_when_it_finishes(runs, timed, monkeypatch):
    at = page("run_detail", run_id=runs["going"])
    registry.finish_run(runs["db"], runs["going"], {"metric": "acc"})
    tick(at, timed, monkeypatch)
    assert at.selectbox(key="rd_run").options[0] == f"#{runs['going']} going · finished"


def test_compare_chips_follow_the_store(runs, timed, monkeypatch):
    db = runs["db"]
    queued = registry.create_run(db, spec={"train": {"epochs": 3}}, preset="auto", name="later")
    at = page("compare", compare_ids=[runs["done"], queued])
    chips = at.multiselect(key="compare_pick")
    assert chips.value == [runs["done"], queued]
    assert f"#{queued} later · auto · queued" in chips.options
    registry.claim_run(db, queued, worker="w", device="cpu")
    tick(at, timed, monkeypatch)
    assert f"#{queued} later · auto · running" in at.multiselect(key="compare_pick").options
    registry.finish_run(db, queued, {"metric": "acc"})
    registry.finish_run(db, runs["going"], {"metric": "acc"})
    tick(at, timed, monkeypatch)
    chips = at.multiselect(key="compare_pick")
    assert f"#{queued} later · auto · finished" in chips.options
    assert f"#{runs['going']} going · auto · finished" in chips.options
    assert chips.value == [runs["done"], queued]


def test_a_page_whose_runs_are_all_over_does_not_refresh(runs, timed):
    registry.finish_run(runs["db"], runs["going"], {"metric": "acc"})
    page("run_detail", run_id=runs["done"])
    assert timed == []
