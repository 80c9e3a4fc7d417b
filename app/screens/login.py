"""Log in (team mode only). The only page a visitor without a session can see."""

import streamlit as st

from app import session, ui
from app.i18n import _
from jobs import service

st.title("Trainboard")
st.caption(
    _(
        "This training server is shared by a team: log in with the account an admin made for "
        "you (`trainboard user add NAME`)."
    )
)
db = ui.db()
with st.form("login"):
    name = st.text_input(_("User name"), key="login_name")
    password = st.text_input(_("Password"), type="password", key="login_password")
    submitted = st.form_submit_button(_("Log in"), type="primary")
if submitted:
    try:
        session.log_in(db, name, password)
    except service.auth.TooManyAttempts as e:
        st.error(
            _("Too many failed attempts for this account: try again in {seconds} s.").format(
                seconds=max(1, round(e.retry_after))
            )
        )
    except service.auth.InvalidCredentials:
        st.error(_("Wrong user name or password."))
    else:
        st.rerun()
