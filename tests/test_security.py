"""Issue 18: a member's settings can never point a run at another file, and a worker never opens
a file the store did not register and it did not check. Real SQLite files, a real worker on the
embedded broker, real uploads through the upload check."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.vocab import TERMINAL
from jobs import service
from jobs.datasets import ingest as datasets
from jobs.queue.sends import send_run
from jobs.runs import submit
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import FAST_ENV, TINY, Worker, wait_for

CSV = b"a,b,label\n" + b"".join(
    f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n".encode() for i in range(200)
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    for k, v in FAST_ENV.items():
        monkeypatch.setenv(k, v)
    db = connect()
    ds = datasets.ingest(db, CSV, "mine.csv", owner="bob")
    return {"db": db, "dataset": ds, "tmp": tmp_path}


def _marker(tmp: Path) -> Path:
    """A file outside the data directory, its access time set before its modification time, so
    that any read of it moves the access time (relatime updates it in that case)."""
    path = tmp / "keys.csv"
    path.write_text("apikey,target\nsk-live-123,1\nsk-live-456,0\n" * 20)
    st = path.stat()
    os.utime(path, (st.st_mtime - 3600, st.st_mtime))
    return path


# Every way of naming the data in "More settings" that a member has tried or might try.
def _spellings(secret: str) -> list[dict]:
    return [
        {"data": {"dataset": secret, "target": "apikey"}},  # a whole section
        {"data.dataset": secret},
        {"data.target": "apikey"},
        {"Data.Dataset": secret},  # another casing
        {" data.dataset": secret},  # a space in front
        {"data.dataset ": secret},
        {"data_dataset": secret},
        {"data.task": "regression"},
        {"preset": "quick", "auto": {"rows": 1}},
    ]


def test_every_spelling_of_the_data_is_refused_by_name_on_both_paths(home):
    db, ds = home["db"], home["dataset"]
    secret = str(_marker(home["tmp"]))
    for overrides in _spellings(secret):
        with pytest.raises(service.Refused) as e:
            service.validate_run("quick", ds, overrides)
        assert set(overrides) <= set(e.value.fields), (overrides, e.value.fields)
        with pytest.raises(service.Refused) as e:
            service.queue_ab_pair(db, "quick", ds, "T2", overrides, owner="bob")
        assert set(overrides) <= set(e.value.fields), (overrides, e.value.fields)
    with pytest.raises(service.Refused) as e:
        service.validate_run("quick", ds, {"data": {}})
    assert "chosen above" in e.value.fields["data"]
    assert registry.count_runs(db) == 0
    # What the form offers, and the other settings of the allowlist, still work.
    ok = service.validate_run("quick", ds, {"optim.lr": 0.05, "data.val_fraction": 0.25})
    assert ok.ok
    assert ok.request.spec["data"]["dataset"] == ds["path"]
    assert "data.dataset" not in service.member_fields()
    assert "optim.lr" in service.member_fields()


def test_queue_with_change_and_record_check_the_resolved_data_against_the_store(home):
    db, ds = home["db"], home["dataset"]
    secret = str(_marker(home["tmp"]))
    v = service.validate_run("quick", ds, {"train.epochs": 1})
    run_id = service.queue_run(db, v, dataset_id=ds["id"], owner="bob").run_id
    with pytest.raises(service.Refused) as e:
        service.queue_with_change(db, run_id, {"data.dataset": secret}, owner="bob")
    assert "data.dataset" in e.value.fields
    # A request resolved by any other path, naming another file, is refused at record time.
    forged = submit.RunRequest("quick", {**v.request.spec, "data": {**v.request.spec["data"]}})
    forged.spec["data"]["dataset"] = secret
    with pytest.raises(service.ConfigError) as e:
        submit.record(forged, dataset_id=ds["id"], owner="bob", db=db)
    assert "data.dataset" in e.value.fields
    forged.spec["data"]["dataset"] = ds["path"]
    forged.spec["data"]["target"] = "a"
    with pytest.raises(service.ConfigError):
        submit.record(forged, dataset_id=ds["id"], owner="bob", db=db)
    # No dataset id and no registered file of that name: refused too (the command line).
    with pytest.raises(service.ConfigError) as e:
        submit.submit("quick", secret, db=db)
    assert "not a registered dataset" in str(e.value)
    runs = registry.list_runs(db)
    assert [r["id"] for r in runs] == [run_id]
    assert all(registry.get_run(db, r["id"])["spec"]["data"]["dataset"] == ds["path"] for r in runs)


def _forged_run(db, spec_dataset: str, dataset_id: int) -> int:
    """A run row written straight into the store (an older version, or a hand-edited database),
    naming a file its dataset does not hold."""
    spec = submit.validate("quick", "builtin:digits", overrides=TINY).spec
    spec["data"]["dataset"] = spec_dataset
    spec["data"]["target"] = None
    return registry.create_run(db, spec=spec, preset="quick", dataset_id=dataset_id, owner="bob")


def test_a_worker_never_opens_a_file_outside_the_data_directory(home):
    db, ds = home["db"], home["dataset"]
    marker = _marker(home["tmp"])
    before = marker.stat().st_atime
    # 1. the spec names the marker; its dataset row is a real upload
    a = _forged_run(db, str(marker), ds["id"])
    # 2. the dataset row itself names the marker (a forged registration)
    fake = registry.add_dataset(
        db, name="keys.csv", path=str(marker), sha256="0" * 64, target=None, task="classification"
    )
    b = _forged_run(db, str(marker), fake)
    # 3. a registered file changed on disk after its check
    other = datasets.ingest(db, CSV.replace(b"yes", b"yep"), "other.csv", owner="bob")
    c_spec = submit.validate(
        "quick", other["path"], target=other["target"], overrides=TINY, info=other["report"]
    )
    c = submit.record(c_spec, dataset_id=other["id"], owner="bob", db=db).run_id
    with open(other["path"], "ab") as f:
        f.write(b"1,1,yes\n")
    worker = Worker({**os.environ}, home["tmp"] / "worker.log", "sec@test")
    try:
        worker.wait_ready()
        for rid in (a, b):
            assert send_run(db, rid)

        def over():
            runs = [registry.get_run(db, r) for r in (a, b, c)]
            return runs if all(r["status"] in TERMINAL for r in runs) else None

        ra, rb, rc = wait_for(over, 120, "the three runs to end")
    finally:
        worker.stop()
    assert ra["status"] == "failed" and "another file or target" in ra["error"], ra["error"]
    assert rb["status"] == "failed" and "not in the data directory" in rb["error"], rb["error"]
    assert rc["status"] == "failed" and "changed after it was checked" in rc["error"]
    time.sleep(0.1)
    assert marker.stat().st_atime == before, "the worker read the file outside the data dir"
    assert "sk-live" not in (ra["error"] + rb["error"])


def test_run_names_are_normalised_and_a_long_one_is_refused_with_a_message(home):
    db, ds = home["db"], home["dataset"]
    v = service.validate_run("quick", ds, {})
    sub = service.queue_run(db, v, dataset_id=ds["id"], owner="bob", name="gpj.\u202eexe\u200b ok")
    assert registry.get_run(db, sub.run_id)["name"] == "gpj.exe ok"
    full = "ｒｕｎ " + "x" * 196  # NFKC: full-width letters count as the plain ones
    sub = service.queue_run(db, v, dataset_id=ds["id"], owner="bob", name=full)
    assert registry.get_run(db, sub.run_id)["name"] == "run " + "x" * 196
    for name in ("y" * 201, "z" * 40_000_000):
        with pytest.raises(service.ConfigError) as e:
            service.queue_run(db, v, dataset_id=ds["id"], owner="bob", name=name)
        assert "at most 200" in e.value.fields["name"]
    assert registry.count_runs(db) == 2


def test_the_command_line_refuses_a_100000_character_run_name(home):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "submit",
            "--dataset",
            "builtin:diabetes",
            "--name",
            "n" * 100_000,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "run name is 100,000 characters long; at most 200" in proc.stderr
    assert registry.count_runs(home["db"]) == 0


# --- exports (issue 18, #7) --------------------------------------------------------------------

FORMULAS = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|x",
    "@SUM(A1)",
    "\tx",
    "\rx",
]


def test_csv_safe_neutralises_formulas_and_leaves_numbers_alone():
    for f in FORMULAS:
        assert service.csv_safe(f) == "'" + f
    for keep in ("-0.5", "+3", "-12%", "1e-3", "-1,200.5", "plain", "—", 4, -1.5, None):
        assert service.csv_safe(keep) == keep


def test_the_metrics_export_writes_formula_cells_as_text(home):
    import csv

    from jobs.store.db import db_path
    from jobs.store.writer import MetricWriter

    db = home["db"]
    run_id = registry.create_run(db, spec={}, preset="quick", owner="bob")
    with MetricWriter(db_path(), run_id) as w:
        for i, key in enumerate(FORMULAS[:4]):
            w.log(i, {key: -1.5, "train/loss": 0.5})
    rows = list(csv.reader(service.export_metrics_csv(run_id).open()))
    keys = {r[0] for r in rows[1:]}
    assert keys == {"'" + f for f in FORMULAS[:4]} | {"train/loss"}
    assert {r[2] for r in rows[1:]} == {"-1.5", "0.5"}  # numbers stay numbers


def test_every_table_the_pages_show_has_formula_cells_made_safe(home):
    """The toolbar's "Download as CSV" is written in the browser from the cells shown: the Runs
    table with a run named like a formula shows it with the apostrophe, and no page calls
    st.dataframe around ui.dataframe."""
    from streamlit.testing.v1 import AppTest

    db = home["db"]
    registry.create_run(db, spec={}, preset="quick", name='=HYPERLINK("http://x")', owner="bob")
    at = AppTest.from_file(str(Path(__file__).parents[1] / "app" / "main.py"), default_timeout=60)
    at.run()
    at.switch_page("screens/runs.py").run()
    assert not at.exception
    cells = {str(v) for df in at.dataframe for v in df.value.to_numpy().ravel()}
    assert '\'=HYPERLINK("http://x")' in cells and '=HYPERLINK("http://x")' not in cells
    screens = Path(__file__).parents[1] / "app" / "screens"
    direct = [p.name for p in screens.glob("*.py") if "st.dataframe(" in p.read_text()]
    assert direct == [], direct
