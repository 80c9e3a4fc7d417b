"""Session-wide hooks."""

from __future__ import annotations

import sys

import pytest

from tests import reliability


@pytest.fixture(autouse=True)
def _keep_main_module():
    """Streamlit's AppTest runs app/main.py as ``__main__`` inside this process, and a page that
    reruns from within a fragment can leave it there. A later test that starts processes with
    multiprocessing's "spawn" then has every child re-run app/main.py, die, and be restarted by
    its Pool forever (a hung suite, seen once in a clean-clone run). Put the real one back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def pytest_sessionfinish(session, exitstatus):
    out = reliability.write()
    if out is not None:
        print(f"\nreliability table written to {out}")
