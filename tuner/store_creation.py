"""Opening a store that several processes may be creating at the same instant.

Optuna's storage and MLflow's tracking store both create (or migrate) their tables the first
time a process opens them. Two processes doing that together on one fresh SQLite file fail
(MLflow: ``table _alembic_tmp_experiments already exists``), so a local SQLite file is opened
under a lock file beside it (``<file>.create-lock``). On a database server (PostgreSQL) the
loser fails with a duplicate-key or already-exists error once the winner has made the tables,
so opening is retried there. A database a user named that is not there fails at once, in one
line, instead of after MLflow's minutes of connection retries (:func:`check_database`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

from .locks import file_lock
from .errors import TunerError
from .urls import redact_url

T = TypeVar("T")

SCHEMA_RACE_RETRIES = 3
#: Seconds to connect when checking a database server (:func:`check_database`).
CONNECT_TIMEOUT = 10
#: Server databases a tracking URI may name (SQLAlchemy dialects, with or without a driver).
SERVER_DATABASES = ("postgresql", "mysql", "mssql")


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL; None for an in-memory database or another URL."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return None
    return Path(unquote(url[len("sqlite:///"):].split("?", 1)[0]))


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Hold a lock beside an SQLite file while its tables are created or checked: exclusive
    while the file is missing or empty (one process creates the tables), shared once it has
    content (opening a made store only reads its schema, so workers started together open it
    at once instead of one after the other: opening MLflow's store takes most of a second of
    imports). A process that finds the file mid-creation waits for the creator's exclusive lock,
    then sees the finished tables. Nothing for other stores, or where the lock file cannot be
    made (a read-only folder, which no process can create a store in anyway)."""
    path = sqlite_file(url)
    with contextlib.ExitStack() as stack:
        if path is not None and path.parent.is_dir() and os.access(path.parent, os.W_OK):
            made = path.is_file() and path.stat().st_size > 0
            stack.enter_context(file_lock(path.with_name(path.name + ".create-lock"), shared=made))
        yield


def schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what the loser of two processes creating one database's tables sees."""
    text = str(exc)
    return (
        type(exc).__name__ == "IntegrityError"
        or "already exists" in text
        or "UniqueViolation" in text
        or "Online migration expected" in text  # alembic, when another process migrated first
    )


def open_racing(open_store: Callable[[], T], url: str) -> T:
    """``open_store()`` under :func:`creation_lock`, retried when it lost a creation race."""
    with creation_lock(url):
        for attempt in range(SCHEMA_RACE_RETRIES + 1):
            try:
                return open_store()
            except Exception as exc:
                if attempt == SCHEMA_RACE_RETRIES or not schema_race(exc):
                    raise
                time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def check_database(url: str, what: str) -> None:
    """Connect once to a server database named by ``url`` (PostgreSQL, MySQL, SQL Server) and
    raise one TunerError line if that fails: a database that does not exist, a wrong host or
    password. Other URLs (SQLite files, http servers) are left alone."""
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in SERVER_DATABASES:
        return
    import sqlalchemy

    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if scheme in ("postgresql", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise TunerError(f"{what} {redact_url(url)} cannot be opened: {redact_url(first)}") from None
