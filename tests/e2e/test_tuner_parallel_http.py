"""The tuner against an MLflow server over HTTP, in one process and with ``--jobs 2`` on SQLite
(workers on PostgreSQL and faults: tests/e2e/test_scale.py). No PostgreSQL needed here."""

from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, child_runs, invoke, write_study
from tests.e2e.test_scale import DONE, load, run_cli
from tests.e2e.test_scale import write_study as write_fast_study


def test_study_logs_to_an_mlflow_server_over_http(tmp_path, tracking_server):
    study_file = write_study(tmp_path, name="overhttp", n_trials=3)
    result = invoke("run", str(study_file), "--storage", f"sqlite:///{tmp_path}/o.db", "--tracking-uri", tracking_server)
    assert result.exit_code == 0, result.output
    client = MlflowClient(tracking_server)
    parents, children = child_runs(client, "overhttp")
    assert len(parents) == 1 and len(children) == 3
    assert_no_failed_trials(load(f"sqlite:///{tmp_path}/o.db", "overhttp"))
    assert all(len(client.get_metric_history(r.info.run_id, "val_accuracy")) >= 1 for r in children)
    # the run ends with the link to the study's runs table on that server (issue 15)
    experiment = client.get_experiment_by_name("overhttp").experiment_id
    assert f"the study's runs are at {tracking_server}/#/experiments/{experiment}/runs" in " ".join(result.output.split())


def test_sqlite_with_two_jobs_is_never_locked(tmp_path, tracking_server):
    study_file = write_fast_study(tmp_path, "sqlite_jobs", n_trials=16, epochs=2)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    proc = run_cli("run", str(study_file), "--jobs", "2", "--storage", storage, "--tracking-uri", tracking_server,
                   cwd=tmp_path, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "database is locked" not in output
    study = load(storage, "sqlite_jobs")
    assert len(study.trials) == 16
    assert all(t.state in DONE for t in study.trials), {t.number: t.user_attrs.get("fail_reason") for t in study.trials}
    assert len({repr(sorted(t.params.items())) for t in study.trials}) == 16  # the two workers draw apart
    # both processes log under the one parent run of this `tuner run`, one child run per trial
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("sqlite_jobs")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == list(range(16))
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in children}
