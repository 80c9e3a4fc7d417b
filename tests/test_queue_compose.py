"""compose.yaml, checked by a real compose implementation (``docker-compose config`` parses,
validates and normalises the file without needing a Docker engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"


def _compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip("no compose implementation (apt-get install docker-compose)")


def _config(*extra: str) -> str:
    out = subprocess.run(
        [*_compose_cmd(), "-f", str(COMPOSE), "config", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _service_blocks(normalised: str) -> dict[str, str]:
    """Split ``config`` output into the text of each service (its 2-space indented key)."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_services = False
    for line in normalised.splitlines():
        if not line.startswith(" "):
            in_services, current = line == "services:", None
        elif in_services and re.match(r"^  \S", line):
            current = blocks.setdefault(line.strip().rstrip(":"), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


def test_compose_file_is_valid_and_has_redis_app_and_a_worker_per_gpu():
    services = set(_config("--services").split())
    assert {"redis", "app", "worker-gpu0", "worker-gpu1"} <= services
    assert set(_config("--volumes").split()) >= {"trainboard-data", "redis-data"}

    blocks = _service_blocks(_config())
    redis = blocks["redis"]
    assert "noeviction" in redis and "appendonly" in redis
    assert "healthcheck:" in redis and "redis-cli" in redis

    for name in ("app", "worker-gpu0", "worker-gpu1"):
        block = blocks[name]
        assert "TRAINBOARD_BROKER_URL: redis://redis:6379/0" in block, name
        assert "trainboard-data:/data" in block, name
        assert "service_healthy" in block, name

    for i in (0, 1):
        block = blocks[f"worker-gpu{i}"]
        assert re.search(rf"device_ids:\n\s+- '{i}'", block), block
        assert "driver: nvidia" in block and "- gpu" in block
        # The container sees only its own GPU, as cuda:0.
        assert "- worker\n" in block and "- cuda:0\n" in block
    assert "8501" in blocks["app"]


def test_the_proxy_is_the_only_door_to_the_app():
    blocks = _service_blocks(_config())
    proxy = blocks["proxy"]
    assert "image: nginx:" in proxy  # the official image
    assert "published: 80" in proxy and "published: 443" in proxy
    assert "deploy/nginx/templates:/etc/nginx/templates:ro" in proxy
    assert "TRAINBOARD_MAX_UPLOAD_MB: '200'" in proxy
    assert "service_healthy" in proxy
    app = blocks["app"]
    assert "published" not in app, "the app must not be reachable around the proxy"
    assert "TRAINBOARD_MAX_UPLOAD_MB: '200'" in app  # the same limit on both sides
    assert "_stcore/health" in app  # the proxy waits for a healthy app
    assert "TRAINBOARD_TRUSTED_PROXY: '*'" in app  # the client's address comes from the proxy
    assert "TRAINBOARD_TEAM: '1'" in app


# --- the proxy's configuration, run by a real nginx -----------------------------------------

TEMPLATES = ROOT / "deploy" / "nginx" / "templates"


def _render(text: str, upload_mb: int, locations: Path, port: int, backend: int) -> str:
    """What the nginx image's envsubst does, plus this machine's ports instead of compose's."""
    text = text.replace("${TRAINBOARD_MAX_UPLOAD_MB}", str(upload_mb))
    text = text.replace("server app:8501;", f"server 127.0.0.1:{backend};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    return text.replace("/etc/nginx/conf.d/trainboard-locations.inc", str(locations))


class _Backend:
    """Stands in for Streamlit: answers everything with 200 and remembers what reached it."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append((self.command, self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def proxy(tmp_path):
    import os
    import signal
    import socket
    import time

    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not nginx:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    backend = _Backend()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    locations = tmp_path / "locations.inc"
    locations.write_text(
        _render(
            (TEMPLATES / "trainboard-locations.inc.template").read_text(),
            1,
            locations,
            port,
            backend.port,
        )
    )
    site = _render(
        (TEMPLATES / "default.conf.template").read_text(), 1, locations, port, backend.port
    )
    (tmp_path / "site.conf").write_text(site)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
        (tmp_path / d).mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  fastcgi_temp_path {tmp_path}/fastcgi;\n"
        f"  uwsgi_temp_path {tmp_path}/uwsgi;\n  scgi_temp_path {tmp_path}/scgi;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    check = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "nginx did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", backend
    proc.send_signal(signal.SIGQUIT)
    proc.wait(timeout=10)
    backend.close()


def _request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None
) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_proxy_caps_bodies_limits_rates_and_hides_the_metrics(proxy):
    """nginx with deploy/nginx's configuration in front of a stand-in app (upload limit 1 MB):
    /_stcore/metrics never reaches the app, a body over the limit is refused before the app
    sees a byte (issue 12, finding 4: 5 × 150 MB PUT before any login), other requests carry
    64 KB at most, and one address gets a handful of uploads a minute."""
    url, app = proxy
    assert _request(f"{url}/") == 200
    # the client's own address, whatever it claims (its login back-off is keyed on it)
    assert _request(f"{url}/_stcore/stream", headers={"X-Forwarded-For": "6.6.6.6"}) == 200
    assert [h.get("X-Forwarded-For") for _, _, h in app.seen] == ["127.0.0.1", "127.0.0.1"]
    assert _request(f"{url}/_stcore/metrics") == 404
    assert _request(f"{url}/_stcore/upload_file/sid/fid", "PUT", b"x" * (2 << 20)) == 413
    assert _request(f"{url}/", "POST", b"x" * (100 << 10)) == 413
    assert [p for _, p, _ in app.seen] == ["/", "/_stcore/stream"]
    codes = [_request(f"{url}/_stcore/upload_file/sid/f{i}", "PUT", b"x" * 1000) for i in range(9)]
    assert codes[:6] == [200] * 6 and 429 in codes[6:], codes
