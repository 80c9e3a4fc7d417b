"""End to end in a real browser: ``trainboard up`` on a free port with a temporary data
directory, Debian's chromium driven by Playwright. Upload a CSV, queue a run whose LR is cut
early, watch it: the Run detail tiles and the doctor panel change while it runs; when it has
finished, check the loss chart and the LR-cut annotation, switch to 中文 and find the Chinese
label on the chart, and save a screenshot of every page in both languages to ``artifacts/``
(``e2e-en-home.png`` … ``e2e-zh-compare.png``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.queue_helpers import free_port, wait_http

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


def _three_class_csv(path: Path) -> Path:
    # Overlapping classes: validation loss flattens within a few epochs, so the plateau rule
    # (patience 0) cuts the LR early. The income column spans orders of magnitude (T2 report).
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 4)) + y[:, None] * 0.8
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    df["income"] = np.exp(rng.normal(8, 3, n)).round(2)
    df["label"] = np.array(["red", "green", "blue"])[y]
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def server(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    # Every training step takes 0.15 s longer (the reliability suite's fault hook), so the run
    # lasts long enough on any machine to be watched while it runs.
    env = {**os.environ, "TRAINBOARD_HOME": str(home), "TRAINBOARD_FAULT_STEP_DELAY_S": "0.15"}
    env.pop("TRAINBOARD_BROKER_URL", None)
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "up",
            "--port",
            str(port),
            "--home",
            str(home),
            "--headless",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
        yield f"http://127.0.0.1:{port}", home
    finally:
        # `up` stops its children on SIGTERM; the whole group goes if that takes too long.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        print((tmp_path / "up.log").read_text()[-3000:])


# Every page, in navigation order: (URL path, the title it shows in English and in Chinese).
PAGES = {
    "home": ("", "Trainboard", "Trainboard"),
    "datasets": ("datasets", "Datasets", "数据集"),
    "new_run": ("new_run", "New run", "新建运行"),
    "runs": ("runs", "Runs", "运行列表"),
    "run_detail": ("run_detail", "Run detail", "运行详情"),
    "compare": ("compare", "Compare runs", "对比运行"),
}
LIVE = re.compile(r"running · \d+% of the epochs")  # the progress bar, while the run runs
TILES = re.compile(r"(Duration|Progress)\n+([^\n]+)")


def _live(page) -> tuple[bool, tuple, str]:
    """One reading of the Run detail page: whether the run is running, its Duration and
    Progress tiles, and the doctor panel's text (from its heading to the tabs)."""
    text = page.locator("[data-testid='stMain']").inner_text()
    doctor = text.partition("Training doctor")[2].partition("\nConfig\n")[0]
    return bool(LIVE.search(text)), tuple(TILES.findall(text)), doctor


def _shoot(page, url: str, key: str, lang: str) -> Path:
    """Open a page, wait until its title is drawn and Streamlit is idle, save a screenshot."""
    from playwright.sync_api import expect

    path, en, zh = PAGES[key]
    page.goto(f"{url}/{path}")
    expect(page.get_by_role("heading", name=en if lang == "en" else zh).first).to_be_visible()
    # The script has finished and nothing is still a placeholder (a metric tile, a chart).
    expect(page.locator("[data-test-script-state='notRunning']")).to_have_count(1)
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
    page.wait_for_timeout(500)  # charts and tables finish drawing
    shot = ARTIFACTS / f"e2e-{lang}-{key}.png"
    page.screenshot(path=str(shot), full_page=True)
    return shot


