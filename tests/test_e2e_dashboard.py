"""End to end in a real browser: ``trainboard up`` on a free port with a temporary data
directory, Debian's chromium driven by Playwright. Upload a CSV, queue a run whose LR is cut
within a short run, wait for it to finish, check the loss chart and the LR-cut annotation, and
save a screenshot to ``artifacts/``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


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
    port = _free_port()
    home = tmp_path / "home"
    env = {**os.environ, "TRAINBOARD_HOME": str(home)}
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
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 90)
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


def test_upload_queue_watch_lr_cut_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, home = server
    csv = _three_class_csv(tmp_path / "colours.csv")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "e2e-run-detail.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        # Assertions retry up to a minute: on busy machines a Streamlit rerun can take seconds.
        expect.set_options(timeout=60_000)
        try:
            # 1. upload through the Datasets page
            page.goto(f"{url}/datasets")
            page.locator("input[type=file]").set_input_files(str(csv))
            expect(page.get_by_text("Added dataset")).to_be_visible(timeout=90_000)
            expect(page.get_by_text(re.compile("income spans"))).to_be_visible()

            # 2. queue a sutskever run that cuts the LR within a few epochs
            page.goto(f"{url}/new_run")
            extra = page.get_by_label(re.compile("More settings"))
            # patience 0 and a 30 % improvement threshold: every epoch after the first that
            # doesn't cut the validation loss by 30 % counts as a plateau, so the first cut
            # (0.1 → 0.05) comes at epoch 2 whatever the random init.
            extra.fill(
                "train.epochs=5\nschedule.plateau_patience=0\n"
                "schedule.plateau_threshold=0.3\nmodel.hidden=[32]\n"
                "train.batch_size=32\ntrain.preflight=false"
            )
            page.get_by_role("button", name="Queue run").click()
            expect(page.get_by_text(re.compile(r"Queued run: run \d+"))).to_be_visible()

            # 3. watch it: the fragment refreshes until the run ends
            page.get_by_role("link", name=re.compile("Watch run")).click()
            expect(page.get_by_text("finished", exact=True).first).to_be_visible(timeout=180_000)
            charts = page.locator("[data-testid='stVegaLiteChart']")
            loss = charts.first  # the loss chart comes first, then at least metric and LR
            expect(loss).to_contain_text("Loss (train and validation)")
            expect(charts.nth(2)).to_be_visible()
            # the LR cut: a labelled rule on the loss chart (SVG text) and in the caption below
            expect(loss.locator("text", has_text="LR 0.1 → 0.05")).to_be_visible()
            expect(page.locator("strong", has_text="LR 0.1 → 0.05")).to_be_visible()
        finally:
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            browser.close()
