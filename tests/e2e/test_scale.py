"""Running at scale, with real faults: workers on PostgreSQL, a worker killed with SIGKILL,
Ctrl-C / SIGTERM, the MLflow server down at start and mid-study, an unreachable database, and
the docker-compose topology run as local processes. (SQLite under `--jobs 2`, which needs no
PostgreSQL: tests/e2e/test_tuner_parallel_http.py.)

Every test gets a fresh PostgreSQL database (``postgres_url`` in conftest.py) and runs the real
command line in subprocesses where processes are what it checks (workers, signals, a killed
process, a command's whole output); the commands around them (a resume, a second worker, a study
to query) run in the test's process, with the same environment (``CLI_SETTINGS``). Heartbeats
are shortened through TUNER_HEARTBEAT_INTERVAL / TUNER_GRACE_PERIOD so that a dead worker's trial
is noticed in seconds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import (
    CLI_SETTINGS, assert_no_failed_trials, cli_env, closed_port, http_status, invoke, mlflow_server, wait_until,
)
from tuner.storage.budget import counted_trials
from tuner.storage.retries import retry_links

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

REPO = Path(__file__).resolve().parents[2]
State = optuna.trial.TrialState
DONE = (State.COMPLETE, State.PRUNED)

# Short trials (iris, a few epochs) and slow ones (digits, sigmoid units, small steps and no early
# stopping: 1,500 epochs, seconds per trial even on a fast machine, so that a signal lands
# mid-trial after the trial's first reports are visible, which takes up to a second). A slow
# study's final model is its best trial alone, not refit (no test of a slow study checks it, and
# a refit would train for as long again).
FAST = """
name = "{name}"
seed = 1
[data]
source = "sklearn:iris"
[budget]
n_trials = {n_trials}
max_epochs = {epochs}
[pruner]
name = "none"
[space]
n_layers = 1
units = {{low = 4, high = 16}}
batch_size = [16, 32]
learning_rate = {{low = 1e-3, high = 1e-1, log = true}}
patience = false
"""

SLOW = """
name = "{name}"
seed = 1
[data]
source = "sklearn:digits"
[budget]
n_trials = {n_trials}
max_epochs = 1500
[pruner]
name = "none"
[space]
n_layers = 1
units = 128
activation = "sigmoid"
batch_size = 16
optimizer = "sgd"
lr_schedule = "constant"
learning_rate = {{low = 2e-4, high = 4e-4, log = true}}
l2 = 1e-5
dropout = 0.0
patience = false
[result]
ensemble = 1
refit = false
"""


def write_study(folder: Path, name: str, n_trials: int, *, slow: bool = False, epochs: int = 8) -> Path:
    path = folder / f"{name}.toml"
    text = SLOW.format(name=name, n_trials=n_trials) if slow else FAST.format(name=name, n_trials=n_trials, epochs=epochs)
    path.write_text(text)
    return path


def tuner_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli.app", *args]


def run_cli(*args: str, cwd: Path, timeout: float = 180, env_changes: dict[str, str | None] | None = None
            ) -> subprocess.CompletedProcess:
    """``tuner ARGS`` in a subprocess; ``env_changes`` sets variables, or unsets those given None."""
    return subprocess.run(tuner_cmd(*args), capture_output=True, text=True, cwd=cwd, env=_env(env_changes),
                          timeout=timeout)


def start_cli(*args: str, cwd: Path, log: Path, env_changes: dict[str, str | None] | None = None) -> subprocess.Popen:
    out = open(log, "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(tuner_cmd(*args), stdout=out, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                            env=_env(env_changes))


#: The suite runs its subprocesses with one BLAS thread; these unset that, as a user's shell would.
BLAS_UNSET = {"OPENBLAS_NUM_THREADS": None, "OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None}


def _env(changes: dict[str, str | None] | None) -> dict[str, str]:
    env = cli_env()
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def running_trial_with_epochs(storage: str, name: str):
    """A RUNNING trial that has reported at least one epoch, or None."""
    try:
        trials = load(storage, name).get_trials(deepcopy=False, states=(State.RUNNING,))
    except KeyError:  # the study does not exist yet
        return None
    return next((t for t in trials if t.intermediate_values), None)


def linked(trial):
    """``trial`` if it has its MLflow run id, else None."""
    return trial if trial is not None and "mlflow_run_id" in trial.user_attrs else None


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def trial_runs(tracking_uri: str, study_name: str):
    """``(parent runs, {trial number: [child runs]})`` of the study's experiment."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study_name)
    assert experiment is not None, f"no MLflow experiment {study_name!r}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("tuner.role") == "parent"]
    children: dict[int, list] = {}
    for r in runs:
        if r.data.tags.get("tuner.role") == "trial":
            children.setdefault(int(r.data.tags["optuna.trial_number"]), []).append(r)
    return parents, children


