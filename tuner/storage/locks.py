"""Locks shared by every process of a study: a lock file on this host, a PostgreSQL advisory
lock across hosts (the budget guard and the creation of fresh stores hold them)."""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: str | Path, *, shared: bool = False) -> Iterator[None]:
    """An exclusive lock between processes on this host; ``shared``: one that any number of
    processes hold together, which waits only while one holds it exclusively."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(engine, key: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock on its own connection, held for the block."""
    import sqlalchemy

    lock_id = zlib.crc32(key.encode())
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
        try:
            yield
        finally:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
            conn.commit()
