"""Issue 19, #4: a real Chromium per browser language, on the dashboard as ``trainboard up``
starts it. zh-TW sees Home, Datasets and New run in Traditional Chinese, with none of the
characters only Simplified uses; zh-CN sees Simplified; en-US sees English. On a Chinese page
the file uploader's own words are the page's (drawn over Streamlit's English ones). Screenshots
go to ``artifacts/lang-<locale>-<page>.png``."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.datasets import ingest as datasets
from jobs.store.db import connect
from tests.queue_helpers import dashboard_server
from tests.test_upload_guard import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
SIMPLIFIED_ONLY = "资数训练习设这个"
TRADITIONAL_ONLY = "資數訓練習設這個"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

# (URL path, title in en, zh-CN, zh-TW)
PAGES = {
    "home": ("", "Trainboard", "Trainboard", "Trainboard"),
    "datasets": ("datasets", "Datasets", "数据集", "資料集"),
    "new_run": ("new_run", "New run", "新建运行", "新增執行"),
}
CSV = b"a,b,label\n" + b"".join(
    f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n".encode() for i in range(120)
)


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_TEAM", raising=False)
    datasets.ingest(connect(), CSV, "weather.csv")
    with dashboard_server(tmp_path / "dashboard.log", {}) as (port, _proc):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("locale", ["zh-TW", "zh-CN", "en-US"])
def test_each_browser_language_sees_its_own_script(server, locale):
    from playwright.sync_api import expect, sync_playwright

    column = {"en-US": 1, "zh-CN": 2, "zh-TW": 3}[locale]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1300, "height": 1400}, locale=locale)
        for key, titles in PAGES.items():
            page.goto(f"{server}/{titles[0]}")
            expect(page.get_by_role("heading", name=titles[column]).first).to_be_visible(
                timeout=60_000
            )
            expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(1)
            page.wait_for_timeout(300)
            text = page.locator("[data-testid='stMain']").inner_text()
            text += page.get_by_test_id("stSidebar").inner_text()
            page.screenshot(path=str(ARTIFACTS / f"lang-{locale}-{key}.png"), full_page=True)
            if locale == "zh-TW":
                assert not [c for c in SIMPLIFIED_ONLY if c in text], (key, text[:2000])
                assert any(c in text for c in TRADITIONAL_ONLY), key
            elif locale == "zh-CN":
                assert any(c in text for c in SIMPLIFIED_ONLY), key
                assert not [c for c in "資數訓練習這" if c in text], key
            else:
                assert "Datasets" in text and not any(c in text for c in SIMPLIFIED_ONLY)
            if key == "datasets":
                zone = page.get_by_test_id("stFileUploaderDropzone")
                limit = zone.locator("[data-testid='stFileUploaderDropzoneInstructions'] span")
                button = zone.locator("button [data-testid='stMarkdownContainer'] p")
                shown = [
                    e.first.evaluate("e => getComputedStyle(e, '::after').content")
                    for e in (limit, button)
                ]
                want = {
                    "zh-TW": ["每個檔案不超過", "上傳"],
                    "zh-CN": ["每个文件不超过", "上传"],
                }.get(locale)
                if want:
                    assert all(w in s for w, s in zip(want, shown, strict=True)), shown
                else:
                    assert all(s in ("none", "normal", "") for s in shown), shown
        browser.close()


def test_a_language_picked_in_one_browser_stays_there_and_a_new_browser_follows_its_own(server):
    """Issue 19, #4: a choice made in this browser wins over the browser's language; a new
    browser follows its own language until its user chooses. Two Chromium profiles (browser
    contexts, each with its own cookies), both set to zh-TW."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )

        def open_home(context):
            page = context.new_page()
            page.goto(f"{server}/datasets")
            expect(page.get_by_test_id("stSidebar")).to_be_visible(timeout=60_000)
            expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(
                1, timeout=60_000
            )
            return page

        first = browser.new_context(locale="zh-TW")
        page = open_home(first)
        expect(page.get_by_role("heading", name="資料集").first).to_be_visible(timeout=60_000)
        (cookie,) = [c for c in first.cookies() if c["name"] == "tb_browser"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.get_by_test_id("stSidebar").get_by_text("English", exact=True).click()
        expect(page.get_by_role("heading", name="Datasets").first).to_be_visible(timeout=60_000)
        page.close()
        again = open_home(first)  # a new session in the same browser: its pick wins
        expect(again.get_by_role("heading", name="Datasets").first).to_be_visible(timeout=60_000)
        other = open_home(browser.new_context(locale="zh-TW"))  # a new browser: its own
        expect(other.get_by_role("heading", name="資料集").first).to_be_visible(timeout=60_000)
        other_cookie = [c for c in other.context.cookies() if c["name"] == "tb_browser"]
        assert other_cookie and other_cookie[0]["value"] != cookie["value"]
        browser.close()
