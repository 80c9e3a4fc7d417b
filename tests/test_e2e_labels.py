"""Issue 20, §8 "stale labels", in a real Chromium on the dashboard as ``trainboard up`` starts
it. While the page stays open a queued run starts and finishes (this test changes the store,
as a worker would). In Streamlit 1.67 a select widget's value travels as its label: labels that
carried the status stayed "queued" on screen and, sent back, matched no run ("There is no run
#2 later · queued"). Now the labels carry no status, the header badge and the Outcome table
follow the run, and the picks survive the next interaction."""

from __future__ import annotations

import pytest

from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import dashboard_server
from tests.test_upload_guard import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_TEAM", raising=False)
    db = connect()
    done = registry.create_run(db, spec={"train": {"epochs": 3}}, preset="auto", name="done")
    registry.claim_run(db, done, worker="w", device="cpu")
    registry.finish_run(db, done, {"metric": "acc"})
    with dashboard_server(tmp_path / "dashboard.log", {}) as (port, _proc):
        yield {"url": f"http://127.0.0.1:{port}", "db": db, "done": done}


def _queued(db, name: str) -> int:
    return registry.create_run(db, spec={"train": {"epochs": 3}}, preset="auto", name=name)


def _browser(p):
    return p.chromium.launch(
        executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
    )


def test_run_detail_follows_a_run_that_starts_and_finishes(server):
    from playwright.sync_api import expect, sync_playwright

    db = server["db"]
    later = _queued(db, "later")
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1200}, locale="en-US")
        page.goto(f"{server['url']}/run_detail?run={later}")
        main = page.get_by_test_id("stMain")
        expect(main).to_contain_text("queued · —", timeout=60_000)  # the header's badge
        registry.claim_run(db, later, worker="w", device="cpu")
        expect(main).to_contain_text("running · —", timeout=30_000)
        registry.finish_run(db, later, {"metric": "acc"})
        expect(main).to_contain_text("finished · —", timeout=30_000)
        page.get_by_text("Log scale for the loss").click()  # the browser sends its widgets
        expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(1)
        page.wait_for_timeout(1000)
        expect(main).to_contain_text("finished · —")
        expect(main).not_to_contain_text("There is no run")
        expect(page.get_by_role("combobox", name="Run")).to_have_value(f"#{later} later")
        browser.close()


def test_compare_keeps_its_picks_while_a_run_starts_and_finishes(server):
    from playwright.sync_api import expect, sync_playwright

    db = server["db"]
    later = _queued(db, "later")
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1300, "height": 1200}, locale="en-US")
        page.goto(f"{server['url']}/compare")
        chips = page.get_by_test_id("stMultiSelect").first
        expect(chips).to_be_visible(timeout=60_000)
        for label in (f"#{server['done']} done · auto", f"#{later} later · auto"):
            chips.click()
            page.get_by_role("option", name=label).click()
            page.keyboard.press("Escape")
        main = page.get_by_test_id("stMain")
        expect(main).to_contain_text("Outcome", timeout=30_000)
        registry.claim_run(db, later, worker="w", device="cpu")
        page.wait_for_timeout(3000)  # a refresh or two of the live part
        registry.finish_run(db, later, {"metric": "acc"})
        page.wait_for_timeout(3000)
        page.get_by_role("slider").first.focus()  # the browser sends its widgets
        page.keyboard.press("ArrowRight")
        expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(1)
        page.wait_for_timeout(1000)
        expect(main).to_contain_text("Outcome")
        expect(main).not_to_contain_text("Pick two or more runs")
        expect(chips).to_contain_text(f"#{later} later · auto")
        expect(chips).to_contain_text(f"#{server['done']} done · auto")
        browser.close()
