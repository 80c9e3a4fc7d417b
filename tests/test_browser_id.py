"""The browser id cookie (``app.hardening``) that a language pick is remembered by (issue 19,
#4): set once on a response to a browser without one, HttpOnly and SameSite, never taken from
a forged or oversized Cookie header; picks are kept per user and browser, and bounded."""

from __future__ import annotations

import asyncio

import pytest

from app import hardening
from jobs import service
from jobs.store.db import connect


def _respond(cookie: bytes | None, scheme: str = "http") -> list[tuple[bytes, bytes]]:
    """The headers SecurityHeaders adds to one plain response from the app behind it."""
    sent: list[dict] = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    headers = [(b"cookie", cookie)] if cookie is not None else []
    scope = {"type": "http", "scheme": scheme, "headers": headers}
    asyncio.run(hardening.SecurityHeaders(app)(scope, None, send))
    return sent[0]["headers"]


def _set_cookies(headers) -> list[str]:
    return [v.decode() for k, v in headers if k == b"set-cookie"]


def test_a_browser_without_an_id_gets_one_that_scripts_cannot_read():
    (set_cookie,) = _set_cookies(_respond(None))
    name_value = set_cookie.split(";")[0]
    assert hardening.browser_id(name_value) == name_value.split("=")[1]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP: a Secure cookie would never come back
    (over_tls,) = _set_cookies(_respond(None, scheme="https"))
    assert "; Secure" in over_tls
    assert _set_cookies(_respond(None)) != [set_cookie]  # random, one per browser


def test_a_browser_with_an_id_keeps_it_and_a_forged_one_is_replaced():
    good = "0123456789abcdef" * 2
    assert _set_cookies(_respond(f"x=1; tb_browser={good}".encode())) == []
    for forged in ("../../etc", "ABC", good + "0", "'; DROP TABLE", good[:-1] + "g"):
        assert hardening.browser_id(f"tb_browser={forged}") is None
        assert len(_set_cookies(_respond(f"tb_browser={forged}".encode()))) == 1
    assert hardening.browser_id("tb_browser=" + good + "; " + "y" * 9000) is None  # too long
    assert hardening.browser_id('tb_browser="unterminated') is None


def test_picks_are_kept_per_browser_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    monkeypatch.setattr(service, "MAX_BROWSER_SETTINGS", 5)
    db = connect()
    service.set_user_setting(db, "local", "language", "en")  # a row from before: not a browser's
    for i in range(8):
        service.set_user_setting(db, f"local@{i:032x}", "language", "zh_Hant")
    kept = [r[0] for r in db.execute("SELECT user FROM user_settings ORDER BY rowid")]
    assert kept == ["local"] + [f"local@{i:032x}" for i in range(3, 8)]
    with pytest.raises(ValueError):
        service.set_user_setting(db, "local@" + "0" * 32, "language", "fr")
