"""Issue 12, finding 4: Streamlit's upload endpoint, without the proxy in front.

The dashboard runs as ``trainboard up`` starts it (``jobs.cli.up._dashboard_cmd``, team mode, on a
free port). A real Chromium opens the login page; the test reads that browser session's id from
the websocket (Streamlit's ``new_session`` message) and its XSRF cookie, then PUTs files to
``/_stcore/upload_file/<session>/<file>`` directly, as the attacker did.

- Before login every PUT is refused before its body is read, and the server does not grow
  (on the code before the guard, five PUTs were kept: 204 each, RSS up by their size).
- After login in that same browser, uploads are accepted up to the per-session budget, then
  refused with 413 until a file is removed.
- Logging out, or the user being removed, closes the door again at once.
- A session that is not connected is refused by the guard itself: a client that reconnects
  its own session while it PUTs can't slip between the guard's check and Streamlit's.
- One member's sessions share one budget.
- ``/_stcore/metrics`` is 404 in team mode.
"""

from __future__ import annotations

import http.client
import time
import uuid
from pathlib import Path

import pytest

from jobs.people import auth
from jobs.store.db import connect
from tests.queue_helpers import dashboard_server, wait_http

CHROMIUM = Path("/usr/bin/chromium")
UPLOAD_MB = 8  # each PUT below sends UPLOAD_MB - 1 MB
SESSION_MB = 2 * UPLOAD_MB  # the session's budget: two such files, not three

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


