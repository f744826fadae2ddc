"""A regression study (minimize) through `tuner run`, `tuner export` and serving, and the
``predict_proba`` parameter on a regression model: what the README says."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
import optuna
import pytest

import model
from tests.helpers import assert_no_failed_trials, invoke, post_json, served_in_thread
from tuner.study.config import load_config
from tuner.data.loading import load_splits
from tuner.result.serving import create_app

# The module-scoped fixture runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("export_regression")

STUDY = """
name = "reg_proba"
seed = 0
[data]
source = "sklearn:diabetes"
[budget]
n_trials = 3
max_epochs = 3
[pruner]
name = "none"
[space]
n_layers = 1
units = 8
batch_size = 32
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The study run and its final model exported, both through the command line."""
    folder = tmp_path_factory.mktemp("regression")
    study_file = folder / "reg.toml"
    study_file.write_text(STUDY)
    stores = ["--storage", f"sqlite:///{folder}/o.db", "--tracking-uri", f"sqlite:///{folder}/m.db"]
    ran = invoke("run", str(study_file), *stores)
    assert ran.exit_code == 0, ran.output
    done = invoke("export", str(study_file), "--out", str(folder / "exp"), *stores)
    assert done.exit_code == 0, done.output
    study = optuna.load_study(study_name="reg_proba", storage=stores[1])
    X = load_splits(load_config(study_file)).X_test
    return {"study": study, "path": folder / "exp", "X": X}


def test_a_regression_study_minimizes_and_its_export_is_the_model_it_scored(exported):
    study = exported["study"]
    assert_no_failed_trials(study)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # rmse
    assert study.best_value == min(t.value for t in study.trials if t.value is not None)
    meta = mlflow.models.Model.load(str(exported["path"])).metadata
    assert meta["source"] == "final"
    assert meta["test_scores"] == pytest.approx(study.user_attrs["test_scores"], abs=1e-12)  # the same model


def test_served_values_equal_the_in_process_ones(exported):
    """Over HTTP, through the app `tuner serve` runs (tuner/result/serving.py), the values are those of
    the pyfunc and of model.load in process, to the last bit (JSON carries float64 exactly)."""
    path, X = exported["path"], exported["X"]
    in_process = mlflow.pyfunc.load_model(str(path)).predict(X)
    np.testing.assert_array_equal(in_process, model.load(path).predict(X))
    assert np.ptp(in_process) > 0  # not a constant
    rows = {"columns": list(X.columns), "data": X.to_numpy().tolist()}  # Python's JSON: floats exact
    with served_in_thread(create_app(str(path))) as url:
        status, answer = post_json(f"{url}/invocations", {"dataframe_split": rows})
    assert status == 200, answer
    np.testing.assert_array_equal(np.asarray(answer["predictions"], dtype=float).ravel(), np.ravel(in_process))


def test_predict_proba_on_a_regression_model_returns_values_with_a_warning(exported, caplog):
    """Issue 18: the README said predict_proba returns probabilities, silently not so for a
    regression model. Documented now: MLflow drops the parameter (its signature declares none),
    logging a warning, and the model returns its values."""
    pyfunc = mlflow.pyfunc.load_model(str(exported["path"]))
    assert pyfunc.metadata.signature.params is None
    X = exported["X"][:5]
    values = pyfunc.predict(X)
    with caplog.at_level(logging.WARNING, logger="mlflow"):
        ignored = pyfunc.predict(X, params={"predict_proba": True})
    np.testing.assert_array_equal(ignored, values)
    assert any("predict_proba" in r.getMessage() for r in caplog.records)
