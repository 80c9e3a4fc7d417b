"""Workers on other hosts, over HTTP: a real ingest server process, the worker's flusher and
files code in this process, each with its own data directory (tests/remote_helpers.py)."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from jobs.remote import files, tokens
from jobs.remote.channel import RemoteChannel
from jobs.remote.client import Client, Unreachable
from jobs.remote.spool import Spool
from jobs.remote.worker import Flusher
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import wait_for
from tests.remote_helpers import CuttingProxy, Ingest


@pytest.fixture
def server(tmp_path, monkeypatch):
    home = tmp_path / "server"
    monkeypatch.setenv("TRAINBOARD_HOME", str(home))
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)
    db = connect()
    token = tokens.create(db, "gpu-box")
    ing = Ingest(home, tmp_path / "ingest.log")
    ing.start()
    yield db, ing, token
    ing.stop()
    db.close()


def _claim(client: Client, db, worker_home, spec=None, dataset_id=None) -> dict:
    run_id = registry.create_run(
        db,
        spec=spec or {"data": {"dataset": "builtin:digits"}},
        preset="t",
        name="r",
        dataset_id=dataset_id,
    )
    got = client.post("/claim", {"run_id": run_id, "slot": "gpu-box", "device": "cpu"})
    assert got["run_id"] == run_id, got
    Spool(worker_home).start_run(run_id, got["attempt"], got)
    return got


def test_worker_endpoints_refuse_a_member_session_a_forged_and_a_revoked_token(server, tmp_path):
    from jobs.people import auth

    db, ing, token = server
    api = f"{ing.url}/api/worker"
    assert requests.get(f"{api}/health", timeout=5).status_code == 200
    auth.add_user(db, "alice", "correct horse battery staple", admin=True)
    session = auth.login(db, "alice", "correct horse battery staple")
    body = {"run_id": 1, "slot": "gpu-box", "device": "cpu"}
    asked = {
        "no credentials": {},
        "member session cookie": {"cookies": {"tb_session_token": session}},
        "member session as bearer": {"headers": {"Authorization": f"Bearer {session}"}},
        "forged token": {"headers": {"Authorization": "Bearer tbw_" + "A" * 43}},
    }
    for what, kw in asked.items():
        for method, path in (
            ("POST", "/claim"),
            ("POST", "/records"),
            ("GET", "/blobs/" + "0" * 64),
        ):
            r = requests.request(method, api + path, json=body, timeout=5, **kw)
            assert r.status_code == 401, (what, path, r.status_code, r.text)
    good = {"Authorization": f"Bearer {token}"}
    assert requests.post(f"{api}/claim", json=body, headers=good, timeout=5).status_code == 200
    tokens.revoke(db, "gpu-box")
    r = requests.post(f"{api}/claim", json=body, headers=good, timeout=5)
    assert r.status_code == 401


def _series(db, run_id, key):
    return [
        s
        for (s,) in db.execute(
            "SELECT step FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
            "WHERE run_id = ? AND k.name = ? ORDER BY step",
            [run_id, key],
        )
    ]


def test_a_server_outage_loses_nothing_and_writes_nothing_twice(server, tmp_path):
    db, ing, token = server
    home = tmp_path / "worker"
    client = Client(ing.url, token, timeout=3)
    got = _claim(client, db, home)
    run_id = got["run_id"]
    fl = Flusher(client, home, interval=0.05).start()
    keys = ("train/loss", "lr", "grad_norm")
    try:
        with RemoteChannel(run_id, home=home) as ch:
            for step in range(3000):
                ch.log(step, {k: step * 0.5 + i for i, k in enumerate(keys)})
            ch.event(2999, "note", "before the outage")
            ch.flush()
            wait_for(lambda: len(_series(db, run_id, "lr")) == 3000, 30, "the first points")
            ing.stop()  # the server goes away; the run goes on into the spool
            for step in range(3000, 6000):
                ch.log(step, {k: step * 0.5 + i for i, k in enumerate(keys)})
            ch.event(5999, "note", "during the outage")
            ch.flush()
            assert Spool(home).backlog()[1] == 9000
            assert len(_series(db, run_id, "lr")) == 3000
            ing.start()
            ch.record("finished", summary={"steps": 6000})
        wait_for(lambda: Spool(home).backlog()[0] == 0, 60, "the spool to drain")
    finally:
        fl.close()
    for key in keys:
        assert _series(db, run_id, key) == list(range(6000)), key
    events = [m for (m,) in db.execute("SELECT message FROM events WHERE run_id = ?", [run_id])]
    assert events == ["before the outage", "during the outage"]
    assert registry.get_run(db, run_id)["status"] == "finished"


def _dataset(db, home, size=3_000_000) -> dict:
    folder = home / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.csv"
    with path.open("w") as f:
        f.write("x,y\n")
        i = 0
        while f.tell() < size:
            f.write(f"{i},{i % 7}\n")
            i += 1
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    ds_id = registry.add_dataset(
        db,
        name="big.csv",
        path=str(path),
        sha256=sha,
        size_bytes=path.stat().st_size,
        format="csv",
        target="y",
    )
    return registry.get_dataset(db, ds_id)


def test_a_dataset_download_cut_halfway_resumes_and_is_verified(server, tmp_path):
    db, ing, token = server
    ds = _dataset(db, tmp_path / "server")
    home = tmp_path / "worker"
    client = Client(ing.url, token)
    _claim(client, db, home, {"data": {"dataset": ds["path"], "target": "y"}}, ds["id"])
    proxy = CuttingProxy(ing.port, cut_after=ds["size_bytes"] // 2)
    cut = Client(proxy.url, token)
    with pytest.raises(Unreachable):
        files.fetch_dataset(cut, home, ds["sha256"], ".csv", ds["size_bytes"])
    part = files.cached_dataset(home, ds["sha256"], ".csv").with_name(ds["sha256"] + ".csv.part")
    part_size = part.stat().st_size
    assert proxy.cut and 0 < part_size < ds["size_bytes"]
    got = files.fetch_dataset(cut, home, ds["sha256"], ".csv", ds["size_bytes"])
    assert files.sha256_file(got) == ds["sha256"] and not part.exists()
    assert proxy.connections == 2
    # the second request asked for the rest only (a Range request), not the whole file again
    assert proxy.relayed[1] < ds["size_bytes"] - part_size + 4096, proxy.relayed
    proxy.close()
    # another worker's token gets nothing
    db2 = connect()
    other = Client(ing.url, tokens.create(db2, "other"))
    with pytest.raises(Exception, match="404"):
        files.fetch_dataset(other, tmp_path / "other", ds["sha256"], ".csv")


def test_lru_cache_stays_under_its_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_CACHE_GB", str(2.5 * 2**20 / 2**30))  # 2.5 MiB
    folder = tmp_path / "datasets"
    folder.mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        p = folder / name
        p.write_bytes(b"x" * 2**20)
        os.utime(p, (1000 + i, 1000 + i))
    gone = files.evict(folder, keep=folder / "new", room=2**20)
    assert [p.name for p in gone] == ["a", "b"]  # 3 + 1 MiB over 2.5: the two oldest go
    assert [p.name for p in folder.iterdir()] == ["c"]


def test_a_checkpoint_upload_resumes_and_lands_in_the_run_folder(server, tmp_path):
    db, ing, token = server
    home = tmp_path / "worker"
    client = Client(ing.url, token)
    got = _claim(client, db, home)
    run_id = got["run_id"]
    src = tmp_path / "checkpoint.pt"
    src.write_bytes(os.urandom(files.FILE_CHUNK * 2 + 12345))
    sha = files.sha256_file(src)
    size = src.stat().st_size
    with src.open("rb") as f:  # an earlier try got one chunk through, then the network went
        r = client.request(
            "PUT",
            f"/blobs/{sha}",
            params={"offset": 0, "size": size},
            data=f.read(files.FILE_CHUNK),
        )
    assert r.json() == {"have": files.FILE_CHUNK, "complete": False}
    with src.open("rb") as f:
        assert files.ship(client, run_id, "checkpoint.pt", f, size) == sha
    landed = tmp_path / "server" / "runs" / str(run_id) / "checkpoint.pt"
    assert files.sha256_file(landed) == sha
    # a resume on this worker (or another that holds the run) fetches it by its hash
    back = files.fetch_run_file(client, tmp_path / "again", run_id, "checkpoint.pt", sha)
    assert files.sha256_file(back) == sha
    # bytes that do not hash to the name are refused
    bad = hashlib.sha256(b"other").hexdigest()
    r = client.session.put(
        f"{ing.url}/api/worker/blobs/{bad}", params={"offset": 0, "size": 3}, data=b"abc", timeout=5
    )
    assert r.status_code == 422
    # only the file names the engine writes
    r = client.session.post(
        f"{ing.url}/api/worker/runs/{run_id}/files",
        json={"name": "../../trainboard.db", "sha256": sha},
        timeout=5,
    )
    assert r.status_code == 400


def test_a_runs_bundle_goes_up_with_its_model_before_the_outcome(server, tmp_path):
    """Issue 21/22: the bundle/ a remote run made reaches the server's run folder before the
    run shows as finished, so Run detail offers its zip and Predict uses it."""
    from engine.limits import BUNDLE_FILES, MODEL
    from jobs import service

    db, ing, token = server
    home = tmp_path / "worker"
    client = Client(ing.url, token, timeout=3)
    run_id = _claim(client, db, home)["run_id"]
    folder = tmp_path / "worker-run"
    (folder / "bundle").mkdir(parents=True)
    for name in (MODEL, *BUNDLE_FILES):
        (folder / name).write_bytes(name.encode() + os.urandom(1000))
    fl = Flusher(client, home, interval=0.05)
    fl.watch(run_id, folder)
    fl.start()
    try:
        with RemoteChannel(run_id, home=home) as ch:
            ch.record("finished", summary={"bundle": {"ok": True, "rows": 5, "max_diff": 0.0}})
        wait_for(lambda: Spool(home).backlog()[0] == 0, 60, "the spool to drain")
    finally:
        fl.close()
    landed = tmp_path / "server" / "runs" / str(run_id)
    for name in (MODEL, *BUNDLE_FILES):
        assert (landed / name).read_bytes() == (folder / name).read_bytes(), name
    state = service.run_bundle(db, run_id)
    assert state["ok"] and state["folder"] == landed / "bundle", state
    assert len(service.bundle_zip(db, run_id)) > 5000


def test_upload_parts_left_for_a_day_are_swept(tmp_path, monkeypatch):
    from jobs.remote.server import blobs_dir, sweep_parts

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    folder = blobs_dir() / "tmp"
    folder.mkdir(parents=True)
    old, new = folder / ("a" * 64 + ".part"), folder / ("b" * 64 + ".part")
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert sweep_parts() == [old] and new.exists()
