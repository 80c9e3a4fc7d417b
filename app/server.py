"""The dashboard's server entry: ``trainboard up`` runs ``streamlit run app/server.py``.

Streamlit sees the ``st.App`` below and serves ``main.py`` (the pages) behind Trainboard's own
ASGI middleware: security headers on every response (``app/hardening.py``), and the upload
guard, which refuses uploads before login and bounds upload memory per session
(``app/upload_guard.py``). A connection whose request headers don't arrive in time is closed
(``app/hardening.install_header_timeout``). ``main.py`` stays the script AppTest runs.
"""

import streamlit as st
from starlette.middleware import Middleware

from app.hardening import SecurityHeaders, install_header_timeout
from app.upload_guard import UploadGuard

install_header_timeout()
app = st.App("main.py", middleware=[Middleware(SecurityHeaders), Middleware(UploadGuard)])
