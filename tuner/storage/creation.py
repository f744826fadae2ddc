"""Opening a store that several processes may be creating at the same instant.

Optuna's storage and MLflow's tracking store both create (or migrate) their tables the first
time a process opens them. Two processes doing that together on one fresh SQLite file fail
(MLflow: ``table _alembic_tmp_experiments already exists``), so a local SQLite file is opened
under a lock file beside it (``<file>.create-lock``). On a database server (PostgreSQL) the
loser fails with a duplicate-key or already-exists error once the winner has made the tables,
so opening is retried there. A database a user named that is not there fails at once, in one
line, instead of after MLflow's minutes of connection retries (:func:`check_database`).

Creating a store's tables is a series of schema migrations, not one transaction: a process
killed in the middle leaves a file that no later process can open. So a new SQLite store is
built in a file beside its own (``<file>.creating-<pid>``) and renamed into place once
complete; the store's file exists only whole.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote

from tuner.errors import TunerError
from tuner.storage.locks import file_lock
from tuner.urls import redact_url

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
    return Path(unquote(url[len("sqlite:///") :].split("?", 1)[0]))


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[bool]:
    """Hold a lock beside an SQLite file while its tables are created or checked: exclusive
    while the file is missing or empty (one process creates the tables), shared once it has
    content (opening a made store only reads its schema, so workers started together open it
    at once instead of one after the other: opening MLflow's store takes most of a second of
    imports). A process that finds the file mid-creation waits for the creator's exclusive lock,
    then sees the finished tables. Nothing for other stores, or where the lock file cannot be
    made (a read-only folder, which no process can create a store in anyway).

    Yields whether this process holds the lock to create the store (the file is missing or
    empty).
    """
    path = sqlite_file(url)
    with contextlib.ExitStack() as stack:
        creating = False
        if path is not None and path.parent.is_dir() and os.access(path.parent, os.W_OK):
            lock = path.with_name(path.name + ".create-lock")
            stack.enter_context(file_lock(lock, shared=_made(path)))
            creating = not _made(path)  # again: a creator may have finished while this one waited
        yield creating


def _made(path: Path) -> bool:
    """Whether the SQLite file exists with content (SQLite makes the file before its tables)."""
    return path.is_file() and path.stat().st_size > 0


def create_aside(create: Callable[[str], None], url: str) -> None:
    """Build a new SQLite store with ``create(aside_url)`` in a file beside the store's own and
    rename it into place when complete. Leftovers of a creator that was killed are removed
    first (the caller holds the exclusive creation lock, so no other process is writing them)."""
    path = sqlite_file(url)
    assert path is not None
    for leftover in path.parent.glob(glob.escape(path.name) + ".creating-*"):
        leftover.unlink(missing_ok=True)
    aside = path.with_name(f"{path.name}.creating-{os.getpid()}")
    query = url.split("?", 1)[1] if "?" in url else ""
    try:
        create(f"sqlite:///{aside}" + (f"?{query}" if query else ""))
        os.replace(aside, path)
    finally:
        aside.unlink(missing_ok=True)


def schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what the loser of two processes creating one database's tables sees."""
    text = str(exc)
    return (
        type(exc).__name__ == "IntegrityError"
        or "already exists" in text
        or "UniqueViolation" in text
        or "Online migration expected" in text  # alembic, when another process migrated first
    )


def open_racing(
    open_store: Callable[[], T], url: str, create: Callable[[str], None] | None = None
) -> T:
    """``open_store()`` under :func:`creation_lock`, retried when it lost a creation race. A new
    SQLite store is first built aside by ``create`` (:func:`create_aside`), when given."""
    with creation_lock(url) as creating:
        if creating and create is not None:
            create_aside(create, url)
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
        engine = sqlalchemy.create_engine(
            url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool
        )
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise TunerError(
            f"{what} {redact_url(url)} cannot be opened: {redact_url(first)}"
        ) from None
