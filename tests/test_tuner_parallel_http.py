"""The tuner against an MLflow server over HTTP (several worker processes: tests/test_scale.py)."""

import socket
import subprocess
import sys
import time

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
