"""Operations for workers on other hosts: compose.worker.yaml joins a GPU host with three
variables (checked by a real compose implementation, as tests/test_queue_compose.py does), and
``trainboard runs export`` writes any run's points as spreadsheet-safe CSV."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_queue_compose import _compose_cmd

ROOT = Path(__file__).resolve().parent.parent
THREE = {
    "TRAINBOARD_SERVER": "https://tb.example.com",
    "TRAINBOARD_WORKER_TOKEN": "tbw_example",
    "TRAINBOARD_BROKER_URL": "redis://:pw@tb.example.com:6379/0",
}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    return subprocess.run(
        [*_compose_cmd(), "-f", str(ROOT / "compose.worker.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **env},
    )


def test_compose_worker_joins_with_three_variables_and_names_each_missing_one():
    out = _config(THREE)
    assert out.returncode == 0, out.stderr
    for value in THREE.values():
        assert value in out.stdout
    assert "worker-data" in out.stdout and "/data" in out.stdout
    for missing in THREE:
        out = _config({k: v for k, v in THREE.items() if k != missing})
        assert out.returncode != 0 and missing in out.stderr, (missing, out.stderr)


def test_runs_export_writes_every_point_spreadsheet_safe(tmp_path):
    from jobs.store import registry
    from jobs.store.db import connect
    from jobs.store.writer import MetricWriter

    env = {**os.environ, "TRAINBOARD_HOME": str(tmp_path)}
    os.environ["TRAINBOARD_HOME"] = str(tmp_path)
    try:
        db = connect()
        run_id = registry.create_run(db, spec={}, preset="t", name="r")
        with MetricWriter(tmp_path / "trainboard.db", run_id) as w:
            for step in range(5):
                w.log(step, {"loss": 1.0 / (step + 1), '=HYPERLINK("x")': 1.0, "@sum": 2.0})
    finally:
        del os.environ["TRAINBOARD_HOME"]
    out = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", str(run_id)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["key", "step", "value"] and len(rows) == 1 + 15
    keys = {r[0] for r in rows[1:]}
    assert keys == {'\'=HYPERLINK("x")', "'@sum", "loss"}
    assert [int(r[1]) for r in rows[1:] if r[0] == "loss"] == list(range(5))
    target = tmp_path / "out.csv"
    subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", str(run_id), "-o", str(target)],
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
        capture_output=True,
    )
    assert target.read_text() == out
    missing = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "runs", "export", "999"],
        env=env,
        cwd=ROOT,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "999" in missing.stderr


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.delenv("TRAINBOARD_BROKER_URL", raising=False)


def test_a_worker_reaches_the_ingest_only_through_the_proxy_over_tls(tmp_path, monkeypatch):
    """The deploy/nginx templates, run by a real nginx with the self-signed certificate its
    entrypoint script makes: a worker that trusts that certificate (TRAINBOARD_CA_BUNDLE) posts
    records and ships a checkpoint bigger than the proxy's 64 KB default body through
    /api/worker/, and a member's cookie is refused there too."""
    import shutil
    import signal
    import socket

    import requests

    from jobs.remote import files, tokens
    from jobs.remote.channel import RemoteChannel
    from jobs.remote.client import Client
    from jobs.remote.spool import Spool
    from jobs.remote.worker import Flusher
    from jobs.store import registry
    from jobs.store.db import connect
    from tests.queue_helpers import free_port, wait_for
    from tests.remote_helpers import Ingest
    from tests.test_queue_compose import TEMPLATES, _render

    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    home = tmp_path / "server"
    monkeypatch.setenv("TRAINBOARD_HOME", str(home))
    db = connect()
    token = tokens.create(db, "gpu-box")
    ingest = Ingest(home, tmp_path / "ingest.log")
    ingest.start()
    tls = (tmp_path / "certs" / "selfsigned.pem", tmp_path / "certs" / "k.key")
    made = subprocess.run(
        ["sh", str(ROOT / "deploy" / "nginx" / "40-trainboard-tls.sh")],
        env={
            "PATH": os.environ["PATH"],
            "TRAINBOARD_TLS_CERT": str(tls[0]),
            "TRAINBOARD_TLS_KEY": str(tls[1]),
            "TRAINBOARD_TLS_GENERATED_DIR": str(tls[0].parent),
        },
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    ports = (free_port(), free_port())
    locations = tmp_path / "locations.inc"

    def render(name: str) -> str:
        text = (TEMPLATES / name).read_text()
        text = text.replace("server app:8502;", f"server 127.0.0.1:{ingest.port};")
        return _render(text, 1, locations, ports, free_port(), tls)

    locations.write_text(render("trainboard-locations.inc.template"))
    (tmp_path / "site.conf").write_text(render("default.conf.template"))
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        (tmp_path / d).mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"  uwsgi_temp_path {tmp_path}/uwsgi;\n  scgi_temp_path {tmp_path}/scgi;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    fl = None
    try:

        def listening():
            try:
                socket.create_connection(("127.0.0.1", ports[1]), timeout=1).close()
                return True
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                return False

        wait_for(listening, 10, "nginx")
        monkeypatch.setenv("TRAINBOARD_CA_BUNDLE", str(tls[0]))
        base = f"https://localhost:{ports[1]}"
        client = Client(base, token)
        run_id = registry.create_run(db, spec={}, preset="t", name="r")
        got = client.post("/claim", {"run_id": run_id, "slot": "gpu-box", "device": "cpu"})
        worker_home = tmp_path / "worker"
        Spool(worker_home).start_run(run_id, got["attempt"], got)
        fl = Flusher(client, worker_home, interval=0.05).start()
        with RemoteChannel(run_id, home=worker_home) as ch:
            for step in range(20_000):  # more than 64 KB a post
                ch.log(step, {"loss": 1.0 / (step + 1)})
        wait_for(lambda: Spool(worker_home).backlog()[0] == 0, 60, "the records through nginx")
        n = db.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone()[0]
        assert n == 20_000
        ckpt = tmp_path / "checkpoint.pt"
        ckpt.write_bytes(os.urandom(files.FILE_CHUNK + 1000))
        with ckpt.open("rb") as f:
            sha = files.ship(client, run_id, "checkpoint.pt", f, ckpt.stat().st_size)
        assert files.sha256_file(home / "runs" / str(run_id) / "checkpoint.pt") == sha
        r = requests.post(
            f"{base}/api/worker/claim",
            json={"run_id": run_id},
            verify=str(tls[0]),
            cookies={"tb_session_token": "a-member-session"},
            timeout=10,
        )
        assert r.status_code == 401
    finally:
        if fl is not None:
            fl.close()
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=10)
        proc.stderr.close()
        ingest.stop()
        db.close()
