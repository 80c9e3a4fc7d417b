"""The dashboard's languages: English (the source text), Simplified Chinese (简体中文) and
Traditional Chinese (繁體中文).

Every string a page shows goes through :func:`_` (or :func:`ngettext`); a string defined where
it can't be translated yet (a module-level table) is marked with :func:`N_` and translated
where it is drawn. The catalogues are ``app/locale/zh_Hans/LC_MESSAGES/messages.po`` (gettext,
extracted and updated with Babel: docs/dashboard.md, "Languages") and ``zh_Hant``, generated from
it by ``python -m app.babel_hant`` (OpenCC and a glossary). It is compiled in memory
the first time a process needs it (``jobs.service.compile_catalog``) and again when the file
changes, so there is no ``.mo`` file to go stale.

Each session has one language (``st.session_state["lang"]``): the one the user picked in the
sidebar *in this browser*, else the browser's own (``st.context.locale``, then the
Accept-Language header), else English. A pick is remembered in the store per browser (the
HttpOnly id cookie ``app.hardening`` gives each browser) and per user, so a new browser
follows its own language until its user chooses there. Without the cookie (cookies off) a
pick lasts for the session. Texts that come from the engine (presets, tips, doctor
findings, dataset reports, events) are translated in :mod:`app.engine_text`.
"""

from __future__ import annotations

import contextlib
import gettext
import math
import re
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app import hardening
from jobs import service

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
# The switch shows each language in its own words, so it reads right whichever is on.
LANGUAGES: dict[str, str] = service.LANGUAGES  # one home: engine/vocab.py
# A language saved before the catalogues had their script names.
ALIASES = {"zh_CN": "zh_Hans"}
# Browser tags that mean Traditional characters: the script, or the regions that write it.
TRADITIONAL = ("hant", "tw", "hk", "mo")
LANG_KEY = "lang"  # session state: the session's language
PICK_KEY = "lang_pick"  # the sidebar switch
USER_KEY = "lang_user"  # whose saved language the session has applied ("" logged out)
SETTING = "language"  # the per-user setting in the store

_forced: ContextVar[str | None] = ContextVar("trainboard_lang", default=None)
_catalogs: dict[str, tuple[float, gettext.NullTranslations]] = {}
_lock = threading.Lock()
_NULL = gettext.NullTranslations()


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it (tables defined at import)."""
    return message


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(lang: str, *, check: bool = False) -> gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English: none). ``check``: recompile if the .po
    file changed since (done once per page run, not on every string)."""
    if lang not in LANGUAGES or lang == DEFAULT:
        return _NULL
    hit = _catalogs.get(lang)
    if hit is not None and not check:
        return hit[1]
    path = po_path(lang)
    mtime = path.stat().st_mtime
    with _lock:
        hit = _catalogs.get(lang)
        if hit is None or hit[0] != mtime:
            hit = (mtime, service.compile_catalog(path))
            _catalogs[lang] = hit
    return hit[1]


def lang() -> str:
    """The language of the current session (or of a :func:`language` block)."""
    forced = _forced.get()
    if forced is not None:
        return forced
    if get_script_run_ctx(suppress_warning=True) is None:
        return DEFAULT
    value = st.session_state.get(LANG_KEY, DEFAULT)
    return value if value in LANGUAGES else DEFAULT


