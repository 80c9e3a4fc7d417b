"""Trainboard's dashboard: the entry file only builds the navigation; each page is a module.

The page modules live in ``app/screens/``, not ``app/pages/``: Streamlit 1.67 still switches to
its old directory-based multipage mode when a ``pages/`` folder sits next to the entry file, and
a session that first opens a deep link (e.g. /datasets) then never runs this file.
"""

import logging

import streamlit as st

from app import i18n, session, ui
from app.i18n import _

st.set_page_config(page_title="Trainboard", page_icon=":material/monitoring:", layout="wide")

# Team mode (TRAINBOARD_TEAM=1): a visitor without a valid session sees only the login page.
db = ui.db()
user = session.current_user(db)
# The language first: every title below is drawn in it. Remembered per user ("local" when
# there are no logins); before logging in it lasts for the session.
i18n.setup(db, user["name"] if user else (None if session.team_mode() else "local"))
if session.team_mode() and user is None:
    st.navigation([st.Page("screens/login.py", title=_("Log in"), icon=":material/login:")]).run()
    st.stop()
if user is not None:
    with st.sidebar:
        st.caption(
            _("Logged in as **{name}**").format(name=ui.plain(user["name"]))
            + (_(" (admin)") if user["is_admin"] else "")
        )
        if st.button(_("Log out"), key="logout"):
            session.log_out(db)
            st.rerun()

pages = [
    st.Page(p.path, title=_(p.title), icon=p.icon, default=key == "home")
    for key, p in ui.PAGE_LIST.items()
]
page = st.navigation(pages)
try:
    page.run()
except Exception as e:  # a page bug shows as a message, never as a traceback in the browser
    logging.getLogger("trainboard.app").exception("page %s failed", page.title)
    st.error(
        _("Something went wrong on this page: {error}. Details are in the server log.").format(
            error=e
        )
    )
