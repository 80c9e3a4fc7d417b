"""The engine's exceptions, one per failure mode.

EngineError
 ├── ConfigError        a config value or preset is not allowed (message names the field)
 ├── PresetNotFound     no preset of that name (message lists the ones that exist)
 ├── CheckpointError    a checkpoint can't be read or doesn't match the config
 ├── OutOfMemory        the device ran out of memory (message says what to shrink)
 └── StorageError       the trained model could not be written (e.g. the disk stayed full)

Data problems raise ``engine.data.DataError`` (a ValueError), defined beside the loaders.
"""


class EngineError(Exception):
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


class DataError(ValueError):
    """A dataset can't be used; message names the problem (file, column) and what to do.
    (Also ``engine.data.DataError``: the loaders raise it.)"""
