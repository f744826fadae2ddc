"""Helpers shared by test modules: the CLI's environment, held ports, polling, an MLflow
tracking server in its own process group, an app served in a thread, and a small study run
through the CLI in-process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest


#: The small, fast network most tests train: one layer of 64 ReLU units, Adam at a constant
#: 1e-3, batches of 32, L2 1e-4, no dropout, no input scaling, and the convergence stop after 10
#: epochs without progress. The estimators' defaults (two layers of 256 units, AdamW on a
#: 256-epoch cosine schedule, dropout, robust scaling) take seconds a fit, and what a test checks
#: rarely depends on them; tests of the defaults themselves use the estimators as they are.
SMALL_NETWORK = {
    "hidden_layer_sizes": (64,),
    "optimizer": "adam",
    "lr_schedule": "constant",
    "batch_size": 32,
    "max_epochs": 200,
    "n_iter_no_change": 10,
    "l2": 1e-4,
    "dropout": 0.0,
    "robust_scaling": False,
}


def small_classifier(**params):
    """``MLPClassifier`` with :data:`SMALL_NETWORK` under ``params``."""
    from model import MLPClassifier

    return MLPClassifier(**{**SMALL_NETWORK, **params})


def small_regressor(**params):
    """``MLPRegressor`` with :data:`SMALL_NETWORK` under ``params``."""
    from model import MLPRegressor

    return MLPRegressor(**{**SMALL_NETWORK, **params})


#: The environment the suite runs the command in, set (None: unset) over the test process's own:
#: in the processes it starts (:func:`cli_env`) and around in-process runs that need it
#: (``invoke(..., env=CLI_SETTINGS)``). Heartbeats are short, so that a dead worker's trial is
#: noticed in seconds, but not so short that a live worker's heartbeat, delayed behind other
#: processes' writes to the same SQLite file on a loaded machine, looks dead (with a 3 s grace
#: period two workers sometimes ran the same trial); one BLAS thread a process.
CLI_SETTINGS: dict[str, str | None] = {
    "MLFLOW_RUN_ID": None,
    "TUNER_STORAGE": None,
    "TUNER_HEARTBEAT_INTERVAL": "1",
    "TUNER_GRACE_PERIOD": "8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
    # As in docker-compose.yml: the server's GenAI job runner (a second process) is not needed.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    # MLflow's own setting: `mlflow ui` (`tuner ui`) starts 4 server processes by default, each
    # importing MLflow; one serves a test as well.
    "MLFLOW_WORKERS": "1",
}


def cli_env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    for key, value in CLI_SETTINGS.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env.update(extra)
    return env


@contextmanager
def closed_port():
    """A port on 127.0.0.1 that nothing listens on, for as long as the block runs: bound (so no
    other process can take it) and not listening (so connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextmanager
def served_in_thread(app):
    """The ASGI ``app`` served over HTTP by uvicorn on a thread of this process; yields its base
    URL. The socket is bound before the server starts (port 0: the system picks a free port,
    and it is held from then on), so no other process can take the port in between."""
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 60, "the in-process server")
        assert server.started, "the in-process server stopped before it started"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def post_json(url: str, body: dict) -> tuple[int, dict]:
    """POST ``body`` as JSON; the HTTP status and the JSON answer (error answers too)."""
    import json

    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, poll: float = 0.2):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"process exited ({proc.returncode}) before {what}")
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll)


# ------------------------------------------------------------------------------- mlflow server


@contextmanager
def mlflow_server(args: list[str], cwd: Path, log: Path):
    """``mlflow <args>`` in its own process group (it starts uvicorn children), up on /health;
    yields the port it listens on. ``args`` ask for port 0: the server binds a free port itself
    and its log says which (a port picked here and released could be taken in between)."""
    out = open(log, "a")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
        env=cli_env(), start_new_session=True,
    )
    try:
        port = wait_until(lambda: _listening_port(log), 180, "the mlflow server's port in its log", proc, poll=0.5)
        wait_until(lambda: _healthy(port), 180, f"the mlflow server on port {port}", proc, poll=0.5)
        yield port
    finally:
        kill_group(proc)
        out.close()


