"""The engine's exceptions, one per failure mode, and :class:`Refused`, the one type every
error a user can meet derives from.

Refused                 what was refused: ``code``, ``params`` and, for a form, ``fields``
 ├── EngineError (below), DataError
 └── in jobs: StoreError, AuthError, TextRefused (``jobs.service`` fails only with these)

EngineError
 ├── ConfigError        a config value or preset is not allowed (message names the field)
 ├── PresetNotFound     no preset of that name (message lists the ones that exist)
 ├── CheckpointError    a checkpoint can't be read or doesn't match the config
 ├── OutOfMemory        the device ran out of memory (message says what to shrink)
 └── StorageError       the trained model could not be written (e.g. the disk stayed full)

Data problems raise ``engine.data.DataError`` (a ValueError), defined beside the loaders.
"""


class Refused(Exception):
    """Something a person asked for was refused; the message says what and why.

    The one way ``jobs.service`` (the door of the pages and the CLI) fails, as Django's
    ``ValidationError(message, code, params)``: ``code`` is the message's catalogue code when
    the message is an ``engine.messages.Message`` (else the error's kind, e.g.
    ``run_not_found``), ``params`` its numbers and names, and ``fields`` maps each form field
    at fault to what is wrong with it (empty when no single field is). A page catches this one
    type and renders ``code`` and ``params`` in the reader's language. Torch-free and
    import-free, so ``jobs`` and the app can derive from it and catch it cheaply."""

    fields: dict[str, str] = {}

    @property
    def message(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def code(self) -> str:
        code = getattr(self.message, "code", None)
        if code:
            return code
        name = type(self).__name__
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")

    @property
    def params(self) -> dict:
        return dict(getattr(self.message, "params", None) or {})


class EngineError(Refused):
    """Base of every error the engine raises on purpose."""


class ConfigError(EngineError, ValueError):
    """A config value, override or preset is invalid; the message names the field and what is allowed.

    ``fields`` maps each offending dotted field (``"optim.lr"``) to what is wrong with it, so a
    form can show the message next to its field without parsing the text; an error that belongs
    to no single field is keyed ``"config"``."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields: dict[str, str] = dict(fields) if fields else {"config": message}


class PresetNotFound(ConfigError):
    """No preset has that name."""


class CheckpointError(EngineError):
    """A checkpoint is missing, unreadable, or belongs to a different config."""


class OutOfMemory(EngineError):
    """The model or batch did not fit in the device's memory."""


class StorageError(EngineError):
    """A file the run must produce (the trained model) could not be written, even after waiting."""


class DataError(Refused, ValueError):
    """A dataset can't be used; message names the problem (file, column) and what to do.
    (Also ``engine.data.DataError``: the loaders raise it.)"""
