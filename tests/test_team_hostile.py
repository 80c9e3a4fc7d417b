"""Issue 18 in a real browser: a hostile member on a team server, without the proxy in front.

The dashboard runs as ``trainboard up`` starts it (``jobs.cli.up._dashboard_cmd`` with
``_dashboard_env``, team mode, on a free port). Chromium logs in as bob, opens New run and types
every spelling of a data source into "More settings", pressing "Queue run" and "A/B one tip"
for each: each is refused with a message naming the field, and the store holds no run.
The same server answers with the security headers (and Chromium refuses to frame it), closes
connections whose headers never arrive, and logs no CSP violation while the pages work.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request

import pytest

from jobs.datasets import ingest as datasets
from jobs.people import auth
from jobs.store import registry
from jobs.store.db import connect
from tests.queue_helpers import dashboard_server
from tests.test_upload_guard import CHROMIUM, _log_in

HEADER_TIMEOUT_S = 2

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

CSV = b"a,b,label\n" + b"".join(
    f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n".encode() for i in range(200)
)


@pytest.fixture
def server(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TRAINBOARD_HOME", str(home))
    db = connect()
    auth.add_user(db, "bob", "bob's long password")
    ds = datasets.ingest(db, CSV, "bobs.csv", owner="bob")
    secret = tmp_path / "keys.csv"
    secret.write_text("apikey,target\nsk-live-123,1\n")
    env = {"TRAINBOARD_TEAM": "1", "TRAINBOARD_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)}
    with dashboard_server(tmp_path / "dashboard.log", env) as (port, _proc):
        yield port, db, ds, secret


def test_a_member_cannot_name_another_file_in_more_settings_or_the_ab_path(server):
    from playwright.sync_api import expect, sync_playwright

    port, db, ds, secret = server
    tries = [
        (f'data={{"dataset": "{secret}", "target": "apikey"}}', "data"),
        (f"data.dataset={secret}", "data.dataset"),
        ("data.target=apikey", "data.target"),
        (f"Data.Dataset={secret}", "Data.Dataset"),
        (f"DATA.dataset={secret}", "DATA.dataset"),
        (f"data_dataset={secret}", "data_dataset"),
    ]
    violations: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="en-US")
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.goto(f"http://127.0.0.1:{port}/")
        _log_in(page)
        # A reload would open a new session (logged out): navigate inside the app.
        page.get_by_role("link", name="New run").first.click()
        box = page.get_by_label("More settings, one per line as field=value", exact=False)
        box.wait_for(timeout=60_000)
        for button in ("Queue run", "A/B one tip"):
            for line, field in tries:
                box.fill(line)
                page.get_by_role("button", name=button).click()
                alert = page.locator("[data-testid='stAlert']").filter(
                    has_text="Nothing was queued"
                )
                expect(alert).to_contain_text(f"({field})", timeout=30_000)
                expect(alert).to_contain_text("chosen above")
                assert "sk-live" not in alert.inner_text()
        # The form still queues what it offers (the store is checked below).
        box.fill("schedule.plateau_patience=2")
        page.get_by_role("button", name="Queue run").click()
        expect(page.get_by_text("Queued run: run")).to_be_visible(timeout=30_000)
        # A foreign page can't frame the dashboard (frame-ancestors 'none').
        framer = browser.new_page()
        framer.set_content(f'<iframe id="f" src="http://127.0.0.1:{port}/"></iframe>')
        framer.wait_for_timeout(2000)
        child = framer.frames[1] if len(framer.frames) > 1 else None
        assert child is None or "User name" not in (child.content() or "")
        browser.close()

    # Only what the server itself serves must load; a foreign host being refused is the policy
    # at work (Streamlit asks fonts.gstatic.com for an icon picture, which a server with no
    # internet can't fetch anyway: the icon font it ships draws the icon).
    def foreign(v: str) -> bool:
        url = re.search(r"'(https?://[^']+)'", v)
        return bool(url) and not url.group(1).startswith(f"http://127.0.0.1:{port}")

    local = [v for v in violations if not foreign(v)]
    assert not local, local[:5]
    runs = [registry.get_run(db, r["id"]) for r in registry.list_runs(db)]
    assert len(runs) == 1
    assert all(
        r["spec"]["data"]["dataset"] == ds["path"] and r["dataset_id"] == ds["id"] for r in runs
    )


def test_the_app_sends_security_headers_and_closes_connections_without_headers(server):
    port = server[0]
    for path in ("/", "/_stcore/health", "/new_run"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            h = r.headers
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"], path
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "same-origin"
        assert h["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in h  # plain HTTP here: no HSTS
    # 100 sockets that never finish their headers are all closed by the server.
    socks = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    start = time.monotonic()
    for s in socks:
        assert s.recv(1024) == b"", "the server answered an unfinished request"
        s.close()
    waited = time.monotonic() - start
    assert waited < HEADER_TIMEOUT_S + 20, waited
    # ...and a complete request still gets its answer.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=10) as r:
        assert r.status == 200
