"""The one normaliser for every name and free-text field a person types or uploads (run names,
dataset and file names): NFKC, then control and format characters removed (Unicode categories
Cc and Cf: NUL, newlines, bidi overrides such as U+202E, zero-width spaces), whitespace
collapsed, and at most :data:`MAX_TEXT` characters. A longer text is refused with a message,
never cut: the person must know what was stored.

Python's ``unicodedata`` does the work; no library adds anything to these few lines.
"""

from __future__ import annotations

import unicodedata

from engine.errors import Refused
from engine.messages import Message

MAX_TEXT = 200
# NFKC can make a text longer (one ligature becomes several letters): a text that is already
# far beyond the limit is refused before it is normalised, so a 40 MB name costs nothing.
_RAW_FACTOR = 4


WHATS = ("name", "run name", "file name")  # the texts clean_text guards, with their words


class TextRefused(Refused, ValueError):
    """A typed or uploaded text is too long (the message says how long and what is allowed)."""

    def __init__(self, what: str, length: int, limit: int) -> None:
        self.what, self.length, self.limit = what, length, limit
        what_msg = Message(f"what.{what.replace(' ', '_')}") if what in WHATS else what
        super().__init__(Message("guard.too_long", what=what_msg, length=length, limit=limit))


def invisible(c: str) -> bool:
    """A control or format character: nothing a name should hold (and nothing a page shows)."""
    return unicodedata.category(c) in ("Cc", "Cf")


def clean_text(value: object, *, what: str = "name", limit: int = MAX_TEXT) -> str:
    """``value`` as it is stored and shown; ``TextRefused`` when it is longer than ``limit``."""
    text = str(value)
    if len(text) > limit * _RAW_FACTOR:
        raise TextRefused(what, len(text), limit)
    text = unicodedata.normalize("NFKC", text)
    # A control character (a newline, a tab) separates words; a format character joins them.
    text = "".join(
        " " if unicodedata.category(c) == "Cc" else "" if invisible(c) else c for c in text
    )
    text = " ".join(text.split())
    if len(text) > limit:
        raise TextRefused(what, len(text), limit)
    return text
