"""Shared fixtures. ``postgres_url``: a fresh, uniquely named database on the PostgreSQL server
at ``$TUNER_TEST_PG_HOST:$TUNER_TEST_PG_PORT`` (default 127.0.0.1:5432, user
``$TUNER_TEST_PG_USER`` or ``postgres``, trust or ``$PGPASSWORD`` authentication), dropped after
the test. Without a reachable server the test is skipped, or fails when ``$CI`` is set (in CI
the PostgreSQL tests must run)."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

# Let Python keep compiled modules (__pycache__), in this process and in every process the tests
# start (workers, `tuner` commands, MLflow servers): with PYTHONDONTWRITEBYTECODE set, as some
# shells and containers do, each of those compiled the ~3,000 modules of MLflow, Optuna,
# scikit-learn and their dependencies from source again at every start (about 9 s of CPU a
# `tuner run` here, more than half of a short run). Nothing a test checks depends on it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_configure(config):
    """Scratch folders (``tmp_path``) in memory when the machine has a tmpfs at /dev/shm, unless
    the run names its own (``--basetemp``, ``$PYTEST_DEBUG_TEMPROOT``). Every study a test runs
    writes SQLite stores, and each commit waits for the disk there: a fresh MLflow store's schema
    migrations alone took several seconds of waiting on disk, against about one in memory.
    Nothing a test checks needs its files to outlive the machine."""
    shm = "/dev/shm"
    if config.option.basetemp is None and not os.environ.get("PYTEST_DEBUG_TEMPROOT") \
            and os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        os.environ["PYTEST_DEBUG_TEMPROOT"] = shm

PG_HOST = os.environ.get("TUNER_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TUNER_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TUNER_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TUNER_TEST_PG_ADMIN_DB", "postgres")


def _admin_connection():
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DB,
        password=os.environ.get("PGPASSWORD"), connect_timeout=5, autocommit=True,
    )


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) is not usable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


def _url(dbname: str) -> str:
    password = os.environ.get("PGPASSWORD")
    auth = f"{PG_USER}:{password}" if password else PG_USER
    return f"postgresql+psycopg://{auth}@{PG_HOST}:{PG_PORT}/{dbname}"


def _drop(conn, dbname: str) -> None:
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (dbname,),
    )
    conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')


@pytest.fixture
def make_postgres_db():
    """A factory of fresh databases: ``make_postgres_db()`` -> a ``postgresql+psycopg://`` URL.
    Every database made is dropped (its connections terminated first) after the test."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        _unavailable(f"psycopg is not installed ({exc})")
    try:
        conn = _admin_connection()
    except Exception as exc:  # noqa: BLE001 - any connection failure means: no server to test on
        _unavailable(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    made: list[str] = []

    def make(prefix: str = "tuner_test") -> str:
        dbname = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        try:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        except Exception as exc:  # noqa: BLE001
            _unavailable(f"cannot create a database ({exc})")
        made.append(dbname)
        return _url(dbname)

    try:
        yield make
    finally:
        for dbname in made:
            try:
                _drop(conn, dbname)
            except Exception as exc:  # noqa: BLE001 - leave the test's result alone
                print(f"warning: could not drop test database {dbname}: {exc}")
        conn.close()


@pytest.fixture
def postgres_url(make_postgres_db) -> str:
    """A fresh PostgreSQL database for one test, as a ``postgresql+psycopg://`` URL."""
    return make_postgres_db()


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """One MLflow tracking server (SQLite backend) shared by the tests of a session (of an xdist
    worker); each test uses its own study name, hence its own experiment. Starting one takes
    10-20 s here, so tests share it rather than start their own."""
    from tests.helpers import mlflow_server, sqlite_server_args

    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(sqlite_server_args(folder), folder, folder / "server.log") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def _mlflow_store_template(tmp_path_factory) -> dict:
    """Where the test process keeps its template MLflow store (made on first use, below)."""
    return {"folder": tmp_path_factory.mktemp("mlflow-template"), "made": None}


@pytest.fixture(autouse=True)
def _mlflow_stores_from_template(request, monkeypatch, _mlflow_store_template):
    """A new MLflow SQLite store made in the test's process is a copy of one the tuner's own
    ``_create_tables`` made earlier in this process, instead of MLflow's schema migrations run
    again (about a second of CPU each, and most tests start at least one study on a fresh
    store). The tuner's creation around it is unchanged: the lock, the file built aside and
    renamed into place, write-ahead logging. Stores made by the processes a test starts are
    made for real, and a test marked ``store_creation`` makes its own for real too."""
    if request.node.get_closest_marker("store_creation"):
        return
    import shutil

    from tuner.storage.creation import sqlite_file
    from tuner.tracking import client

    create_tables = client._create_tables

    def from_template(uri: str) -> None:
        path = sqlite_file(uri)
        if path is None:  # not a file: made as the tuner makes it
            create_tables(uri)
            return
        if _mlflow_store_template["made"] is None:
            made = _mlflow_store_template["folder"] / "mlflow.db"
            create_tables(f"sqlite:///{made}")
            _mlflow_store_template["made"] = made
        shutil.copyfile(_mlflow_store_template["made"], path)

    monkeypatch.setattr(client, "_create_tables", from_template)
