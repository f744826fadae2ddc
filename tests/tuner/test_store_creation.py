"""Stores opened by several processes at the same instant (issue 12 case 4): a fresh SQLite
file (Optuna's storage, MLflow's tracking store) is created under a lock beside it, a server
database is retried; and a tracking database that does not exist fails in one line at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import cli_env

REPO = Path(__file__).resolve().parents[2]

# Stores made here by MLflow's own migrations, also in this process (tests/conftest.py).
pytestmark = pytest.mark.store_creation

# Each process imports everything first, says "ready", and opens both stores when told to go,
# so that the openings start together (the slow imports would otherwise stagger them).
OPEN_BOTH = """
import sys
from tuner.storage.storages import open_storage
from tuner.tracking import StudyTracker
folder = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
open_storage(f"sqlite:///{folder}/optuna.db")
StudyTracker("s", "sqlite:///optuna.db", tracking_uri=f"sqlite:///{folder}/mlflow.db").check_connection()
print("opened", flush=True)
"""


def test_processes_creating_fresh_sqlite_stores_together(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", OPEN_BOTH, str(tmp_path)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=cli_env())
        for _ in range(3)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert all(out.strip() == "opened" for out, _ in results)


@pytest.mark.postgres
def test_a_tracking_database_that_does_not_exist_fails_in_one_line(tmp_path, make_postgres_db):
    from tests.helpers import write_study

    existing = make_postgres_db()  # the server is there, the database named below is not
    missing = existing.rsplit("/", 1)[0] + "/no_such_mlflow_db"
    study = write_study(tmp_path, "nodb", n_trials=1)
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.cli.app", "run", str(study), "--storage", f"sqlite:///{tmp_path}/o.db",
         "--tracking-uri", missing],
        capture_output=True, text=True, cwd=tmp_path, env=cli_env(), timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MLflow tracking store"), proc.stderr[-3000:]
    assert "no_such_mlflow_db" in lines[0] and "does not exist" in lines[0]


def _lock_free(path: Path, kind: int) -> bool:
    """Whether ``kind`` (LOCK_SH or LOCK_EX) can be taken on ``path`` now: a second open file,
    which flock treats like another process."""
    import fcntl

    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def test_the_creation_lock_is_exclusive_until_the_file_has_tables_then_shared(tmp_path):
    """Workers started together open a made store at once (shared), while its creation stays one
    process at a time (exclusive, also against openers who find the file mid-creation)."""
    import fcntl
    import sqlite3

    from tuner.storage.creation import creation_lock

    db = tmp_path / "mlflow.db"
    lock = tmp_path / "mlflow.db.create-lock"
    url = f"sqlite:///{db}"
    with creation_lock(url):  # no file yet: the creator's lock
        assert not _lock_free(lock, fcntl.LOCK_SH) and not _lock_free(lock, fcntl.LOCK_EX)
    db.touch()
    with creation_lock(url):  # empty (SQLite makes the file before its tables): still creating
        assert not _lock_free(lock, fcntl.LOCK_SH)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    with creation_lock(url):  # made: another opener gets in, a creator would wait
        assert _lock_free(lock, fcntl.LOCK_SH) and not _lock_free(lock, fcntl.LOCK_EX)


# A process that creates one store when told to go; the test kills it while it is creating.
CREATE_ONE = """
import sys
from tuner.storage.storages import open_storage
from tuner.tracking import StudyTracker
kind, folder = sys.argv[1], sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
if kind == "optuna":
    open_storage(f"sqlite:///{folder}/store.db")
else:
    StudyTracker("s", "sqlite:///optuna.db", tracking_uri=f"sqlite:///{folder}/store.db").check_connection()
print("opened", flush=True)
"""


def _being_created(folder: Path) -> bool:
    """Whether the store's file, or the file beside it, has content (a journal file may come and
    go between listing and reading it)."""
    for path in folder.glob("store.db*"):
        try:
            if not path.name.endswith("lock") and path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def _kill_while_creating(kind: str, folder: Path, delay: float) -> None:
    """Start creating a store, wait until its file (or the file beside it) has content, then
    ``delay`` seconds more, and kill the process with SIGKILL."""
    import time

    proc = subprocess.Popen([sys.executable, "-c", CREATE_ONE, kind, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=cli_env())
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _being_created(folder):
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("delay", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("kind", ["mlflow", "optuna"])
def test_a_creator_killed_mid_creation_leaves_a_store_the_next_process_opens(tmp_path, kind, delay):
    """Creating a store is a series of migrations; a process killed in the middle used to leave
    a half-made file that every later open refused ("table _alembic_tmp_params already exists")."""
    from tuner.storage.storages import open_storage
    from tuner.tracking.client import open_client

    _kill_while_creating(kind, tmp_path, delay)
    url = f"sqlite:///{tmp_path}/store.db"
    if kind == "optuna":
        storage = open_storage(url)
        assert storage.get_all_studies() == []
    else:
        client = open_client(url)
        assert [e.name for e in client.search_experiments()] == ["Default"]
    assert not list(tmp_path.glob("store.db.creating-*"))
