"""Trials that go wrong end with a recorded reason, and the study goes on."""

import optuna
from mlflow import MlflowClient

from tuner.runner import run_study

DIVERGING = """
name = "diverging"
seed = 0
[data]
source = "sklearn:iris"
[budget]
n_trials = 3
max_epochs = 5
[pruner]
name = "none"
[space]
n_layers = 1
units = 16
activation = "relu"
optimizer = "sgd"
lr_schedule = "constant"
batch_size = 16
learning_rate = {low = 1e4, high = 1e5, log = true}
"""


def test_diverging_trials_fail_with_their_reason_and_the_study_goes_on(tmp_path):
    path = tmp_path / "diverging.toml"
    path.write_text(DIVERGING)
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_study(path, storage=f"sqlite:///{tmp_path}/optuna.db", tracking_uri=tracking)
    trials = result.study.trials
    assert len(trials) == 3  # the study went on after the first failure
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all("diverged" in t.user_attrs["fail_reason"] for t in trials)
    assert result.test_scores == {}
    client = MlflowClient(tracking)
    for t in trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FAILED"
        assert "diverged" in run.data.tags["optuna.reason"]
