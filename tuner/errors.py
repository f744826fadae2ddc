"""Errors a user can cause. The CLI prints their message on one line and exits non-zero."""


class TunerError(Exception):
    """Base class of every error caused by user input (files, flags, storage, names)."""


class ConfigError(TunerError):
    """A study file (or a value overriding it) is invalid."""


class DataError(TunerError):
    """The data named by a study cannot be loaded or does not fit the study."""
