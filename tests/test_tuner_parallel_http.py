"""The tuner against an MLflow server over HTTP, and with several worker processes."""

import socket
import subprocess
import sys
import time

import optuna
import pytest
from mlflow import MlflowClient

from tests.test_tuner_e2e import _child_runs, invoke, write_study


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_study_logs_to_an_mlflow_server_over_http(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        study_file = write_study(tmp_path, name="overhttp", n_trials=3)
        result = invoke("run", str(study_file), "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri", uri)
        assert result.exit_code == 0, result.output
        parents, children = _child_runs(MlflowClient(uri), "overhttp")
        assert len(parents) == 1 and len(children) == 3
        assert all(len(MlflowClient(uri).get_metric_history(r.info.run_id, "val_accuracy")) >= 1 for r in children)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_jobs_share_one_budget_and_one_parent_run(tmp_path):
    study_file = write_study(tmp_path, name="parallel", n_trials=6)
    storage, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    result = invoke("run", str(study_file), "--jobs", "2", "--storage", storage, "--tracking-uri", tracking)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="parallel", storage=storage)
    assert len(study.trials) == 6  # the total across both workers, not 6 each
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    parents, children = _child_runs(MlflowClient(tracking), "parallel")
    assert len(parents) == 1
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == list(range(6))
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in children}
