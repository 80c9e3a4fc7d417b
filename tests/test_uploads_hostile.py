"""Hostile and broken uploads: each gets its own clear message and leaves nothing behind.

The corpus and the expected messages live in tests/uploads/make_corpus.py (small files are
committed under tests/uploads/corpus/, big ones are generated here)."""

from __future__ import annotations

import pytest

from engine.data import DataError
from jobs.datasets import ingest as datasets
from jobs.store import registry
from jobs.store.db import connect
from tests.reliability import record_upload
from tests.uploads.make_corpus import (
    CORPUS,
    LARGE,
    LARGE_UPLOAD_MB,
    SMALL,
    _good_images,
    _zip,
    write_large,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _assert_no_trace(home, db):
    folder = datasets.datasets_dir(home)
    leftovers = [p.name for p in folder.iterdir()] if folder.exists() else []
    assert leftovers == [], f"files left behind: {leftovers}"
    assert registry.list_datasets(db) == []


def _try(home, path, expected, target):
    db = connect(home / "trainboard.db")
    with path.open("rb") as f, pytest.raises(DataError) as e:
        datasets.ingest(db, f, path.name, target=target, home=home)
    message = str(e.value)
    folder = datasets.datasets_dir(home)
    left = (folder.exists() and any(folder.iterdir())) or bool(registry.list_datasets(db))
    record_upload(path.name, rejected=True, message=message, trace_left=left)
    assert expected.lower() in message.lower(), message
    assert path.name in message or "upload" in message, f"the message names the file: {message}"
    assert "Traceback" not in message and "tmp-" not in message, message
    assert str(home) not in message and "/tmp" not in message, (
        f"no server paths in messages: {message}"
    )
    _assert_no_trace(home, db)


def test_the_corpus_has_at_least_thirty_cases():
    assert len(SMALL) + len(LARGE) >= 30
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(SMALL), (
        "run: python tests/uploads/make_corpus.py"
    )


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_hostile_file_is_rejected_with_its_message(home, name):
    _, expected, target = SMALL[name]
    _try(home, CORPUS / name, expected, target)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_hostile_file_is_rejected_with_its_message(home, tmp_path, monkeypatch, name):
    _, expected, target = LARGE[name]
    import engine.data.loaders as loaders

    # small limits so the big cases stay quick to generate; the checks are the same code (the
    # entry limit through the environment: the check runs in a child process)
    monkeypatch.setattr(datasets, "MAX_UPLOAD_BYTES", LARGE_UPLOAD_MB << 20)
    monkeypatch.setattr(loaders, "MAX_ZIP_FILES", 2_000)  # what the corpus generator reads
    monkeypatch.setenv("TRAINBOARD_MAX_ZIP_FILES", "2000")
    write_large(tmp_path, [name])
    _try(home, tmp_path / name, expected, target)


def test_good_files_next_to_the_corpus_are_accepted(home, tmp_path):
    """The control: the same shapes, well-formed, are accepted (so the checks aren't blanket refusals)."""
    db = connect(home / "trainboard.db")
    ok_csv = tmp_path / "ok.csv"
    ok_csv.write_text("a,b,label\n" + "\n".join(f"{i},{i % 7},{i % 2}" for i in range(40)))
    ok_zip = tmp_path / "ok.zip"
    # Two classes of 5 images: the smallest image set that is not refused as too small (T1).
    images = _good_images()
    ok_zip.write_bytes(
        _zip(images + [(f"{n[:-4]}b.png", data) for n, data in images[:2] + images[3:5]])
    )
    for p in (ok_csv, ok_zip):
        with p.open("rb") as f:
            row = datasets.ingest(db, f, p.name, home=home)
        assert row["sha256"]
    assert len(registry.list_datasets(db)) == 2


# --- the check runs in a child process with limits (issue 12, finding 2) ---------------------


def _parquet_rows(path, rows: int) -> None:
    """A small Parquet file of ``rows`` rows (one small array referenced many times)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 1_000_000
    x = pa.array(np.zeros(n, dtype=np.int8))
    y = pa.array((np.arange(n) % 2).astype(np.int8))
    k = rows // n
    pq.write_table(
        pa.table({"x": pa.chunked_array([x] * k), "label": pa.chunked_array([y] * k)}), path
    )


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_file_that_needs_more_memory_than_the_limit_fails_only_the_child(
    home, tmp_path, monkeypatch
):
    """30 million rows in a 0.4 MB Parquet file pass every bound read from its metadata, and
    need far more than 300 MiB once parsed: the child runs out of its address space, the user
    gets the memory message, and this process (the dashboard's stand-in) does not grow."""
    monkeypatch.setenv("TRAINBOARD_CHECK_MEMORY_MB", "300")
    bomb = tmp_path / "30m_rows_under_a_300_mib_limit.parquet"
    _parquet_rows(bomb, 30_000_000)
    assert bomb.stat().st_size < 1 << 20
    before = _max_rss_mb()
    _try(home, bomb, "needs more memory than the 300 MiB limit while being checked", None)
    assert _max_rss_mb() - before < 50, "the file was parsed in this process"


def test_a_check_that_runs_out_of_cpu_time_is_killed_and_explained(home, tmp_path, monkeypatch):
    """RLIMIT_CPU: with one CPU second, the child is killed by the kernel (SIGXCPU) before it
    finishes a well-formed file, and the message names the limit and its setting. The file is
    within every bound (1M rows × 5 columns) but takes about 5 s of CPU to parse and report."""
    import numpy as np

    monkeypatch.setenv("TRAINBOARD_CHECK_CPU_S", "1")
    ok = tmp_path / "well_formed_under_a_1_s_cpu_limit.csv"
    block = np.random.default_rng(0).random((1000, 4))
    lines = "".join(
        f"{a:.6f},{b:.6f},{c:.6f},{d:.6f},{i % 2}\n" for i, (a, b, c, d) in enumerate(block)
    )
    ok.write_text("a,b,c,d,label\n" + lines * 1000)
    _try(home, ok, "more than the 1 s of CPU time allowed (TRAINBOARD_CHECK_CPU_S", None)


def test_leftover_upload_files_are_swept_but_one_being_checked_is_not(home):
    import fcntl
    import os
    import time

    folder = datasets.datasets_dir(home)
    folder.mkdir(parents=True)
    stale = folder / "tmp-0123456789abcdef.parquet"
    stale.write_bytes(b"left by a dashboard the OOM killer took")
    busy = folder / "tmp-fedcba9876543210.csv"
    busy.write_bytes(b"a,b\n")
    kept = folder / ("0" * 64 + ".csv")
    kept.write_bytes(b"a stored dataset")
    old = time.time() - 3600
    for p in (stale, busy, kept):
        os.utime(p, (old, old))
    with busy.open("rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # an upload being checked right now
        assert datasets.sweep_tmp(home) == [stale.name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([busy.name, kept.name])


_ADD_ALL = """
import contextlib, io, json, sys
from jobs.cli import main
out = {}
for name, target in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        argv = ["datasets", "add", name] + (["--target", target] if target else [])
        out[name] = (main(argv), err.getvalue())
print(json.dumps(out))
"""


def test_datasets_add_rejects_the_whole_corpus_under_a_4_gb_address_space_limit(
    tmp_path, monkeypatch
):
    """The acceptance check of issue 12: `trainboard datasets add` (the same checks as an
    upload) refuses every hostile file, big ones included, with its own clear message, in a
    process whose address space is capped at 4 GiB (ulimit -v), and leaves nothing behind."""
    import json
    import os
    import subprocess
    import sys

    import engine.data.loaders as loaders
    from tests.uploads.make_corpus import write_small

    monkeypatch.setattr(loaders, "MAX_ZIP_FILES", 2_000)  # what the corpus generator reads
    files = tmp_path / "corpus"
    write_small(files)
    write_large(files)
    cases = {**{n: (e, t) for n, (_, e, t) in SMALL.items()}}
    cases.update({n: (e, t) for n, (_, e, t) in LARGE.items()})
    home = tmp_path / "home"
    env = {
        **os.environ,
        "TRAINBOARD_HOME": str(home),
        "TRAINBOARD_MAX_UPLOAD_MB": str(LARGE_UPLOAD_MB),
        "TRAINBOARD_MAX_ZIP_FILES": "2000",
    }
    jobs_arg = json.dumps([[str(files / n), t] for n, (_, t) in sorted(cases.items())])
    proc = subprocess.run(
        ["bash", "-c", f'ulimit -v {4 << 20} && exec "$@"', "bash"]
        + [sys.executable, "-c", _ADD_ALL, jobs_arg],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(cases) >= 45
    for path, (code, err) in results.items():
        name = os.path.basename(path)
        expected = cases[name][0]
        assert code == 2, f"{name} was accepted"
        assert err.startswith("error: ") and expected.lower() in err.lower(), (name, err)
        assert "Traceback" not in err and "tmp-" not in err and str(home) not in err, err
    folder = datasets.datasets_dir(home)
    assert not folder.exists() or list(folder.iterdir()) == []
    assert registry.list_datasets(connect(home / "trainboard.db")) == []