@contextlib.contextmanager
def language(code: str) -> Iterator[None]:
    """Translate into ``code`` inside the block, whatever the session's language (tests, and
    code that runs outside a page)."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; choose one of: {', '.join(LANGUAGES)}")
    token = _forced.set(code)
    try:
        yield
    finally:
        _forced.reset(token)


def _(message: str) -> str:
    """``message`` in the session's language (itself when there is no translation)."""
    return translations(lang()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(lang()).ngettext(singular, plural, n)


def zh() -> bool:
    return lang() != DEFAULT


# --- choosing the language --------------------------------------------------------------------


def match(tag: str | None) -> str | None:
    """The supported language for a browser language tag, or None: zh-TW, zh-HK, zh-MO and
    zh-Hant(-…) get Traditional Chinese; zh, zh-CN, zh-SG and zh-Hans(-…) Simplified (a script
    subtag wins over a region: zh-Hans-HK is Simplified)."""
    t = (tag or "").strip().replace("_", "-").lower()
    if t == "zh" or t.startswith("zh-"):
        parts = t.split("-")[1:]
        if "hans" in parts:
            return "zh_Hans"
        return "zh_Hant" if any(p in TRADITIONAL for p in parts) else "zh_Hans"
    if t == "en" or t.startswith("en-"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The first supported language of an Accept-Language header, by its q-values."""
    ranked = []
    for i, part in enumerate((header or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q=([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for _q, _i, tag in sorted(ranked):
        if found := match(tag):
            return found
    return None


def browser_language() -> str | None:
    """What the browser asks for: ``navigator.language``, else the Accept-Language header."""
    with contextlib.suppress(Exception):  # st.context differs across Streamlit versions
        if found := match(st.context.locale):
            return found
    with contextlib.suppress(Exception):
        return from_accept_language(st.context.headers.get("Accept-Language"))
    return None


def browser() -> str | None:
    """This browser's id (the cookie ``app.hardening`` sets), or None without one."""
    with contextlib.suppress(Exception):  # st.context differs across Streamlit versions
        return hardening.browser_id(st.context.headers.get("Cookie"))
    return None


def chooser(who: str) -> str | None:
    """Whose pick this is, as the store keeps it: ``user@browser`` ("local@…" in single-user
    mode, "@…" before logging in); None when the browser sent no id."""
    found = browser()
    return f"{who}@{found}" if found else None


def setup(db, user: str | None) -> str:
    """Decide this session's language and draw the sidebar switch; main.py calls it first on
    every run. ``user``: whose pick applies (a team member's name, "local" in single-user mode;
    None before logging in), in this browser (:func:`chooser`)."""
    who = user or ""
    if st.session_state.get(USER_KEY) != who:  # a new session, or someone logged in or out
        owner = chooser(who)
        saved = service.user_setting(db, owner, SETTING) if owner else None
        saved = ALIASES.get(saved, saved)
        if saved in LANGUAGES:
            st.session_state[LANG_KEY] = saved
        elif LANG_KEY not in st.session_state:
            st.session_state[LANG_KEY] = browser_language() or DEFAULT
        st.session_state[USER_KEY] = who
    if st.session_state.get(LANG_KEY) not in LANGUAGES:
        st.session_state[LANG_KEY] = DEFAULT
    if st.session_state.get(PICK_KEY) != st.session_state[LANG_KEY]:
        st.session_state[PICK_KEY] = st.session_state[LANG_KEY]
    translations(st.session_state[LANG_KEY], check=True)
    st.sidebar.radio(
        "Language / 语言 / 語言",
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        horizontal=True,
        key=PICK_KEY,
        on_change=_picked,
        args=(who,),
    )
    return st.session_state[LANG_KEY]


def _picked(who: str) -> None:
    picked = st.session_state[PICK_KEY]
    st.session_state[LANG_KEY] = picked
    if owner := chooser(who):
        service.set_user_setting(service.connect(), owner, SETTING, picked)


# --- numbers and durations as each language writes them ---------------------------------------


def duration(seconds: float | None) -> str:
    """A duration as people say it: "45 s", "1 min 20 s", "2 h 05 min" (jobs.runs.format's forms;
    a test keeps them equal) or "45 秒", "1 分 20 秒", "2 小时 05 分". None (or NaN: a table
    column with a missing value) is "—"."""
    if seconds is None or math.isnan(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return _("{s} s").format(s=s)
    if s < 3600:
        return _("{m} min {s:02d} s").format(m=s // 60, s=s % 60)
    return _("{h} h {m:02d} min").format(h=s // 3600, m=s % 3600 // 60)


def ago(seconds: float | None) -> str:
    """How long ago something happened, from the seconds since ("12 s ago", "12 秒前"); "—"
    for None or NaN (never seen)."""
    if seconds is None or math.isnan(seconds):
        return "—"
    return _("{duration} ago").format(duration=duration(seconds))


def status(value: str) -> str:
    """A run status ("running") as a word of the session's language (its English word is
    ``engine.vocab.STATUS_WORDS``)."""
    return _(service.STATUS_WORDS.get(value, value))


def columns(names: dict[str, str]) -> dict[str, str]:
    """Table headers: {column: translated header} for ``DataFrame.rename``."""
    return {k: _(v) for k, v in names.items()}
