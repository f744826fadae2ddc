"""An exported regression model and the ``predict_proba`` parameter: what the README says."""

from __future__ import annotations

import logging

import mlflow
import numpy as np

from tuner import runner
from tuner.data import load_splits
from tuner.export import export_study

STUDY = """
name = "reg_proba"
seed = 0
[data]
source = "sklearn:diabetes"
[budget]
n_trials = 1
max_epochs = 3
[space]
n_layers = 1
units = 8
batch_size = 32
"""


def test_predict_proba_on_a_regression_model_returns_values_with_a_warning(tmp_path, caplog):
    """Issue 18: the README said predict_proba returns probabilities, silently not so for a
    regression model. Documented now: MLflow drops the parameter (its signature declares none),
    logging a warning, and the model returns its values."""
    study_file = tmp_path / "reg.toml"
    study_file.write_text(STUDY)
    storage, tracking = f"sqlite:///{tmp_path}/o.db", f"sqlite:///{tmp_path}/m.db"
    result = runner.run_study(study_file, storage=storage, tracking_uri=tracking)
    exported = export_study(study_file, out=tmp_path / "exp", storage=storage, tracking_uri=tracking)
    pyfunc = mlflow.pyfunc.load_model(str(exported.path))
    assert pyfunc.metadata.signature.params is None
    X = load_splits(result.config).X_test[:5]
    values = pyfunc.predict(X)
    with caplog.at_level(logging.WARNING, logger="mlflow"):
        ignored = pyfunc.predict(X, params={"predict_proba": True})
    np.testing.assert_array_equal(ignored, values)
    assert any("predict_proba" in r.getMessage() for r in caplog.records)
