"""SQLite settings for the embedded stores (Optuna's storage, MLflow's tracking store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlalchemy


def _wal_normal(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def use_wal(engine: sqlalchemy.engine.Engine) -> None:
    """Write-ahead logging with ``synchronous=NORMAL`` on every connection of ``engine``.

    A commit does not wait for an fsync, and several local processes (workers, ``mlflow ui``)
    still share the file safely; WAL is SQLite's mode for that. Idempotent.
    """
    import sqlalchemy

    if not sqlalchemy.event.contains(engine, "connect", _wal_normal):
        sqlalchemy.event.listen(engine, "connect", _wal_normal)
        engine.dispose()  # connections opened before (creating the tables) get the settings too
