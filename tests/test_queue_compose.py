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


REDIS_PASSWORD = "test-pw-4f3c2a"


def _run_config(*extra: str, password: str | None = REDIS_PASSWORD) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    if password is not None:
        env["TRAINBOARD_REDIS_PASSWORD"] = password
    return subprocess.run(
        [*_compose_cmd(), "-f", str(COMPOSE), "config", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


def _config(*extra: str) -> str:
    out = _run_config(*extra)
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
    # Redis asks for the password from .env (issue 18, #8): it reaches the server through a
    # config file, never the command line, and the health check authenticates too.
    assert "requirepass" in redis and f"TRAINBOARD_REDIS_PASSWORD: {REDIS_PASSWORD}" in redis
    assert REDIS_PASSWORD not in redis.split("command:")[1].split("environment:")[0]
    assert "REDISCLI_AUTH" in redis

    for name in ("app", "worker-gpu0", "worker-gpu1"):
        block = blocks[name]
        url = f"TRAINBOARD_BROKER_URL: redis://:{REDIS_PASSWORD}@redis:6379/0"
        assert url in block, name
        assert "trainboard-data:/data" in block, name
        assert "service_healthy" in block, name

    for i in (0, 1):
        block = blocks[f"worker-gpu{i}"]
        assert re.search(rf"device_ids:\n\s+- '{i}'", block), block
        assert "driver: nvidia" in block and "- gpu" in block
        # The container sees only its own GPU, as cuda:0.
        assert "- worker\n" in block and "- cuda:0\n" in block
    assert "8501" in blocks["app"]


def test_compose_refuses_to_start_without_a_redis_password():
    out = _run_config(password=None)
    assert out.returncode != 0
    assert "TRAINBOARD_REDIS_PASSWORD" in out.stderr and ".env.example" in out.stderr
    assert "TRAINBOARD_REDIS_PASSWORD=" in (ROOT / ".env.example").read_text()


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
    # TLS from .env, else a self-signed certificate made on first start (issue 18, #5)
    assert "TRAINBOARD_TLS_CERT: /etc/nginx/certs-generated/selfsigned.pem" in proxy
    assert "40-trainboard-tls.sh:/docker-entrypoint.d/40-trainboard-tls.sh:ro" in proxy
    assert "proxy-certs:/etc/nginx/certs-generated" in proxy


# --- the proxy's configuration, run by a real nginx -----------------------------------------

TEMPLATES = ROOT / "deploy" / "nginx" / "templates"


def _render(
    text: str, upload_mb: int, locations: Path, ports: tuple[int, int], backend: int, tls: tuple
) -> str:
    """What the nginx image's envsubst does, plus this machine's ports instead of compose's."""
    text = text.replace("${TRAINBOARD_MAX_UPLOAD_MB}", str(upload_mb))
    text = text.replace("${TRAINBOARD_TLS_CERT}", str(tls[0]))
    text = text.replace("${TRAINBOARD_TLS_KEY}", str(tls[1]))
    text = text.replace("server app:8501;", f"server 127.0.0.1:{backend};")
    text = text.replace("server app:8502;", f"server 127.0.0.1:{backend};")  # the ingest
    text = text.replace("listen 80;", f"listen 127.0.0.1:{ports[0]};").replace(
        "listen [::]:80;", ""
    )
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{ports[1]} ssl;")
    text = text.replace("listen [::]:443 ssl;", "")
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
                # the app's own copies, which the proxy must replace, not send twice
                self.send_header("Content-Security-Policy", "default-src *")
                self.send_header("X-Frame-Options", "SAMEORIGIN")
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
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    # The certificate as the image's entrypoint makes it on a first start (the same script).
    tls = (tmp_path / "certs-generated" / "selfsigned.pem", tmp_path / "certs-generated" / "k.key")
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
    assert made.returncode == 0 and tls[0].exists(), made.stderr
    port = ports[1]
    locations = tmp_path / "locations.inc"
    locations.write_text(
        _render(
            (TEMPLATES / "trainboard-locations.inc.template").read_text(),
            1,
            locations,
            tuple(ports),
            backend.port,
            tls,
        )
    )
    site = _render(
        (TEMPLATES / "default.conf.template").read_text(),
        1,
        locations,
        tuple(ports),
        backend.port,
        tls,
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
    yield f"https://127.0.0.1:{port}", backend, ports[0]
    proc.send_signal(signal.SIGQUIT)
    proc.wait(timeout=10)
    backend.close()


def _request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None
) -> int:
    return _response(url, method, body, headers)[0]


def _response(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None
):
    """(status, headers) of one request; HTTPS with the self-signed certificate accepted, and
    redirects not followed."""
    import http.client
    import ssl
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path or "/", body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        return r.status, r.headers
    finally:
        conn.close()


def test_the_proxy_caps_bodies_limits_rates_and_hides_the_metrics(proxy):
    """nginx with deploy/nginx's configuration in front of a stand-in app (upload limit 1 MB):
    /_stcore/metrics never reaches the app, a body over the limit is refused before the app
    sees a byte (issue 12, finding 4: 5 × 150 MB PUT before any login), other requests carry
    64 KB at most, and one address gets a handful of uploads a minute."""
    url, app, _ = proxy
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


def test_the_proxy_serves_tls_and_sends_each_security_header_once(proxy):
    """Issue 18, #5: plain HTTP only redirects to HTTPS; every HTTPS answer (a 404 and a 413
    included) carries the app's own CSP (frame-ancestors 'none'), nosniff, a Referrer-Policy
    and HSTS, once each, replacing what the app behind it sent."""
    from app.hardening import CSP

    url, _, http_port = proxy
    status, headers = _response(f"http://127.0.0.1:{http_port}/new_run")
    assert status == 301 and headers["Location"].startswith("https://")
    for path, method, body, code in (
        ("/", "GET", None, 200),
        ("/_stcore/metrics", "GET", None, 404),
        ("/", "POST", b"x" * (100 << 10), 413),
    ):
        status, headers = _response(f"{url}{path}", method, body)
        assert status == code, path
        assert headers.get_all("Content-Security-Policy") == [CSP], path
        assert headers.get_all("X-Frame-Options") == ["DENY"], path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_tls_script_never_replaces_a_missing_certificate_of_your_own(tmp_path):
    made = subprocess.run(
        ["sh", str(ROOT / "deploy" / "nginx" / "40-trainboard-tls.sh")],
        env={
            "PATH": "/usr/bin:/bin",
            "TRAINBOARD_TLS_CERT": str(tmp_path / "mine" / "fullchain.pem"),
            "TRAINBOARD_TLS_KEY": str(tmp_path / "mine" / "privkey.pem"),
            "TRAINBOARD_TLS_GENERATED_DIR": str(tmp_path / "generated"),
        },
        capture_output=True,
        text=True,
    )
    assert made.returncode == 1 and "is missing; put your certificate there" in made.stderr
    assert not (tmp_path / "mine").exists()
