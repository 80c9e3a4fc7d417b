"""The beginner's path, timed and counted in a real browser: from `trainboard up` to a finished
run seen on Run detail, with every default left as it is.

    .venv/bin/python bench/beginner.py [--csv FILE] [--quick]

Starts `trainboard up` (the README's command, headless, in a fresh data directory) and drives
Debian's Chromium with Playwright the way a new user would: open the dashboard, go to Datasets,
upload a CSV (scikit-learn's wine table: 178 rows, 13 features, 3 classes, target column
"target"), press "Start a run on this dataset", press "Queue run" (the `auto` preset, nothing
changed), follow "Watch run", and wait until Run detail shows the run finished with its test
score. It prints each step's time since the page first answered and the number of user actions
(clicks and file choices; no keystrokes are needed). The install time of a fresh clone is not
included: `./tb up` prints its install steps, measured in the closing notes from a clean clone.

``--quick`` (a smoke run) takes the same path, which has nothing to repeat or shrink without
changing a default, but gives up sooner on a page that does not come, and prints a note instead
of failing where Chromium or Playwright is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue`: swap it for the repo root.
_HERE = ROOT / "bench"
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from tests.queue_helpers import free_port, wait_http  # noqa: E402  (the browser test's helpers)

CHROMIUM = "/usr/bin/chromium"


def wine_csv(folder: Path) -> Path:
    from sklearn.datasets import load_wine

    path = folder / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: shorter waits")
    args = ap.parse_args()
    if args.quick:
        missing = [] if Path(CHROMIUM).exists() else [CHROMIUM]
        if importlib.util.find_spec("playwright") is None:
            missing.append("the playwright package")
        if missing:
            print(f"skipped: the browser path needs {' and '.join(missing)}")
            return 0
    from playwright.sync_api import expect, sync_playwright

    # ms: how long a page may take to show what the next step needs, and the run to finish
    page_ms, finish_ms = (60_000, 120_000) if args.quick else (120_000, 300_000)
    tmp = Path(tempfile.mkdtemp(prefix="tb-beginner-"))
    csv = args.csv or wine_csv(tmp)
    port = free_port()
    env = {**os.environ, "TRAINBOARD_HOME": str(tmp / "home")}
    env.pop("TRAINBOARD_BROKER_URL", None)
    t_start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "up", "--port", str(port), "--no-browser"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=(tmp / "up.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    actions = 0
    marks: list[tuple[str, float]] = []
    try:
        wait_http(f"{url}/_stcore/health", 120)
        t0 = time.monotonic()
        marks.append(("`trainboard up` answered", t0 - t_start))

        def mark(what: str) -> None:
            marks.append((what, time.monotonic() - t0))

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(page_ms)
            expect.set_options(timeout=page_ms)  # an upload check takes seconds on a busy box
            page.goto(url)  # the address `up` prints
            expect(page.get_by_role("heading", name="Trainboard").first).to_be_visible()
            mark("home page shown")
            page.get_by_role("link", name="Datasets").first.click()
            actions += 1
            page.locator("input[type=file]").set_input_files(str(csv))
            actions += 1
            expect(page.get_by_text(re.compile("Added dataset")).first).to_be_visible()
            mark("wine.csv uploaded and checked")
            page.get_by_role("button", name=re.compile("Start a run on this dataset")).click()
            actions += 1
            page.get_by_role("button", name="Queue run").click()
            actions += 1
            expect(page.get_by_text(re.compile(r"Queued run: run \d+")).first).to_be_visible()
            mark("queued (auto preset, no setting changed)")
            page.get_by_role("link", name=re.compile("Watch run")).click()
            actions += 1
            main = page.locator("[data-testid='stMain']")
            expect(main.get_by_text(re.compile("finished")).first).to_be_visible(timeout=finish_ms)
            expect(main.get_by_text("Test (held out)").first).to_be_visible()
            mark("Run detail shows the run finished")
            text = main.inner_text()
            test = re.search(r"Test \(held out\)\n+([^\n]+)", text)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for what, t in marks:
        print(f"{t:7.1f} s  {what}")
    print(f"\n{actions} actions (clicks and one file choice), 0 keystrokes")
    print(f"page path: {marks[-1][1]:.1f} s from the first page to the finished run")
    print(f"test score on Run detail: {test.group(1) if test else '?'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
