"""A study prepares its data once: its preprocessing is fitted once, and every trial trains and is
scored on the study's own float32 arrays (slices of one array), not on copies."""

import numpy as np

from model import MLPClassifier
from model.preprocessing import TabularPreprocessor
from tuner.runner import run_study

STUDY = """
name = "shared"
seed = 0
[data]
source = "sklearn:wine"
[budget]
n_trials = 3
max_epochs = 2
[pruner]
name = "none"
[objective]
validation_splits = 1
[space]
n_layers = 1
units = {low = 4, high = 16}
batch_size = 16
[result]
ensemble = 1
refit = false
seeds = 1
"""


def test_trials_share_one_prepared_copy_of_the_data(tmp_path, monkeypatch):
    fits, received = [], []
    preprocessor_fit, estimator_fit = TabularPreprocessor.fit, MLPClassifier.fit

    def counted_fit(self, X, y=None):
        fits.append(len(X))
        return preprocessor_fit(self, X, y)

    def recorded_fit(self, X, y, X_val=None, y_val=None, callbacks=None):
        received.append((X, X_val))
        return estimator_fit(self, X, y, X_val=X_val, y_val=y_val, callbacks=callbacks)

    monkeypatch.setattr(TabularPreprocessor, "fit", counted_fit)
    monkeypatch.setattr(MLPClassifier, "fit", recorded_fit)
    path = tmp_path / "shared.toml"
    path.write_text(STUDY)
    result = run_study(path, storage=f"sqlite:///{tmp_path}/optuna.db", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert len(result.study.trials) == 3
    assert fits == [106]  # once per study, on the training rows (60% of wine's 178)
    assert len(received) == 3  # one fit per trial, and the final model is the best trial's own
    X_train, X_val = received[0]
    assert all(X is X_train and V is X_val for X, V in received)  # the same arrays, every trial
    # float32 (what the network trains on, so the estimator does not convert it) and consecutive
    # slices of one array: the prepared data exists once.
    assert X_train.dtype == X_val.dtype == np.float32 and X_train.base is not None
    assert X_train.base is X_val.base and np.shares_memory(X_train.base, X_val)