def test_upload_queue_watch_lr_cut_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, home = server
    csv = _three_class_csv(tmp_path / "colours.csv")
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page.set_default_timeout(60_000)
        # Assertions retry up to a minute: on busy machines a Streamlit rerun can take seconds.
        expect.set_options(timeout=60_000)
        t0 = time.monotonic()
        try:
            # 1. upload through the Datasets page
            page.goto(f"{url}/datasets")
            page.locator("input[type=file]").set_input_files(str(csv))
            expect(page.get_by_text("Added dataset")).to_be_visible(timeout=90_000)
            expect(page.get_by_text(re.compile("income spans"))).to_be_visible()

            # 2. queue a sutskever run that cuts the LR within a few epochs
            page.goto(f"{url}/new_run")
            preset = page.get_by_test_id("stRadio").filter(has_text="Sutskever default")
            preset.get_by_text("Sutskever default").click()
            expect(page.get_by_text("Sutskever default  ✓ selected")).to_be_visible()
            extra = page.get_by_label(re.compile("More settings"))
            # patience 0 and a 30 % improvement threshold: every epoch after the first that
            # doesn't cut the validation loss by 30 % counts as a plateau, so the first cut
            # (0.1 → 0.05; the LR set, since the preset's follows the batch) comes at epoch 2
            # whatever the random init. No LR floor and no early
            # stop, so it trains all 12 epochs; a T6 band no run stays inside, so the doctor
            # warns in the first epochs and again every 5 epochs (one finding per rule per 5).
            extra.fill(
                "train.epochs=12\nschedule.plateau_patience=0\n"
                "schedule.plateau_threshold=0.3\nschedule.lr_floor=0\n"
                "train.early_stop_patience=1000\ndoctor.ratio_high=0.000001\n"
                "model.hidden=[32]\ntrain.batch_size=32\ntrain.preflight=false\noptim.lr=0.1"
            )
            page.get_by_role("button", name="Queue run").click()
            expect(page.get_by_text(re.compile(r"Queued run: run \d+"))).to_be_visible()
            print(f"[{time.monotonic() - t0:.0f} s] uploaded and queued")

            # 3. watch it: the tiles and the doctor panel change while the run is going
            page.get_by_role("link", name=re.compile("Watch run")).click()
            expect(page.get_by_text(LIVE)).to_be_visible(timeout=120_000)
            seen = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                running, tiles, doctor = _live(page)
                if not running:
                    break
                seen.append((tiles, doctor))
                page.wait_for_timeout(500)
            # (a reading taken while Streamlit swaps elements can miss some: those are skipped)
            readings = [(t, d.count("\n\n⚠️") + d.count("\n\n🛑")) for t, d in seen]
            print(f"[{time.monotonic() - t0:.0f} s] watched: (tiles, findings) {readings}")
            tiles = {t for t, _ in readings if len(t) == 2}
            findings = {n for _, n in readings if n}
            assert len(tiles) >= 2, "the Duration and Progress tiles never changed while it ran"
            assert len(findings) >= 2, "the doctor panel never got a new finding while it ran"
            tile = page.get_by_test_id("stMetric").filter(has_text="Progress")
            expect(tile.get_by_test_id("stMetricValue")).to_have_text("100%", timeout=120_000)
            expect(page.get_by_text("finished", exact=True).first).to_be_visible(timeout=120_000)
            charts = page.locator("[data-testid='stVegaLiteChart']")
            loss = charts.first  # the loss chart comes first, then at least metric and LR
            expect(loss).to_contain_text("Loss (train and validation)")
            expect(charts.nth(2)).to_be_visible()
            # the LR cut: a labelled rule on the loss chart (SVG text) and in the caption below
            expect(loss.locator("text", has_text="LR 0.1 → 0.05")).to_be_visible()
            expect(page.locator("strong", has_text="LR 0.1 → 0.05").first).to_be_visible()
            # 4. every page in English, then switch to 中文 (remembered for the user). The
            # page scrolls inside Streamlit's own container: a tall window shows all of it.
            page.set_viewport_size({"width": 1400, "height": 2400})
            for key in PAGES:
                shots.append(_shoot(page, url, key, "en"))
            page.get_by_test_id("stSidebar").get_by_text("简体中文").click()
            expect(page.get_by_role("heading", name="对比运行")).to_be_visible()

            # 5. every page in Chinese: a new session keeps the choice; the chart's Chinese label
            for key in PAGES:
                shots.append(_shoot(page, url, key, "zh"))
                if key == "run_detail":
                    loss = page.locator("[data-testid='stVegaLiteChart']").first
                    expect(loss).to_contain_text("损失（训练与验证）")
                    expect(loss.locator("text", has_text="学习率 0.1 → 0.05")).to_be_visible()
                    expect(
                        page.locator("strong", has_text="学习率 0.1 → 0.05").first
                    ).to_be_visible()
            print(f"[{time.monotonic() - t0:.0f} s] every page in both languages")
        finally:
            last = ARTIFACTS / "e2e-last.png"
            page.screenshot(path=str(last), full_page=True)
            print("screenshots:", *[s.name for s in shots], last.name)
            browser.close()
    assert len(shots) == 2 * len(PAGES) and all(s.stat().st_size > 10_000 for s in shots)
