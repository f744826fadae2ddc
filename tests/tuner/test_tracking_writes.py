"""What tracking a trial costs the store (issue 29): a few MLflow writes per trial, whatever its
number of epochs, all from the logging threads, and every point of its curves logged."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

# Every trial trains its max_epochs: no pruner, no early stopping.
FIXED_EPOCHS = """
name = "{name}"
seed = 4
[data]
source = "sklearn:digits"
[budget]
n_trials = 3
max_epochs = {epochs}
[pruner]
name = "none"
[space]
n_layers = 1
units = 8
batch_size = 128
learning_rate = {{low = 1e-3, high = 1e-2, log = true}}
patience = false
[result]
ensemble = 1
refit = false
"""

#: MlflowClient calls that write to the store.
WRITES = ("create_run", "log_batch", "set_terminated", "set_tag", "delete_tag", "log_artifact", "log_artifacts",
          "log_metric", "log_param", "update_run")


def _study_writes(tmp_path, monkeypatch, epochs: int):
    """Run a study of 3 trials of ``epochs`` epochs each; the writes made by the trials (on the
    logging threads, and on the training thread while a trial runs), by name, and the study."""
    from tuner.runner import run_study
    from tuner.search.objective import Objective

    writes: Counter = Counter()
    in_trial = threading.local()
    for name in WRITES:
        real = getattr(MlflowClient, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if threading.current_thread().name.startswith("mlflow-") or getattr(in_trial, "on", False):
                writes[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, name, counted)
    real_call = Objective.__call__

    def trial(self, optuna_trial):
        in_trial.on = True
        try:
            return real_call(self, optuna_trial)
        finally:
            in_trial.on = False

    monkeypatch.setattr(Objective, "__call__", trial)
    folder = tmp_path / f"e{epochs}"
    folder.mkdir()
    study_file = folder / "fixed.toml"
    study_file.write_text(FIXED_EPOCHS.format(name=f"fixed{epochs}", epochs=epochs))
    result = run_study(study_file, storage=f"sqlite:///{folder}/optuna.db", tracking_uri=f"sqlite:///{folder}/mlflow.db")
    monkeypatch.undo()
    assert_no_failed_trials(result.study)
    return writes, result.study, f"sqlite:///{folder}/mlflow.db"


def test_a_trial_makes_a_few_writes_whatever_its_epochs(tmp_path, monkeypatch):
    short, _, _ = _study_writes(tmp_path, monkeypatch, epochs=2)
    long, study, tracking = _study_writes(tmp_path, monkeypatch, epochs=30)

    n = len(study.trials)
    models = lambda writes: writes.pop("log_artifact", 0)  # noqa: E731 - stored by improving trials only
    assert models(long) <= n and models(short) <= n
    assert long == short  # independent of the number of epochs
    # Each trial: its run created, one batch (params, curves, scores, tags), its run closed; a
    # trial that improves on its process's best also stores its model (one artifact).
    assert long["create_run"] == long["log_batch"] == long["set_terminated"] == n
    assert set(long) == {"create_run", "log_batch", "set_terminated"}
    client = MlflowClient(tracking)
    for trial in study.trials:  # every point is there: one per epoch and curve
        run_id = trial.user_attrs["mlflow_run_id"]
        for name in ("train_loss", "val_loss", "val_accuracy"):
            assert sorted(p.step for p in client.get_metric_history(run_id, name)) == list(range(1, 31))
