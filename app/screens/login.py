"""Log in (team mode only). The only page a visitor without a session can see."""

import streamlit as st

from app import session, ui
from jobs import service

st.title("Trainboard")
st.caption(
    "This training server is shared by a team: log in with the account an admin made for "
    "you (`trainboard user add NAME`)."
)
db = ui.db()
with st.form("login"):
    name = st.text_input("User name", key="login_name")
    password = st.text_input("Password", type="password", key="login_password")
    submitted = st.form_submit_button("Log in", type="primary")
if submitted:
    try:
        session.log_in(db, name, password)
    except service.auth.TooManyAttempts as e:
        st.error(
            f"Too many failed attempts for this account: try again in {max(1, round(e.retry_after))} s."
        )
    except service.auth.InvalidCredentials:
        st.error("Wrong user name or password.")
    else:
        st.rerun()
