"""Errors a user can cause. The CLI prints their message on one line and exits non-zero."""


class TunerError(Exception):
    """Base class of every error caused by user input (files, flags, storage, names)."""


class ConfigError(TunerError):
    """A study file (or a value overriding it) is invalid."""


class DataError(TunerError):
    """The data named by a study cannot be loaded or does not fit the study."""


#: What a full disk looks like in the errors of SQLite, SQLAlchemy and the OS.
_FULL_DISK = ("database or disk is full", "no space left on device")


def full_disk(exc: BaseException) -> str | None:
    """The first line saying the disk is full among ``exc`` and its causes, or None.

    A store that cannot be written (SQLite's ``database or disk is full``, ``ENOSPC``) reaches the
    command wrapped in its libraries' errors (Optuna's ``StorageInternalError``, SQLAlchemy's
    ``OperationalError``), whose tracebacks say nothing a user can act on."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip()
        if getattr(current, "errno", None) == 28 or any(s in text.lower() for s in _FULL_DISK):
            return text.splitlines()[0] if text else "no space left on device"
        current = current.__cause__ or current.__context__
    return None
