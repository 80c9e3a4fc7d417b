"""Trainboard's dashboard: the entry file only builds the navigation; each page is a module.

The page modules live in ``app/screens/``, not ``app/pages/``: Streamlit 1.67 still switches to
its old directory-based multipage mode when a ``pages/`` folder sits next to the entry file, and
a session that first opens a deep link (e.g. /datasets) then never runs this file.
"""

import logging

import streamlit as st

from app import session, ui

st.set_page_config(page_title="Trainboard", page_icon=":material/monitoring:", layout="wide")

# Team mode (TRAINBOARD_TEAM=1): a visitor without a valid session sees only the login page.
db = ui.db()
user = session.current_user(db)
if session.team_mode() and user is None:
    st.navigation([st.Page("screens/login.py", title="Log in", icon=":material/login:")]).run()
    st.stop()
if user is not None:
    with st.sidebar:
        st.caption(
            f"Logged in as **{ui.plain(user['name'])}**" + (" (admin)" if user["is_admin"] else "")
        )
        if st.button("Log out", key="logout"):
            session.log_out(db)
            st.rerun()

pages = [
    st.Page(p.path, title=p.title, icon=p.icon, default=key == "home")
    for key, p in ui.PAGE_LIST.items()
]
page = st.navigation(pages)
try:
    page.run()
except Exception as e:  # a page bug shows as a message, never as a traceback in the browser
    logging.getLogger("trainboard.app").exception("page %s failed", page.title)
    st.error(f"Something went wrong on this page: {e}. Details are in the server log.")