def assert_one_to_one(study: optuna.Study, tracking_uri: str) -> None:
    """Every trial has exactly one MLflow child run, found by its trial-number tag, and its
    ``mlflow_run_id`` user attribute names that run."""
    _, children = trial_runs(tracking_uri, study.study_name)
    numbers = [t.number for t in study.trials]
    assert sorted(children) == numbers
    for trial in study.trials:
        assert len(children[trial.number]) == 1, f"trial {trial.number} has {len(children[trial.number])} runs"
        run = children[trial.number][0]
        if "mlflow_run_id" in trial.user_attrs:
            assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.data.tags["optuna.trial_number"] == str(trial.number)


# ------------------------------------------------------------------------------- 1. workers


def test_two_workers_share_one_budget_on_postgres(tmp_path, postgres_url, tracking_server):
    study_file = write_study(tmp_path, "workers", n_trials=6)
    args = ("worker", str(study_file), "--storage", postgres_url, "--tracking-uri", tracking_server)
    # as a user starts them: BLAS free to start a thread per core in each (issue 17)
    workers = [start_cli(*args, cwd=tmp_path, log=tmp_path / f"w{i}.log", env_changes=BLAS_UNSET) for i in range(2)]
    try:
        codes = [w.wait(timeout=240) for w in workers]
    finally:
        for w in workers:
            stop_process(w)
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    study = load(postgres_url, "workers")
    assert [t.number for t in study.trials] == list(range(6))  # the total, not 6 per worker
    assert all(t.state in DONE for t in study.trials), [t.state for t in study.trials]
    assert_one_to_one(study, tracking_server)
    parents, children = trial_runs(tracking_server, "workers")
    assert len(parents) == 2 and {p.info.status for p in parents} == {"FINISHED"}
    assert {c[0].data.tags["mlflow.parentRunId"] for c in children.values()} <= {p.info.run_id for p in parents}
    assert all("6 of 6 trials finished" in log for log in logs)
    # each worker process trained with the thread policy's one BLAS thread (tuner/threads.py)
    assert {t.user_attrs["blas_threads"] for t in study.trials} == {1}


# ------------------------------------------------------------------------------- 2. SIGKILL


