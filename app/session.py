"""Who is using the dashboard: nobody in particular (single-user default) or a logged-in team
member (team mode, TRAINBOARD_TEAM=1). Pages ask :func:`current_user` and :func:`owner_name`."""

from __future__ import annotations

import secrets
from typing import Any

import streamlit as st

from jobs import service

auth = service.auth

TOKEN_KEY = "tb_session_token"


def team_mode() -> bool:
    return auth.team_mode()


def current_user(db) -> dict[str, Any] | None:
    """The logged-in user, or None (logged out, expired session, or single-user mode)."""
    if not team_mode():
        return None
    user = auth.session_user(db, st.session_state.get(TOKEN_KEY))
    if user is None:
        st.session_state.pop(TOKEN_KEY, None)  # expired or revoked: back to the login page
    return user


def owner_name(db) -> str:
    """The owner recorded on new runs and datasets."""
    user = current_user(db)
    return user["name"] if user else "local"


def may_modify(db, owner: str | None) -> bool:
    return auth.may_modify(current_user(db), owner)


def log_in(db, name: str, password: str) -> None:
    # Failed logins are counted per (name, browser address): guessing from one place never
    # locks the real user out of another (jobs.people.auth.login). The address is the connection's,
    # or the X-Forwarded-For entry of the proxy that TRAINBOARD_TRUSTED_PROXY names (uvicorn
    # reads it; `trainboard up` passes the setting on as FORWARDED_ALLOW_IPS). Without an
    # address, per browser session plus a shared rate: never one bucket for everybody.
    ip = st.context.ip_address
    if isinstance(ip, str) and ip:
        token = auth.login(db, name.strip(), password, client=f"ip:{ip}")
    else:
        # A random id kept in this browser session's state: its own bucket.
        sid = st.session_state.setdefault("tb_login_client", secrets.token_hex(8))
        token = auth.login(db, name.strip(), password, client=f"session:{sid}", address_known=False)
    st.session_state[TOKEN_KEY] = token


def log_out(db) -> None:
    token = st.session_state.pop(TOKEN_KEY, None)
    if token:
        auth.logout(db, token)
