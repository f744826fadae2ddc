"""The tuner against an MLflow server over HTTP (several worker processes: tests/test_scale.py)."""

from mlflow import MlflowClient

from tests.helpers import child_runs, invoke, write_study


def test_study_logs_to_an_mlflow_server_over_http(tmp_path, tracking_server):
    study_file = write_study(tmp_path, name="overhttp", n_trials=3)
    result = invoke("run", str(study_file), "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri", tracking_server)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_server)
    parents, children = child_runs(client, "overhttp")
    assert len(parents) == 1 and len(children) == 3
    assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) >= 1 for r in children)