def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(tmp_path, postgres_url, tracking_server):
    study_file = write_study(tmp_path, "killed", n_trials=2, slow=True)
    args = ("worker", str(study_file), "--storage", postgres_url, "--tracking-uri", tracking_server)
    first = start_cli(*args, cwd=tmp_path, log=tmp_path / "first.log")
    try:
        # a trial that trains and is linked to its MLflow run (written at once, tuner/storage/_internals.py)
        victim = wait_until(lambda: linked(running_trial_with_epochs(postgres_url, "killed")), 120,
                            "a running trial linked to its run", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        # The trial stays RUNNING: nobody but a heartbeat check can know that its worker died.
        assert load(postgres_url, "killed").trials[victim.number].state == State.RUNNING
    finally:
        stop_process(first)
    second = invoke(*args, env=CLI_SETTINGS)  # the next worker (in this process)
    assert second.exit_code == 0, second.output

    study = load(postgres_url, "killed")
    trials = study.trials
    assert not [t for t in trials if t.state in (State.RUNNING, State.WAITING)]
    failed = [t for t in trials if t.state == State.FAIL]
    assert [t.number for t in failed] == [victim.number]  # failed by the heartbeat check
    links = retry_links(trials)
    assert set(links) == {victim.number}
    retry = trials[links[victim.number]]
    assert retry.state in DONE and retry.params == victim.params
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == victim.number
    assert retry.user_attrs["retry_of"] == victim.number
    # Exactly the budget of finished trials: the failed one is replaced by its retry, not added.
    assert len([t for t in trials if t.state in DONE]) == 2
    assert len(counted_trials(trials)) == 2 and len(trials) == 3
    # MLflow: both runs carry the link, the dead worker's run is closed as FAILED.
    client = MlflowClient(tracking_server)
    old_run = client.get_run(victim.user_attrs["mlflow_run_id"])
    new_run = client.get_run(retry.user_attrs["mlflow_run_id"])
    assert old_run.info.run_id != new_run.info.run_id
    assert old_run.data.tags["tuner.retried_by"] == str(retry.number)
    assert old_run.info.status == "FAILED"
    assert new_run.data.tags["tuner.retry_of"] == str(victim.number)
    assert new_run.data.tags["optuna.trial_number"] == str(retry.number)
    assert_one_to_one(study, tracking_server)


# ------------------------------------------------------------------------------- 3. Ctrl-C


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_closes_its_trial_and_resumes(tmp_path, postgres_url, tracking_server, sig):
    name = f"interrupted_{sig.name.lower()}"
    study_file = write_study(tmp_path, name, n_trials=1, slow=True)
    args = ("run", str(study_file), "--storage", postgres_url, "--tracking-uri", tracking_server)
    proc = start_cli(*args, cwd=tmp_path, log=tmp_path / "run.log")
    try:
        victim = wait_until(lambda: running_trial_with_epochs(postgres_url, name), 120, "a running trial", proc)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    finally:
        stop_process(proc)
    output = (tmp_path / "run.log").read_text()
    assert code == 130, output
    assert "Traceback" not in output and "run the same command to resume" in output
    study = load(postgres_url, name)
    assert not [t for t in study.trials if t.state == State.RUNNING]
    assert study.trials[victim.number].state in (State.FAIL, State.PRUNED)
    run = MlflowClient(tracking_server).get_run(study.trials[victim.number].user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"

    again = invoke(*args, env=CLI_SETTINGS)  # the same command again (in this process)
    assert again.exit_code == 0, again.output
    study = load(postgres_url, name)
    assert_no_failed_trials(study, expected=[victim.number])
    assert len(counted_trials(study.trials)) == 1  # the interrupted trial's re-run, off the budget
    assert not [t for t in study.trials if t.state in (State.RUNNING, State.WAITING)]
    assert any(t.state == State.COMPLETE for t in study.trials)
    assert_one_to_one(study, tracking_server)


# ------------------------------------------------------------------------------- 4. MLflow down


def test_tracking_server_unreachable_at_start(tmp_path, postgres_url):
    study_file = write_study(tmp_path, "nomlflow", n_trials=2)
    with closed_port() as port:
        _refused_at_start(study_file, f"http://127.0.0.1:{port}", postgres_url, tmp_path)
    assert optuna.get_all_study_summaries(storage=postgres_url) == []  # no study, so no trial


def _refused_at_start(study_file: Path, closed: str, postgres_url: str, tmp_path: Path) -> None:
    for command in ("run", "worker"):
        proc = run_cli(command, str(study_file), "--storage", postgres_url, "--tracking-uri", closed, cwd=tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "MLflow tracking store" in lines[0] and "unreachable" in lines[0], proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr


def _reusable_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class TcpProxy:
    """127.0.0.1:<port> forwarded to a local server: :meth:`cut` makes the server unreachable to
    its clients (connections refused, open ones dropped) and :meth:`restore` brings it back on
    the same port, as a network outage or a server restart does, without restarting the server.

    The port stays this proxy's while it is cut: a socket bound to it (SO_REUSEPORT, not
    listening, so connections are refused) holds it, and each listener binds beside it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._holder = _reusable_socket()
        self._holder.bind(("127.0.0.1", 0))
        self.port = self._holder.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = _reusable_socket()
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._keep(listener)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        self.cut()
        self._holder.close()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return  # cut
            self._keep(client)
            self._keep(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_tracking_server_lost_mid_study_then_sync(tmp_path, postgres_url, tracking_server):
    proxy = TcpProxy(int(tracking_server.rsplit(":", 1)[1]))
    uri = f"http://127.0.0.1:{proxy.port}"
    study_file = write_study(tmp_path, "outage", n_trials=6, epochs=30)
    args = ("run", str(study_file), "--storage", postgres_url, "--tracking-uri", uri)
    proxy.restore()
    proc = start_cli(*args, cwd=tmp_path, log=tmp_path / "run.log")
    try:
        wait_until(lambda: _finished(postgres_url, "outage") >= 1, 120, "a first finished trial", proc)
        proxy.cut()  # the tracking server is gone mid-study
        code = proc.wait(timeout=240)
    finally:
        stop_process(proc)
    output = (tmp_path / "run.log").read_text()
    assert code == 0, output  # Optuna is the record of truth: the study goes on
    assert "MLflow tracking failed" in output and "tuner sync" in output
    study = load(postgres_url, "outage")
    assert len(study.trials) == 6 and all(t.state in DONE for t in study.trials)

    proxy.restore()
    try:
        _, before = trial_runs(uri, "outage")
        assert len(before) < 6, "the outage should have left trials out of MLflow"
        synced = run_cli("sync", "outage", "--storage", postgres_url, "--tracking-uri", uri, cwd=tmp_path)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert f"logged {6 - len(before)} missing" in synced.stdout
        _, after = trial_runs(uri, "outage")
        assert sorted(after) == list(range(6))
        assert all(len(runs) == 1 for runs in after.values())
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED"}  # pruned: told apart by its tag
        for trial in study.trials:
            run = after[trial.number][0]
            assert run.info.status == status[trial.state.name]
            assert run.data.tags["optuna.state"] == trial.state.name
        # A second sync (in this process) has nothing left to do.
        again = invoke("sync", "outage", "--storage", postgres_url, "--tracking-uri", uri, env=CLI_SETTINGS)
        assert again.exit_code == 0 and "logged 0 missing, closed 0" in again.stdout, again.output
    finally:
        proxy.close()


def _finished(storage: str, name: str) -> int:
    try:
        return len(load(storage, name).get_trials(deepcopy=False, states=DONE))
    except KeyError:
        return 0


# ------------------------------------------------------------------------------- 5. database / names


def _one_error_line(proc, expected: str) -> None:
    """``proc``: a command's process (CompletedProcess) or its in-process run (CliRunner's result)."""
    code = proc.returncode if isinstance(proc, subprocess.CompletedProcess) else proc.exit_code
    assert code != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and expected in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_database_unreachable_and_unknown_study_names(tmp_path, postgres_url):
    study_file = write_study(tmp_path, "known", n_trials=1, epochs=2)
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    with closed_port() as port:
        closed = f"postgresql+psycopg://postgres@127.0.0.1:{port}/optuna"
        status = run_cli("status", "--storage", closed, cwd=tmp_path)
        _one_error_line(status, "cannot open the study storage")
        assert "127.0.0.1" in status.stderr
        _one_error_line(invoke("worker", str(study_file), "--storage", closed, "--tracking-uri", tracking,
                               env=CLI_SETTINGS), "cannot open the study storage")

    created = invoke("run", str(study_file), "--storage", postgres_url, "--tracking-uri", tracking, env=CLI_SETTINGS)
    assert created.exit_code == 0, created.output
    assert_no_failed_trials(load(postgres_url, "known"))
    _one_error_line(invoke("status", "nope", "--storage", postgres_url, env=CLI_SETTINGS), "no study named 'nope'")
    synced = run_cli("sync", "nope", "--storage", postgres_url, "--tracking-uri", tracking, cwd=tmp_path)
    _one_error_line(synced, "no study named 'nope'")
    assert "known" in synced.stderr  # the message names the studies that do exist


# ------------------------------------------------------------------------------- 7. compose


def compose_services() -> dict:
    import yaml

    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


#: The user only: the password reaches the services as PGPASSWORD (tests/e2e/test_compose.py).
PG_URL = re.compile(r"^postgresql\+psycopg://\$\{POSTGRES_USER\}@postgres:5432/(\w+)$")


def _option(command: list[str], name: str) -> str:
    assert command.count(name) == 1, f"{name} once in {command}"
    return command[command.index(name) + 1]


def test_compose_file_shape():
    services = compose_services()
    assert set(services) == {"postgres", "mlflow", "worker", "dashboard"}
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert any(v.startswith("pgdata:") for v in pg["volumes"])
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "${POSTGRES_PASSWORD" in pg["environment"]["POSTGRES_PASSWORD"]  # from .env, not written here
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    worker = services["worker"]
    assert "ports" not in worker and "container_name" not in worker  # scalable: --scale worker=8
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert worker["depends_on"]["mlflow"]["condition"] in ("service_started", "service_healthy")
    assert worker["build"] == "." and services["mlflow"]["build"] == "."
    storage = PG_URL.match(_option(worker["command"], "--storage"))
    assert storage and storage.group(1) == "optuna"
    dashboard = services["dashboard"]["command"]
    assert dashboard[0] == "optuna-dashboard" and dashboard[1] == _option(worker["command"], "--storage")
    example = (REPO / ".env.example").read_text()
    assert "POSTGRES_USER=" in example and "POSTGRES_PASSWORD=" in example
    init = (REPO / "docker/initdb/10-mlflow-database.sql").read_text()
    assert "CREATE DATABASE mlflow" in init


def test_compose_topology_as_local_processes(tmp_path, make_postgres_db):
    """The `mlflow` and `worker` services' own commands, with the service names replaced by
    127.0.0.1, the MLflow port by one the server picks (port 0, read back; the allowed hosts then
    name the service on any port) and the databases by fresh ones."""
    services = compose_services()
    mlflow_cmd = list(services["mlflow"]["command"])
    worker_cmd = list(services["worker"]["command"])
    optuna_db, mlflow_db = make_postgres_db("tuner_optuna"), make_postgres_db("tuner_mlflow")

    # mlflow server, exactly as composed, but local.
    assert mlflow_cmd[:2] == ["mlflow", "server"]
    backend = PG_URL.match(_option(mlflow_cmd, "--backend-store-uri"))
    assert backend and backend.group(1) == "mlflow"
    assert _option(mlflow_cmd, "--host") == "0.0.0.0" and _option(mlflow_cmd, "--port") == "5000"
    assert _option(mlflow_cmd, "--artifacts-destination") == "/mlartifacts" and "--serve-artifacts" in mlflow_cmd
    allowed = _option(mlflow_cmd, "--allowed-hosts").split(",")
    assert {"mlflow", "mlflow:5000"} <= set(allowed)  # the service name the workers use
    local = {
        _option(mlflow_cmd, "--backend-store-uri"): mlflow_db,
        "/mlartifacts": str(tmp_path / "mlartifacts"),
        "0.0.0.0": "127.0.0.1",
        "5000": "0",
        _option(mlflow_cmd, "--allowed-hosts"): ",".join(h.replace("5000", "*") for h in allowed),
    }
    server_args = [local.get(a, a) for a in mlflow_cmd[1:]]

    # The worker: tuner worker STUDY --storage ... --tracking-uri http://mlflow:5000.
    assert worker_cmd[:2] == ["tuner", "worker"] and re.fullmatch(r"studies/\w+\.toml", worker_cmd[2])
    assert (REPO / worker_cmd[2]).exists()
    assert _option(worker_cmd, "--tracking-uri") == "http://mlflow:5000"
    study_file = write_study(tmp_path, "compose", n_trials=6)

    environment = dict(services["mlflow"]["environment"])
    assert environment.pop("PGPASSWORD").startswith("${POSTGRES_PASSWORD")  # the local database needs none
    assert environment == {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # as cli_env()
    with mlflow_server(server_args, tmp_path, tmp_path / "server.log") as port:
        worker_local = {
            worker_cmd[2]: str(study_file),  # a tiny study instead of the 40-trial digits one
            _option(worker_cmd, "--storage"): optuna_db,
            "http://mlflow:5000": f"http://127.0.0.1:{port}",
        }
        worker_args = [worker_local.get(a, a) for a in worker_cmd[1:]]
        assert len(worker_args) == len(worker_cmd) - 1
        # --allowed-hosts at work: the service name is accepted, an unknown Host is refused.
        api = "/api/2.0/mlflow/experiments/search?max_results=1"
        assert http_status(port, api, host_header=f"mlflow:{port}") == 200
        assert http_status(port, api, host_header="elsewhere.example") == 403
        workers = [
            subprocess.Popen(tuner_cmd(*worker_args), stdout=open(tmp_path / f"w{i}.log", "w"),  # noqa: SIM115
                             stderr=subprocess.STDOUT, cwd=tmp_path, env=cli_env())
            for i in range(2)
        ]
        try:
            codes = [w.wait(timeout=240) for w in workers]
        finally:
            for w in workers:
                stop_process(w)
        assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
        study = load(optuna_db, "compose")
        assert [t.number for t in study.trials] == list(range(6))
        assert all(t.state in DONE for t in study.trials)
        uri = f"http://127.0.0.1:{port}"
        assert_one_to_one(study, uri)
        parents, _ = trial_runs(uri, "compose")
        assert len(parents) == 2
        # The trials' models went through the server's artifact proxy to --artifacts-destination.
        assert list((tmp_path / "mlartifacts").rglob("model.npz"))


# ------------------------------------------------------------------------------- schema race


def test_workers_starting_together_on_an_empty_database(postgres_url):
    """Several workers opening a fresh database at once all create Optuna's tables; on PostgreSQL
    the losers used to fail with a duplicate-key error (seen in the compose test)."""
    code = "import sys; from tuner.storage.storages import open_storage; open_storage(sys.argv[1]); print('opened')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, postgres_url], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=REPO, env=cli_env())
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outputs
    assert all(o.strip().endswith("opened") for o in outputs), outputs
