"""Texts the engine wrote, in the session's language: presets, tips, doctor findings, dataset
report lines, events, errors and chart marks.

Every such message carries a stable code and its params (``engine.messages``); the store keeps
them beside the English text (an event's ``data["msg"]``, a report warning's ``msg``, a run's
``error_msg``). Here each is formatted at the last moment as ``_(CATALOGUE[code]).format(
**params)``, nested messages (a stop reason, a "fill" phrase) translated in their turn. Fixed
texts that are not messages (preset titles, summaries and the "why" of a preset file's
settings, tip titles) are their own msgids (``app/babel_extract.py``).

Rows stored before messages had codes (no ``msg``) are shown in the English they were written
in: the one fallback, documented in docs/i18n.md. Nothing here reads numbers back out of text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.i18n import N_, _, zh
from jobs import service
from jobs.service import CATALOGUE, Message, is_message_json, render

# --- presets and tips -------------------------------------------------------------------------


def tip_title(tip: str | None) -> str:
    """A tip's one-line meaning ("Clip the gradient norm…"), or "" for an unknown id."""
    return _(service.TIPS[tip]) if tip in service.TIPS else ""


def tip_label(tip: str | None) -> str:
    """ "T9 — Clip the gradient norm…" (just the id when unknown)."""
    if not tip or tip not in service.TIPS:
        return tip or ""
    return f"{tip} — {tip_title(tip)}"


# --- messages ----------------------------------------------------------------------------------


def text(value: Any, stored: Mapping[str, Any] | None = None) -> str:
    """A message in the session's language.

    ``value``: a :class:`Message` (in-process, e.g. a preset's "why" or an error), an
    exception carrying one, or the English text a row holds; ``stored``: that row's code and
    params (``{"code", "params"}``), when it has them. A fixed text (a preset file's words) is
    its own msgid. Without a code the English is shown as it is."""
    if isinstance(value, BaseException):
        value = value.args[0] if value.args and isinstance(value.args[0], str) else str(value)
    if value is None:
        return ""
    if isinstance(value, Message):
        stored = value.to_json()
    if not zh():
        return str(value)
    if stored is not None and is_message_json(stored) and stored["code"] in CATALOGUE:
        try:
            return render(stored["code"], stored["params"], _)
        except (KeyError, ValueError, TypeError, IndexError):
            pass  # params from an older code version: the English text below
    return _(str(value)) if value else ""


def refusal(error: BaseException) -> str:
    """The door's :class:`Refused` in the session's language: each field at fault, else its
    message."""
    fields = getattr(error, "fields", None) or {}
    if fields and set(fields) != {"config"}:
        return _("; ").join(text(m) for m in fields.values())
    return text(error)


def stop_reason(reason: str | None) -> str:
    """A summary's stop reason (``early_stop``) in the session's language."""
    code = f"stop.{reason}"
    return text(Message(code)) if code in CATALOGUE else str(reason or "")


def change_text(change: Mapping[str, Any]) -> str:
    """A finding's change as the engine writes it: "optim.lr=0.033, train.clip_norm=5.0"."""
    return ", ".join(f"{k}={v}" for k, v in change.items())


def _msg(e: Mapping[str, Any] | None, key: str = "msg") -> Mapping[str, Any] | None:
    return ((e or {}).get("data") or {}).get(key)


def event_message(e: Mapping[str, Any]) -> str:
    """An event's message (the event log, chart tooltips) in the session's language."""
    return text(e["message"], _msg(e))


def finding(f: Mapping[str, Any], event: Mapping[str, Any] | None) -> tuple[str, str]:
    """(message, suggestion) of a finding of ``jobs.runs.views.findings`` for the doctor panel, in
    the session's language; ``event``: the event it came from (its codes and params)."""
    return text(f["message"], _msg(event)), text(f["suggestion"], _msg(event, "suggestion_msg"))


def run_error(run: Mapping[str, Any]) -> str:
    """Why a run failed (its ``error``, with its code and params in ``error_msg``)."""
    try:
        stored = json.loads(run.get("error_msg") or "null")
    except ValueError:
        stored = None
    return text(run.get("error"), stored)


def report_warning(w: Mapping[str, Any]) -> str:
    """A dataset report line (``{"tip", "message", "msg"}``) in the session's language."""
    return text(w.get("message"), w.get("msg"))


def report_text(report: Mapping[str, Any], key: str) -> str:
    """A report field that is a message (``target_why``), with its ``KEY_msg`` beside it."""
    return text(report.get(key), report.get(f"{key}_msg"))


# --- the engine's vocabulary ---------------------------------------------------------------------

WORDS = {
    "classification": N_("classification"),
    "regression": N_("regression"),
    "tabular": N_("tabular"),
    "image": N_("image"),
    "sequence": N_("sequence"),
    "accuracy": N_("accuracy"),
}


def word(value: object) -> str:
    """A value of the engine's vocabulary (a task, a modality, a metric name) as a word of the
    session's language; any other value as it is."""
    value = str(value)
    return _(WORDS[value]) if value in WORDS else value
