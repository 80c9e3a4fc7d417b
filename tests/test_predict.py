"""Issue 21, predictions in the product: ``trainboard predict`` and the Predict page on a run the
queue trained. In a real browser: upload a CSV, see the predictions, download them, and get the
very bytes ``trainboard predict`` writes; a file with a missing column, an unseen category and
an out-of-range value gets the three messages and nothing is written or kept. Team mode: a
member predicts only with their own runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs import service
from jobs.people import auth
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import free_port, wait_http
from tests.test_e2e_dashboard import CHROMIUM, LAUNCH_ARGS, ROOT


def _table(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Numbers, a text category and a date, three classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    df = pd.DataFrame(
        {
            "size": rng.normal(size=n) + y,
            "weight": rng.normal(size=n) * 2 - y,
            "colour": np.array(["red", "green", "blue"])[(y + rng.integers(0, 2, n)) % 3],
            "day": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "label": np.array(["low", "mid", "high"])[y],
        }
    )
    df.to_csv(path, index=False)
    return path


def _cli(home: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINBOARD_HOME": str(home)}
    env.pop("TRAINBOARD_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_member_predicts_only_with_their_own_runs(tmp_path) -> None:
    db = connect(tmp_path / "t.db")
    run_id = registry.create_run(db, spec={"data": {}}, preset="quick", owner="ada")
    source = _table(tmp_path / "new.csv", n=10)
    bob = {"name": "bob", "is_admin": False}
    with pytest.raises(auth.NotAllowed) as e:
        service.predict_file(db, run_id, source, out=tmp_path / "out.csv", user=bob)
    assert e.value.code == "predict.not_yours"
    # the admin and the owner get past the check (to the missing bundle: nothing trained here)
    for user in ({"name": "root", "is_admin": True}, {"name": "ada", "is_admin": False}):
        with pytest.raises(service.DataError) as e:
            service.predict_file(db, run_id, source, out=tmp_path / "out.csv", user=user)
        assert e.value.code == "predict.no_bundle"
    assert not (tmp_path / "out.csv").exists()


@pytest.fixture
def server(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    env = {**os.environ, "TRAINBOARD_HOME": str(home)}
    env.pop("TRAINBOARD_BROKER_URL", None)
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "up", "--port", str(port), "--home", str(home)]
        + ["--headless"],
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
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        print((tmp_path / "up.log").read_text()[-3000:])


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_predict_page_and_cli_give_the_same_file_in_a_real_browser(server, tmp_path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, home = server
    table = _table(tmp_path / "shapes.csv")
    done = _cli(
        home,
        "submit",
        "--dataset",
        str(table),
        "--target",
        "label",
        "--preset",
        "quick",
        "--set",
        "train.epochs=4",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = int(re.search(r"run (\d+) queued", done.stdout).group(1))
    summary = registry.get_run(connect(home / "trainboard.db"), run_id)["summary"]
    assert summary["bundle"]["ok"], summary["bundle"]

    new = pd.read_csv(table).sample(40, random_state=1)
    good = tmp_path / "new rows.csv"
    new.to_csv(good, index=False)
    bad_frame = new.head(5).drop(columns=["weight"])
    bad_frame.loc[bad_frame.index[0], "colour"] = "purple"
    bad_frame.loc[bad_frame.index[1], "size"] = 1e6
    bad = tmp_path / "bad.csv"
    bad_frame.to_csv(bad, index=False)

    cli_out = tmp_path / "cli.csv"
    done = _cli(home, "predict", str(run_id), str(good), "-o", str(cli_out))
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stderr
    refused = _cli(home, "predict", str(run_id), str(bad), "-o", str(tmp_path / "no.csv"))
    assert refused.returncode == 2
    assert "lacks 1 column(s) the model needs: weight" in refused.stderr
    assert "category not seen in training (colour)" in refused.stderr
    assert "outside the range seen in training (size)" in refused.stderr
    assert not (tmp_path / "no.csv").exists()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        try:
            # Run detail says the bundle was checked, and its Predict button opens the page
            page.goto(f"{url}/run_detail?run={run_id}")
            rows = summary["test_rows"]
            expect(page.get_by_text(f"Bundle checked on {rows} test rows")).to_be_visible()
            page.get_by_role("button", name="Predict").click()
            expect(page.get_by_role("heading", name="Predict")).to_be_visible()

            # the refused file: three messages, nothing written or kept
            page.locator("input[type=file]").set_input_files(str(bad))
            expect(page.get_by_text(re.compile("lacks 1 column.*weight"))).to_be_visible()
            expect(page.get_by_text(re.compile(r"category not seen in training \(colour\)")))
            expect(page.get_by_text(re.compile(r"outside the range seen in training \(size\)")))
            assert not page.get_by_role("button", name=re.compile("Download all")).count()
            assert list((home / "predictions").iterdir()) == []

            # the good file: the first rows with predictions, and the whole file to download
            page.locator("input[type=file]").set_input_files(str(good))
            expect(page.get_by_text("40 rows predicted; the first 20:")).to_be_visible()
            expect(page.get_by_text(re.compile("score on the file's label column"))).to_be_visible()
            with page.expect_download() as dl:
                page.get_by_role("button", name="Download all 40 rows").click()
            page_out = tmp_path / "page.csv"
            dl.value.save_as(page_out)
        finally:
            browser.close()
    assert page_out.read_bytes() == cli_out.read_bytes()
    scored = pd.read_csv(page_out)
    assert {"prediction", "prob_low", "prob_mid", "prob_high", "flags"} <= set(scored.columns)
    assert len(scored) == 40


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory) -> tuple[Path, object, object]:
    from tests.real_tables import export_tables
    from tests.test_bundle import train_run

    tables = export_tables(tmp_path_factory.mktemp("tables"))
    if "penguins" not in tables:
        pytest.skip("palmerpenguins is not installed (the test extra)")
    run_dir = tmp_path_factory.mktemp("penguins-run")
    summary, _sink, raw, data = train_run(tables, "penguins", "quick", [], run_dir)
    assert summary["bundle"]["ok"]
    return run_dir, raw, data


def test_an_xlsx_file_gets_the_same_predictions_as_its_csv(penguins_run, tmp_path) -> None:
    from jobs.runs import predict

    run_dir, raw, data = penguins_run
    frame = raw.frame.iloc[data.rows["test"]]
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_excel(tmp_path / "rows.xlsx", index=False)
    bundle = predict.bundle_folder(run_dir)
    a = predict.predict(bundle, tmp_path / "rows.csv", "rows.csv", tmp_path / "a.csv")
    b = predict.predict(bundle, tmp_path / "rows.xlsx", "rows.xlsx", tmp_path / "b.csv")
    assert not a.refused and not b.refused and a.rows == b.rows == len(frame)
    pa, pb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert pa["prediction"].tolist() == pb["prediction"].tolist()
    assert pa["flags"].fillna("").tolist() == pb["flags"].fillna("").tolist()
    assert str(a.score) == str(b.score)


def test_a_file_past_the_time_limit_is_stopped_and_nothing_is_kept(penguins_run, tmp_path) -> None:
    from jobs.runs import predict

    run_dir, raw, _data = penguins_run
    raw.frame.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out" / "scored.csv"
    out.parent.mkdir()
    with pytest.raises(service.DataError) as e:
        predict.predict(run_dir / "bundle", tmp_path / "rows.csv", "rows.csv", out, time_limit_s=0)
    assert e.value.code == "predict.too_slow"
    assert list(out.parent.iterdir()) == []


def test_a_file_type_predictions_do_not_read_is_refused(penguins_run, tmp_path) -> None:
    source = tmp_path / "rows.parquet"
    source.write_bytes(b"PAR1")
    with pytest.raises(service.DataError) as e:
        service.predict_file(connect(tmp_path / "t.db"), penguins_run[0], source)
    assert e.value.code == "predict.file_type"
