"""Workers on other hosts, store side: tokens, the spool, and exactly-once ingest.

Real SQLite files in tmp_path (the server's store and a worker's spool), the real registry and
the real run channel; no HTTP here (tests/test_remote_http.py has the server)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jobs.remote import ingest, tokens, wire
from jobs.remote.channel import RemoteChannel
from jobs.remote.ingest import Ingest, Refused
from jobs.remote.spool import Spool
from jobs.store import registry
from jobs.store.db import connect, db_path


@pytest.fixture
def server(tmp_path, monkeypatch):
    home = tmp_path / "server"
    monkeypatch.setenv("TRAINBOARD_HOME", str(home))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    db = connect()
    yield db
    db.close()


def _run(db, name="r") -> int:
    return registry.create_run(
        db, spec={"data": {"dataset": "builtin:digits"}}, preset="t", name=name
    )


def _hand_out(db, worker_home, worker="gpu-box") -> tuple[int, int]:
    run_id = _run(db)
    got = ingest.claim(db, worker, run_id, slot=worker, device="cpu")
    assert got["run_id"] == run_id and got["attempt"] == 1
    Spool(worker_home).start_run(run_id, got["attempt"], got)
    return run_id, got["attempt"]


def test_token_is_shown_once_and_stored_only_as_its_hash(server):
    token = tokens.create(server, "gpu-box")
    assert token.startswith("tbw_") and len(token) > 40
    assert tokens.authenticate(server, token) == "gpu-box"
    server.conn.commit()
    raw = db_path().read_bytes() + (
        db_path().with_name("trainboard.db-wal").read_bytes()
        if db_path().with_name("trainboard.db-wal").exists()
        else b""
    )
    assert token.encode() not in raw
    assert [t["name"] for t in tokens.list_tokens(server)] == ["gpu-box"]
    assert "token_hash" not in tokens.list_tokens(server)[0]


@pytest.mark.parametrize(
    "presented",
    ["", "tbw_forged-but-well-formed-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x" * 10_000, "Bearer"],
)
def test_forged_or_malformed_tokens_name_no_worker(server, presented):
    tokens.create(server, "gpu-box")
    assert tokens.authenticate(server, presented) is None


def test_revoked_token_is_refused_and_its_running_run_is_handed_back(server, tmp_path):
    token = tokens.create(server, "gpu-box")
    run_id, _ = _hand_out(server, tmp_path / "w")
    assert registry.get_run(server, run_id)["status"] == "running"
    assert tokens.revoke(server, "gpu-box") == [run_id]
    assert tokens.authenticate(server, token) is None
    run = registry.get_run(server, run_id)
    assert run["status"] == "queued" and run["worker"] is None
    with pytest.raises(tokens.TokenError):
        tokens.revoke(server, "gpu-box")


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 64, "a/b"])
def test_token_names_are_checked(server, name):
    with pytest.raises(tokens.TokenError):
        tokens.create(server, name)


def _log(channel: RemoteChannel, steps: range) -> None:
    for step in steps:
        channel.log(step, {"train/loss": 1.0 / (step + 1), "lr": 0.1})
        if step % 50 == 0:
            channel.event(step, "note", f"at {step}")


def _chunks(spool: Spool) -> list[wire.Chunk]:
    return [wire.decode(body) for *_, body in spool.pending(10**9)]


def _counts(db, run_id):
    points = db.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone()[0]
    events = db.execute("SELECT count(*) FROM events WHERE run_id = ?", [run_id]).fetchone()[0]
    return points, events


def test_every_record_is_written_once_however_often_it_is_sent(server, tmp_path):
    home = tmp_path / "w"
    run_id, attempt = _hand_out(server, home)
    with RemoteChannel(run_id, home=home) as ch:
        for start in range(0, 1200, 300):  # one chunk each
            _log(ch, range(start, start + 300))
            ch.flush()
    spool = Spool(home)
    chunks = _chunks(spool)
    assert len(chunks) >= 4  # at least one per flush (the timer may cut more)
    seqs = [(c.first, c.last) for c in chunks]
    assert seqs[0][0] == 1 and all(b[0] == a[1] + 1 for a, b in zip(seqs, seqs[1:], strict=False))
    ing = Ingest()
    first = ing.apply(server, "gpu-box", chunks[:2])
    assert first["acks"] == [[run_id, attempt, chunks[1].last]]
    # the ack was lost: everything is sent again, with the rest
    again = ing.apply(server, "gpu-box", chunks)
    assert again["acks"] == [[run_id, attempt, chunks[-1].last]]
    ing.apply(server, "gpu-box", chunks)  # and once more
    assert _counts(server, run_id) == (2 * 1200, 24)
    # downsampled buckets counted each point once (a replay would inflate n)
    n = server.execute(
        "SELECT sum(n) FROM metrics_ds WHERE run_id = ? AND level = 1", [run_id]
    ).fetchone()[0]
    assert n == 2 * 1200
    steps = [
        s
        for (s,) in server.execute(
            "SELECT step FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
            "WHERE run_id = ? AND k.name = 'lr' ORDER BY step",
            [run_id],
        )
    ]
    assert steps == list(range(1200))
    spool.ack(run_id, attempt, ingest.hwm(server, run_id, attempt))
    assert spool.backlog() == (0, 0, 0.0)


def test_a_gap_is_refused_and_a_stranger_cannot_write(server, tmp_path):
    home = tmp_path / "w"
    tokens.create(server, "other")
    run_id, attempt = _hand_out(server, home)
    with RemoteChannel(run_id, home=home) as ch:
        for start in range(0, 300, 100):
            _log(ch, range(start, start + 100))
            ch.flush()
    chunks = _chunks(Spool(home))
    out = Ingest().apply(server, "gpu-box", chunks[1:])
    assert out["acks"] == [] and out["refused"][0][2] == 409
    out = Ingest().apply(server, "other", chunks)
    assert out["acks"] == [] and out["refused"][0][2] == 403
    assert _counts(server, run_id) == (0, 0)
    # a slot of the same worker may ("gpu-box/cpu2"), another worker's name may not
    with pytest.raises(Refused):
        ingest.heartbeat(server, "gpu-box", run_id, slot="other", attempt=attempt, progress=0.5)


def test_outcome_is_recorded_once_after_the_points(server, tmp_path):
    home = tmp_path / "w"
    run_id, attempt = _hand_out(server, home)
    with RemoteChannel(run_id, home=home) as ch:
        _log(ch, range(10))
        ch.record("finished", summary={"best": 1.0})
    chunks = _chunks(Spool(home))
    assert chunks[-1].outcome["status"] == "finished" and chunks[-1].points == 0
    ing = Ingest()
    ing.apply(server, "gpu-box", chunks)
    run = registry.get_run(server, run_id)
    assert run["status"] == "finished" and run["summary"] == {"best": 1.0}
    assert ing.apply(server, "gpu-box", chunks)["acks"][0][2] == chunks[-1].last


def test_a_late_attempt_cannot_record_over_the_new_holder(server, tmp_path):
    home = tmp_path / "w"
    run_id, attempt = _hand_out(server, home)
    with RemoteChannel(run_id, home=home) as ch:
        _log(ch, range(10))
        ch.record("failed", error="boom")
    registry.mark_lost(server, run_id, "stale")
    second = ingest.claim(server, "gpu-box-2", run_id, slot="gpu-box-2", device="cpu")
    assert second["attempt"] == 2
    Ingest().apply(server, "gpu-box", _chunks(Spool(home)))
    run = registry.get_run(server, run_id)
    assert run["status"] == "running" and run["worker"] == "gpu-box-2"
    assert _counts(server, run_id)[0] == 20  # its points are history all the same


def test_hostile_bodies_are_refused_before_allocation():
    c = wire.Chunk(
        1, 1, 1, 1, keys=["a"], key_idx=np.zeros(2, np.int32), steps=np.arange(2), values=np.ones(2)
    )
    good = wire.encode(c)
    assert wire.decode(good).points == 2
    header_len = int.from_bytes(good[:4], "little")
    bad = [
        (2**31).to_bytes(4, "little") + good[4:],  # header length past the body
        good[:-8],  # fewer bytes than the points it claims
        good[:4] + good[4 : 4 + header_len].replace(b'"n": 2', b'"n": 9') + good[4 + header_len :],
        wire.encode(
            wire.Chunk(
                1,
                1,
                1,
                1,
                keys=["a"],
                key_idx=np.array([3], np.int32),
                steps=np.arange(1),
                values=np.ones(1),
            )
        ),
        wire.encode(wire.Chunk(1, 1, 5, 1)),  # last before first
    ]
    for body in bad:
        with pytest.raises(wire.WireError):
            wire.decode(body)
    with pytest.raises(wire.WireError):
        wire.unframe(b"\xff\xff\xff\x7f" + good)


def test_spool_survives_the_run_process_and_continues_its_numbering(server, tmp_path):
    home = tmp_path / "w"
    run_id, attempt = _hand_out(server, home)
    with RemoteChannel(run_id, home=home) as ch:
        _log(ch, range(5))
    with RemoteChannel(run_id, home=home) as ch:  # the run process started again
        _log(ch, range(5, 10))
    chunks = _chunks(Spool(home))
    assert [c.first for c in chunks] == [1, 7]  # 5 logs + 1 event, then on from 7
    assert json.loads(json.dumps(chunks[0].events))[0][1] == "note"
    assert os.path.exists(home / "spool.db")


def test_workers_page_and_run_detail_show_a_remote_workers_backlog(server, tmp_path):
    from jobs.runs import views

    run_id, _ = _hand_out(server, tmp_path / "w")
    report = {
        "name": "gpu-box",
        "host": "gpu-host-7",
        "device": "cuda:0",
        "queue": "gpu",
        "current_run": run_id,
        "status": "online",
    }
    ingest.presence(server, "gpu-box", {**report, "backlog": 1234, "lag_s": 4.26})
    row = next(w for w in views.home_summary(server)["workers"] if w["name"] == "gpu-box")
    assert (row["host"], row["device"], row["backlog"], row["lag"]) == (
        "gpu-host-7",
        "cuda:0",
        1234,
        4.3,
    )
    assert views.run_detail(server, run_id)["row"]["catching_up"] is True
    ingest.presence(server, "gpu-box", {**report, "backlog": 0, "lag_s": 0})
    assert views.run_detail(server, run_id)["row"]["catching_up"] is False
    with pytest.raises(Refused):  # a token names one worker: it cannot report for another
        ingest.presence(server, "gpu-box", {**report, "name": "someone-else"})


def test_the_pages_show_the_remote_worker_and_the_catching_up_badge(server, tmp_path):
    from tests.test_app import page, texts

    run_id, _ = _hand_out(server, tmp_path / "w")
    report = {
        "name": "gpu-box",
        "host": "gpu-host-7",
        "device": "cuda:0",
        "queue": "gpu",
        "current_run": run_id,
        "status": "online",
    }
    ingest.presence(server, "gpu-box", {**report, "backlog": 1234, "lag_s": 4.26})
    at = page("home")
    workers = at.dataframe[0].value
    assert list(workers["host"]) == ["gpu-host-7"] and list(workers["backlog"]) == [1234]
    at = page("run_detail", run_id=run_id)
    assert "buffered, catching up" in texts(at)
    at = page("run_detail", run_id=run_id, locale="zh-CN")
    assert "已缓存，正在补传" in texts(at)


def test_a_full_worker_disk_holds_the_records_until_space_returns(server, tmp_path):
    from tests.disk_helpers import fill_to_the_last_byte, small_disk, unmount

    home = small_disk(tmp_path / "disk", "4m")
    try:
        run_id, attempt = _hand_out(server, home)
        with RemoteChannel(run_id, home=home) as ch:
            _log(ch, range(100))
            ch.flush()
            filler = home / "filler"
            fill_to_the_last_byte(filler)
            for start in range(100, 20_100, 1000):  # more than the WAL's free pages can take
                _log(ch, range(start, start + 1000))
            with pytest.raises(TimeoutError):
                ch.flush(timeout=3)
            assert ch.last_error and "full" in ch.last_error
            filler.unlink()
            ch.flush(timeout=30)
        out = Ingest().apply(server, "gpu-box", _chunks(Spool(home)))
        assert out["refused"] == []
        assert _counts(server, run_id) == (2 * 20_100, 402)
    finally:
        unmount(tmp_path / "disk")
