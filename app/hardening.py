"""Two defences of the dashboard's own server, for a server run without the proxy in
compose.yaml as much as behind it (issue 18, #5):

* :class:`SecurityHeaders`, ASGI middleware (installed in ``app/server.py`` beside the upload
  guard) that adds to every HTTP response a Content-Security-Policy with
  ``frame-ancestors 'none'`` (and ``X-Frame-Options: DENY`` for older browsers), so no foreign
  page can frame the login form; ``X-Content-Type-Options: nosniff``; a ``Referrer-Policy``;
  and HSTS once the request came over TLS. nginx sends the same set
  (``deploy/nginx/templates``). It also gives each browser a random id in an HttpOnly cookie
  (:data:`BROWSER_COOKIE`), so a language picked in one browser is remembered for that browser
  only (``app/i18n.py``): a new browser follows its own language until its user chooses.
* :func:`install_header_timeout`: a connection whose request headers have not arrived within
  ``TRAINBOARD_HEADER_TIMEOUT_S`` seconds (default 10) is closed. uvicorn, which Streamlit
  runs, has no such setting (its ``timeout_keep_alive`` covers only the wait *between*
  requests, and is reset by every byte; encode/uvicorn issue #157 asks for
  ``--timeout-request-start``), and ASGI middleware only sees a request once its headers are
  complete, so the deadline is armed on uvicorn's HTTP protocol itself: when a connection opens
  and after each response, disarmed by the next request (or a websocket upgrade).
"""

from __future__ import annotations

import os
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from typing import Any

# Streamlit's page needs inline styles (its CSS-in-JS) and Vega's chart expressions (eval);
# everything else comes from the server itself. What the policy is for: no framing, no
# plug-ins, no foreign scripts, forms and the base URL only to this origin.
CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "font-src 'self' data:; "
    "connect-src 'self' ws: wss:; "
    "worker-src 'self' blob:; "
    "frame-src 'self'; "
    "media-src 'self' data: blob:; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")

# A browser's own id: 128 random bits, never shown to scripts (HttpOnly), sent only to this
# site (SameSite=Lax), kept a year. It names nothing but the browser's remembered settings.
BROWSER_COOKIE = "tb_browser"
BROWSER_ID = re.compile(r"[0-9a-f]{32}")
BROWSER_MAX_AGE_S = 365 * 24 * 3600


def browser_id(cookie_header: str | None) -> str | None:
    """The browser id a ``Cookie`` header carries, or None (absent, malformed or forged)."""
    if not cookie_header or len(cookie_header) > 8192:
        return None
    try:
        jar = SimpleCookie(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(BROWSER_COOKIE)
    value = morsel.value if morsel is not None else None
    return value if value and BROWSER_ID.fullmatch(value) else None


def browser_cookie(https: bool) -> bytes:
    """A ``Set-Cookie`` value with a new browser id."""
    secure = "; Secure" if https else ""
    return (
        f"{BROWSER_COOKIE}={secrets.token_hex(16)}; Path=/; Max-Age={BROWSER_MAX_AGE_S}; "
        f"HttpOnly; SameSite=Lax{secure}"
    ).encode()


class SecurityHeaders:
    """Pure ASGI middleware: adds :data:`HEADERS` (replacing any of the same name) to every
    HTTP response, HSTS when the request's scheme is https, and a browser id cookie when the
    request carries none."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        extra = HEADERS + ((HSTS,) if https else ())
        names = {k for k, _ in extra}
        cookies = b"; ".join(v for k, v in scope.get("headers", []) if k.lower() == b"cookie")
        if browser_id(cookies.decode("latin-1")) is None:
            extra += ((b"set-cookie", browser_cookie(https)),)

        async def send_with_headers(message: dict) -> None:
            if message.get("type") == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + list(extra)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def header_timeout_s() -> float:
    return max(0.5, float(os.environ.get("TRAINBOARD_HEADER_TIMEOUT_S", "10")))


def install_header_timeout(timeout_s: float | None = None) -> None:
    """Arm a request-start deadline on uvicorn's HTTP protocols (h11, and httptools when it is
    installed). Idempotent."""
    timeout = header_timeout_s() if timeout_s is None else timeout_s
    classes = []
    from uvicorn.protocols.http.h11_impl import H11Protocol

    classes.append(H11Protocol)
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional
        pass
    else:
        classes.append(HttpToolsProtocol)
    for cls in classes:
        wrapped = getattr(cls, "_tb_header_timeout", None) is not None
        cls._tb_header_timeout = timeout
        if not wrapped:
            _wrap(cls)


def _arm(proto: Any) -> None:
    # Both protocols create a new ``cycle`` once a request's headers are complete (h11 on its
    # Request event, httptools in on_headers_complete): a different cycle at expiry means the
    # next request arrived in time.
    cycle = getattr(proto, "cycle", None)

    def expire() -> None:
        transport = proto.transport
        if transport is None or transport.is_closing() or proto.cycle is not cycle:
            return  # closed already, or the next request's headers arrived in time
        if transport.get_protocol() is not proto:
            return  # upgraded to a websocket: not an HTTP request any more
        transport.close()

    proto.loop.call_later(type(proto)._tb_header_timeout, expire)


def _wrap(cls: type) -> None:
    made, complete = cls.connection_made, cls.on_response_complete

    def connection_made(self: Any, transport: Any) -> None:
        made(self, transport)
        _arm(self)

    def on_response_complete(self: Any) -> None:
        complete(self)
        if not self.transport.is_closing():
            _arm(self)

    cls.connection_made = connection_made
    cls.on_response_complete = on_response_complete
