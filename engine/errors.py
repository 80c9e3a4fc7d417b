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
    """A config value, override or preset is invalid; the message names the field and what is allowed."""


class PresetNotFound(ConfigError):
    """No preset has that name."""


class CheckpointError(EngineError):
    """A checkpoint is missing, unreadable, or belongs to a different config."""


class OutOfMemory(EngineError):
    """The model or batch did not fit in the device's memory."""


class StorageError(EngineError):
    """A file the run must produce (the trained model) could not be written, even after waiting."""
