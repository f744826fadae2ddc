"""What a user meets at the command line: ``--version``, ``tuner ui`` refusing a busy port and
stopping its whole server, no password on a child's command line, warnings as one line, tables
that fold at the terminal's width instead of cutting."""

from __future__ import annotations

import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.helpers import cli_env, closed_port, http_status, invoke, wait_until

SECRET = "s3cr3t-pw"


def tuner(*args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``tuner <args>`` in a process of its own, its output captured (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli.app", *args], capture_output=True, text=True, cwd=cwd,
        env=cli_env(**env), timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------- --version


def test_version_prints_the_installed_version_without_loading_the_libraries(tmp_path):
    proc = tuner("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"mlp-tuner {importlib.metadata.version('mlp-tuner')}\n" and proc.stderr == ""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom tuner.cli.app import app\nsys.argv = ['tuner', '--version']\n"
         "try:\n    app()\nexcept SystemExit:\n    pass\n"
         "print(sorted(m for m in ('mlflow', 'optuna', 'numpy', 'pandas') if m in sys.modules))"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )
    assert loaded.stdout.splitlines()[-1] == "[]", loaded.stdout + loaded.stderr


# ------------------------------------------------------------------------------- tuner ui


def test_ui_on_a_busy_port_fails_in_one_line(tmp_path):
    with closed_port() as port:  # held bound by this test
        proc = tuner("ui", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout == "", proc.stdout  # no URL of a server that will not start
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(port) in lines[0], proc.stderr


def descendants(pid: int) -> dict[int, str]:
    """``{pid: command line}`` of every process below ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        stat = _stat(int(entry)) if entry.isdigit() else None
        if stat is not None:
            parents[int(entry)] = stat[1]
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in "ZX"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_ui_stops_its_whole_server_and_keeps_the_password_off_command_lines(tmp_path, sig):
    """SIGTERM to ``tuner ui``: the port stops answering, no process it started remains, and the
    message is about the UI; killed outright (SIGKILL), its server stops all the same. The store's
    password (a ``?password=`` query parameter, which SQLite ignores) is on no child's command
    line and in no output."""
    port = free_port()
    uri = f"sqlite:///{tmp_path}/mlflow.db?password={SECRET}"
    proc = subprocess.Popen(  # the URL in the environment, as a careful user passes it
        [sys.executable, "-m", "tuner.cli.app", "ui", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=cli_env(MLFLOW_TRACKING_URI=uri),
    )
    children: dict[int, str] = {}
    try:
        wait_until(lambda: http_status(port, "/health") == 200, 240, "the MLflow UI to answer", proc, poll=0.5)
        children = descendants(proc.pid)
        assert any("mlflow" in line for line in children.values()), children
        shown = [_cmdline(proc.pid), *children.values()]
        assert not [line for line in shown if SECRET in line], shown
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        wait_until(lambda: http_status(port, "/health") is None, 60, "the port to stop answering")
        wait_until(lambda: not [p for p in children if running(p)], 60, "the UI's processes to end")
    finally:
        for pid in [proc.pid, *children]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.communicate(timeout=30)
    assert SECRET not in out + err and "password=***" in out, out
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, out + err
        assert err.strip().splitlines()[-1] == "stopped the MLflow UI", err[-2000:]
        assert "trial" not in err


@pytest.fixture
def signal_handlers():
    """The handlers a command installs in this process are put back after the test."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_ui_passes_a_database_password_in_the_environment_only(monkeypatch, signal_handlers):
    """A PostgreSQL URL with a password: the MLflow child gets it in its environment; its command
    line and the command's output do not show it. A child that exits by itself is an error."""
    started = []

    class Child:
        pid = 2**30  # no such process group: nothing to stop

        def __init__(self, cmd, env=None, **kwargs):
            started.append((cmd, env))

        def wait(self, timeout=None):
            return 3

        poll = wait

    monkeypatch.setattr(subprocess, "Popen", Child)
    url = f"postgresql://u:{SECRET}@127.0.0.1/x"
    result = invoke("ui", "--tracking-uri", url, "--port", str(free_port()))
    assert len(started) == 1
    cmd, env = started[0]
    assert SECRET not in " ".join(cmd) and env["MLFLOW_BACKEND_STORE_URI"] == url
    assert result.exit_code == 1 and SECRET not in result.output and "u:***@" in result.output, result.output
    assert "stopped by itself (exit code 3)" in result.output


# ------------------------------------------------------------------------------- warnings


PEOPLE = """
name = "people"
seed = 0
[data]
source = "people.csv"
target = "segment"
task = "classification"
[budget]
n_trials = 2
max_epochs = 2
[result]
ensemble = 1
[space]
n_layers = 1
units = 8
"""


def test_the_command_prints_a_warning_as_one_line(tmp_path):
    """Direct: a warning in the command's process is ``warning: <message>``."""
    proc = subprocess.run(
        [sys.executable, "-c", "import warnings\nfrom tuner.process import own_process\nown_process()\n"
         "warnings.warn('mind the gap', UserWarning)"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )
    assert proc.stderr == "warning: mind the gap\n", proc.stderr


def test_run_warnings_have_no_source_lines_in_the_command_or_its_workers(tmp_path):
    """A CSV with an identifier column warns in the command (its ``--jobs`` workers train on the
    data it prepared); every warning is one line, without the file and line of the code that
    raised it."""
    rows = ["customer_id,age,income,segment"] + [
        f"C{i:05d},{18 + i % 60},{40 + (i * 7) % 30}.5,{'senior' if 18 + i % 60 > 45 else 'junior'}"
        for i in range(200)
    ]
    (tmp_path / "people.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "people.toml").write_text(PEOPLE)
    proc = tuner("run", "people.toml", "--jobs", "2", "--storage", f"sqlite:///{tmp_path}/o.db",
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert warned and all(line.startswith("warning: ") for line in warned), proc.stderr
    assert "customer_id" in warned[0]
    assert not re.search(r"\.py:\d+:", proc.stderr), proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("  ")], proc.stderr


# ------------------------------------------------------------------------------- tables


def test_status_tables_fold_at_80_columns_instead_of_cutting(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    name = "customer_segments_with_a_long_descriptive_name_2026"
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("metric", "balanced_accuracy")
    for number in range(3):
        study.add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=0.9 - number / 100,
            user_attrs={"n_layers": 3, "units_l0": 1024, "units_l1": 512, "units_l2": 256, "batch_size": 1024,
                        "activation": "leaky_relu", "optimizer": "adamw", "learning_rate": 0.00123},
        ))
    for args in (("status", "--storage", url), ("status", name, "--storage", url)):
        proc = tuner(*args, cwd=tmp_path, COLUMNS="80")
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, proc.stdout
        assert max(len(line) for line in proc.stdout.splitlines()) <= 80, proc.stdout
    assert "1024-512-256" in proc.stdout and "leaky_relu" in proc.stdout and "0.9000" in proc.stdout


def test_a_full_disk_under_a_store_is_one_error_line(capsys):
    """SQLite's "database or disk is full" reaches the command wrapped in Optuna's and
    SQLAlchemy's errors: the command says what to do in one line and exits 1."""
    import sqlite3

    import optuna
    import pytest
    import typer

    from tuner.cli.command import user_errors

    def write_trial():
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc

    with pytest.raises(typer.Exit) as info:
        user_errors(write_trial)()
    assert info.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full (database or disk is full)" in err
    assert "free some space and run the same command to resume" in err


def test_other_errors_still_reach_the_traceback():
    import pytest

    from tuner.cli.command import user_errors

    def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        user_errors(broken)()
