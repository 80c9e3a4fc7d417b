"""The dashboard's server entry: ``trainboard up`` runs ``streamlit run app/server.py``.

Streamlit sees the ``st.App`` below and serves ``main.py`` (the pages) behind Trainboard's own
ASGI middleware, which refuses uploads before login and bounds upload memory per session
(``app/upload_guard.py``). ``main.py`` stays the script AppTest runs.
"""

import streamlit as st
from starlette.middleware import Middleware

from app.upload_guard import UploadGuard

app = st.App("main.py", middleware=[Middleware(UploadGuard)])
