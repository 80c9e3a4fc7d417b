"""Session-wide hooks."""

from __future__ import annotations

from tests import reliability


def pytest_sessionfinish(session, exitstatus):
    out = reliability.write()
    if out is not None:
        print(f"\nreliability table written to {out}")
