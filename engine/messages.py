"""Every message Trainboard shows a user, as a stable ``code`` with its ``params``.

Django's ``ValidationError(message, code, params)`` and MLflow's ``error_code`` in one small
type: the engine (and ``jobs``) build a :class:`Message` from a code of :data:`CATALOGUE` and
the numbers and names it needs; the message *is* its English text (a ``str`` subclass, so the
console, logs and exceptions read as before), and it also keeps ``code`` and ``params``, which
the store saves beside the text (:meth:`Message.to_json`). The dashboard formats the same code
in the reader's language, ``_(CATALOGUE[code]).format(**params)`` (``app/engine_text.py``), so no
text is ever parsed back into numbers.

The catalogue lives in ``engine/catalogue.py``: one torch-free table, code → English msgid
(Babel extracts it: its entries are marked ``N_``). Add a message there, then its translations
in ``app/locale`` (see docs/architecture.md, "where to change X").

Parameters are plain JSON values (numbers, strings, lists), a nested :class:`Message` (a
phrase that is translated in its turn, e.g. a stop reason), or a list of messages (joined
with "; ").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.catalogue import CATALOGUE, N_

__all__ = ["CATALOGUE", "N_", "Message", "as_json", "is_message_json", "render", "stop_words"]

Gettext = Callable[[str], str]


def _same(text: str) -> str:
    return text


def render(code: str, params: Mapping[str, Any] | None = None, gettext: Gettext = _same) -> str:
    """The message ``code`` filled with ``params``, its template (and those of nested
    messages) passed through ``gettext`` first. Raises KeyError for an unknown code or a
    missing parameter."""
    values = {k: _param(v, gettext) for k, v in (params or {}).items()}
    return gettext(CATALOGUE[code]).format(**values)


def _param(value: Any, gettext: Gettext) -> Any:
    if isinstance(value, Message):
        return render(value.code, value.params, gettext)
    if is_message_json(value):
        return render(value["code"], value.get("params") or {}, gettext)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, Message) or is_message_json(v) for v in value)
    ):
        return gettext(CATALOGUE["sep.list"]).join(_param(v, gettext) for v in value)
    return value


def is_message_json(value: Any) -> bool:
    """Whether ``value`` is a message as stored: ``{"code": …, "params": {…}}``."""
    return isinstance(value, dict) and isinstance(value.get("code"), str) and "params" in value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def as_json(value: Any) -> dict[str, Any] | None:
    """A message's stored form, or None for plain text (a message from before codes)."""
    return value.to_json() if isinstance(value, Message) else None


class Message(str):
    """An English message that remembers its code and parameters.

    >>> m = Message("event.lr_floor", lr=0.0004, floor=0.001)
    >>> str(m)
    'LR 0.0004 fell below the floor 0.001: training is done (T7)'
    >>> m.code, m.params["floor"]
    ('event.lr_floor', 0.001)
    """

    code: str
    params: dict[str, Any]

    def __new__(cls, code: str, /, **params: Any) -> Message:
        self = super().__new__(cls, render(code, params))
        self.code = code
        self.params = params
        return self

    def with_params(self, **params: Any) -> Message:
        """The same message with some params replaced (a worker's stop that the engine saw as
        a cancel: "worker shut down at step 40")."""
        return Message(self.code, **{**self.params, **params})

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "params": _jsonable(self.params)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Message:
        params = {
            k: cls.from_json(v) if is_message_json(v) else v
            for k, v in (d.get("params") or {}).items()
        }
        return cls(d["code"], **params)

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle (a Celery result, an exception sent between processes)
        # rebuild the message from its code, not from the text
        return (_rebuild, (self.code, self.params))

    def __repr__(self) -> str:
        return f"Message({self.code!r}, {self.params!r})"


def stop_words(reason: str | None) -> str:
    """A summary's stop reason (``early_stop``) in English words ("early stop")."""
    code = f"stop.{reason}"
    return render(code) if code in CATALOGUE else str(reason or "")


def _rebuild(code: str, params: dict[str, Any]) -> Message:
    return Message(code, **params)