@pytest.fixture
def team_server(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRAINBOARD_TOTAL_UPLOAD_MB", raising=False)
    db = connect()
    auth.add_user(db, "bob", "bob's long password")
    env = {"TRAINBOARD_TEAM": "1", "TRAINBOARD_SESSION_UPLOAD_MB": str(SESSION_MB)}
    with dashboard_server(tmp_path / "dashboard.log", env) as (port, proc):
        yield port, proc, db


def _open_login_page(browser, port: int):
    """A new Chromium page on the login page, and that page's Streamlit session id (from the
    websocket's ``new_session`` message)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    session_ids: list[str] = []

    def frame(payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            msg = ForwardMsg.FromString(bytes(payload))
            if msg.HasField("new_session") and msg.new_session.initialize.session_id:
                session_ids.append(msg.new_session.initialize.session_id)

    page = browser.new_page()
    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_text("User name").wait_for(timeout=60_000)
    assert session_ids, "no new_session message on the websocket"
    return page, session_ids[-1]


@pytest.fixture
def browser_session(team_server):
    """A Chromium page on the login page, and that page's Streamlit session id."""
    from playwright.sync_api import sync_playwright

    port, proc, db = team_server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page, sid = _open_login_page(browser, port)
        xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_streamlit_xsrf")
        yield page, port, proc, db, sid, xsrf
        browser.close()


def _put(port: int, sid: str, xsrf: str, nbytes: int, *, file_id: str | None = None) -> int:
    """PUT one file as the browser's uploader does (multipart, XSRF header and cookie). It asks
    ``Expect: 100-continue`` so that an answer given before the body is read can be read back;
    the body goes only after the server's 100."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + nbytes + len(tail)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("PUT", f"/_stcore/upload_file/{sid}/{file_id or uuid.uuid4()}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(length))
    conn.putheader("X-Xsrftoken", xsrf)
    conn.putheader("Cookie", f"_streamlit_xsrf={xsrf}")
    conn.putheader("Expect", "100-continue")
    conn.endheaders()
    sock = conn.sock
    sock.settimeout(60)
    first = sock.recv(65536)
    status = int(first.split(b" ", 2)[1])
    if status == 100:
        sock.sendall(head)
        chunk = b"a" * (1 << 20)
        left = nbytes
        while left > 0:
            sock.sendall(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
        sock.sendall(tail)
        rest = first.split(b"\r\n\r\n", 1)[1]
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        status = int(rest.split(b" ", 2)[1])
    conn.close()
    return status


def _delete(port: int, sid: str, xsrf: str, file_id: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "DELETE",
        f"/_stcore/upload_file/{sid}/{file_id}",
        headers={"X-Xsrftoken": xsrf, "Cookie": f"_streamlit_xsrf={xsrf}"},
    )
    status = conn.getresponse().status
    conn.close()
    return status


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _log_in(page) -> None:
    page.get_by_role("textbox", name="User name").fill("bob")
    page.get_by_role("textbox", name="Password").fill("bob's long password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Logged in as").wait_for(timeout=60_000)


def test_nothing_is_kept_from_a_session_that_has_not_logged_in(browser_session):
    page, port, proc, db, sid, xsrf = browser_session
    before = _rss_mb(proc.pid)
    statuses = [_put(port, sid, xsrf, (UPLOAD_MB - 1) << 20) for _ in range(5)]
    assert statuses == [403] * 5
    # Five bodies of 7 MB would be 35 MB more if they were kept.
    assert _rss_mb(proc.pid) - before < 20
    # A PUT that does not say its length can't be budgeted: refused.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("PUT", f"/_stcore/upload_file/{sid}/{uuid.uuid4()}")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("X-Xsrftoken", xsrf)
    conn.putheader("Cookie", f"_streamlit_xsrf={xsrf}")
    conn.endheaders()
    conn.send(b"0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()
    wait_http(f"http://127.0.0.1:{port}/_stcore/health", 10)


def test_a_logged_in_session_may_upload_up_to_its_budget(browser_session):
    page, port, proc, db, sid, xsrf = browser_session
    _log_in(page)
    size = (UPLOAD_MB - 1) << 20
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert _put(port, sid, xsrf, size, file_id=first) == 204
    assert _put(port, sid, xsrf, size, file_id=second) == 204
    # A third file would pass the session's budget.
    assert _put(port, sid, xsrf, size) == 413
    # Replacing a file it holds is counted once.
    assert _put(port, sid, xsrf, size, file_id=second) == 204
    assert _delete(port, sid, xsrf, first) == 204
    assert _put(port, sid, xsrf, size) == 204


def test_logging_out_or_being_removed_closes_the_upload_door(browser_session):
    page, port, proc, db, sid, xsrf = browser_session
    _log_in(page)
    assert _put(port, sid, xsrf, 1024) == 204
    page.get_by_role("button", name="Log out").click()
    page.get_by_text("User name").wait_for(timeout=60_000)
    assert _put(port, sid, xsrf, 1024) == 403
    _log_in(page)
    assert _put(port, sid, xsrf, 1024) == 204
    auth.remove_user(db, "bob")
    assert _put(port, sid, xsrf, 1024) == 403


def test_metrics_are_hidden_in_team_mode(team_server):
    port, _, _ = team_server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_stcore/metrics")
    assert conn.getresponse().status == 404
    conn.close()


def test_a_logged_in_member_uploads_through_the_datasets_page(browser_session, tmp_path):
    """The door stays open for the real uploader: Chromium's own PUT passes the guard."""
    from playwright.sync_api import expect

    page, *_ = browser_session
    _log_in(page)
    rows = ["a,b,label"] + [f"{i},{i % 7},{'yes' if i % 2 else 'no'}" for i in range(60)]
    csv = tmp_path / "small.csv"
    csv.write_text("\n".join(rows) + "\n")
    # Navigate inside the session (a new URL would open a new, logged-out session).
    page.get_by_role("link", name="Datasets").click()
    page.locator("input[type=file]").set_input_files(str(csv))
    expect(page.get_by_text("Added dataset")).to_be_visible(timeout=90_000)


def test_one_members_sessions_share_one_budget(browser_session):
    """Two tabs of one member: 7 + 7 MB fit the 16 MB budget, a third 7 MB does not, whichever
    tab sends it (per session alone, the second tab could have held another 16 MB)."""
    page, port, proc, db, sid, xsrf = browser_session
    _log_in(page)
    other, other_sid = _open_login_page(page.context.browser, port)
    assert other_sid != sid
    _log_in(other)
    size = (UPLOAD_MB - 1) << 20
    assert _put(port, sid, xsrf, size) == 204
    assert _put(port, other_sid, xsrf, size) == 204
    assert _put(port, other_sid, xsrf, size) == 413
    assert _put(port, sid, xsrf, size) == 413


def test_reconnecting_a_session_while_uploading_slips_nothing_through(team_server):
    """The race a hostile probe found: a client toggles its own (not logged in) session between
    disconnected and resumed while it PUTs. Streamlit checks that the session is active after
    the guard has looked; if the guard let an unknown session pass, some PUTs landed between the
    two checks (176 of them in 10 s, 3 GB in 90 s with more threads). Now none may be read."""
    import random
    import threading
    from http.cookies import SimpleCookie

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect as ws_connect

    port, proc, _ = team_server
    health = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    health.request("GET", "/_stcore/health")
    reply = health.getresponse()
    cookie = SimpleCookie(reply.getheader("set-cookie") or "")
    reply.read()
    health.close()
    xsrf = cookie["_streamlit_xsrf"].value
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    headers = {"Cookie": f"_streamlit_xsrf={xsrf}", "Origin": f"http://127.0.0.1:{port}"}
    with ws_connect(url, subprotocols=["streamlit", xsrf], additional_headers=headers) as ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ""
        ws.send(rerun.SerializeToString())
        sid = ""
        deadline = time.monotonic() + 60
        while not sid and time.monotonic() < deadline:
            msg = ForwardMsg.FromString(ws.recv(timeout=60))
            if msg.HasField("new_session"):
                sid = msg.new_session.initialize.session_id
    assert sid
    stop = time.monotonic() + 6
    answers: list[int] = []

    def toggle() -> None:
        while time.monotonic() < stop:
            try:
                with ws_connect(
                    url, subprotocols=["streamlit", xsrf, sid], additional_headers=headers
                ):
                    time.sleep(random.uniform(0, 0.004))
            except OSError:
                pass
            time.sleep(random.uniform(0, 0.004))

    togglers = [threading.Thread(target=toggle) for _ in range(2)]
    for t in togglers:
        t.start()
    try:
        while time.monotonic() < stop:
            answers.append(_put(port, sid, xsrf, 1 << 20))
    finally:
        for t in togglers:
            t.join()
    assert answers and set(answers) <= {400, 403}, sorted(set(answers))