def _listening_port(log: Path) -> int | None:
    """The port of uvicorn's "Uvicorn running on http://HOST:PORT" line in ``log``, if there."""
    import re

    found = re.search(r"Uvicorn running on https?://[^\s:]+:(\d+)", log.read_text(errors="replace"))
    return int(found.group(1)) if found else None


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """End the server and its workers: the process group this test started it in."""
    if proc.poll() is None or _group_alive(proc.pid):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _healthy(port: int) -> bool:
    return http_status(port, "/health") == 200


def http_status(port: int, path: str, host_header: str | None = None) -> int | None:
    """The HTTP status of GET ``path`` (None when nothing answers)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if host_header:
        request.add_header("Host", host_header)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def sqlite_server_args(folder: Path) -> list[str]:
    """A tracking server on SQLite, on a port of its choosing (see :func:`mlflow_server`)."""
    return ["server", "--host", "127.0.0.1", "--port", "0", "--workers", "1",
            "--backend-store-uri", f"sqlite:///{folder}/mlflow-server.db",
            "--artifacts-destination", str(folder / "mlartifacts")]


# ------------------------------------------------------------------------------- a small study

SMALL_STUDY = """
name = "{name}"
seed = 3

[data]
source = "sklearn:digits"

[budget]
n_trials = {n_trials}
max_epochs = 12

[pruner]
name = "median"
n_startup_trials = 2
n_warmup_steps = 1

[space]
n_layers = {{low = 1, high = 2}}
units = {{low = 8, high = 64, log = true}}
batch_size = [32, 64, 128]
learning_rate = {{low = 1e-4, high = 0.05, log = true}}
"""


def write_study(folder: Path, name: str = "small", n_trials: int = 8) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(SMALL_STUDY.format(name=name, n_trials=n_trials))
    return path


def invoke(*args: str, env: dict[str, str | None] | None = None):
    """The ``tuner`` command in this process (typer's CliRunner); ``env``: variables set (None:
    unset) while it runs, put back after."""
    from typer.testing import CliRunner

    from tuner.cli.app import app

    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def child_runs(client, study_name: str):
    """``(parent runs, child runs)`` of the study's MLflow experiment."""
    experiment = client.get_experiment_by_name(study_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def assert_no_failed_trials(study, expected=()) -> None:
    """Every trial of ``study`` ended COMPLETE or PRUNED, except the trials numbered in
    ``expected``, which FAILED. End-to-end tests call it, so that a trial failing for a reason the
    test does not mean (an error in the objective, a lost worker) cannot pass unseen."""
    import optuna

    State = optuna.trial.TrialState
    failed = {t.number: t.user_attrs.get("fail_reason") for t in study.trials if t.state == State.FAIL}
    assert sorted(failed) == sorted(expected), f"failed trials (reasons): {failed}"
    unfinished = [(t.number, t.state.name) for t in study.trials if t.state not in (State.COMPLETE, State.PRUNED, State.FAIL)]
    assert unfinished == [], unfinished


def released_together(code: str, argv: list[list[str]], cwd: Path, timeout: float = 120) -> list[str]:
    """Run ``python -c code`` once per entry of ``argv``; each process does its slow setup, prints
    ``ready`` and waits for a line on stdin, then all are released at once, so that what follows
    (creating a store, asking for a trial) happens at the same instant. Returns their stdout
    after ``ready``; fails on a non-zero exit."""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=cwd, env=cli_env())
        for args in argv
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-2000:] for _, err in results]
    return [out for out, _ in results]


def storage_url(kind: str, folder: Path, request) -> str:
    """A fresh Optuna storage URL of ``kind``: sqlite, journal (a file) or postgres (a scratch
    database of the ``postgres_url`` fixture)."""
    if kind == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{folder}/o.db" if kind == "sqlite" else str(folder / "o.journal")
