"""What a study hands back (issue 11): the estimator's defaults as the first trial, a default space
fitted to the data, the greedy ensemble selection, the refit on training + validation rows, and
an ensemble saved, loaded and served without pickle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

import model
from model import MLPClassifier, MLPEnsemble
from model.preprocessing import TabularPreprocessor
from tests.helpers import assert_no_failed_trials
from tuner import runner
from tuner.study.config import StudyConfig
from tuner.data.loading import fingerprint, load_splits
from tuner.errors import ConfigError
from tuner.result.final import ensemble_loss, greedy_selection, recorded_final
from tuner.study.definition import FINAL_ATTR
from tuner.search.trial_model import copy_seed
from tuner.study.space import SpaceConfig, defaults_trial
from tests.helpers import small_classifier, small_regressor

REPO = Path(__file__).resolve().parents[2]


# --- the defaults trial -----------------------------------------------------------------------


def test_defaults_trial_is_the_small_network_in_the_default_space():
    params = defaults_trial(SpaceConfig())
    est = small_classifier()
    assert params == {
        "n_layers": 1, "units_l0": 64, "activation": est.activation, "batch_size": est.batch_size,
        "learning_rate": est.learning_rate, "lr_schedule": est.lr_schedule, "optimizer": est.optimizer,
        "l2": est.l2, "dropout": est.dropout, "patience": est.patience,
    }
    assert tuple([params["units_l0"]] * params["n_layers"]) == tuple(est.hidden_layer_sizes)


def test_defaults_trial_is_clipped_into_a_narrowed_space():
    space = SpaceConfig.model_validate({
        "n_layers": {"low": 2, "high": 3}, "units": {"low": 100, "high": 200},
        "learning_rate": {"low": 0.01, "high": 0.1, "log": True}, "activation": ["tanh", "elu"],
        "batch_size": [64, 256], "l2": False, "dropout": 0.2, "patience": {"low": 12, "high": 30, "step": 6},
    })
    params = defaults_trial(space)
    assert params == {
        "n_layers": 2, "units_l0": 100, "units_l1": 100, "activation": "tanh", "batch_size": 64,
        "learning_rate": 0.01, "lr_schedule": "constant", "optimizer": "adam", "patience": 12,
    }


# --- a default space that fits the data --------------------------------------------------------


def _config(**raw) -> StudyConfig:
    return StudyConfig.model_validate({"name": "t", "data": {"source": "sklearn:iris"}} | raw)


def test_default_space_fits_a_small_training_set_and_explicit_values_still_error():
    config = _config()
    splits = load_splits(config)  # 90 training rows: the default batch sizes up to 512 used to fail
    fitted = config.fitted_to_data(len(splits.y_train))
    assert [int(v) for v in [fitted.space.batch_size.value]] == [32]  # the only one <= 90 // 2
    assert fitted.budget.max_epochs == 200 > config.budget.max_epochs  # enough steps on 90 rows
    assert config.fitted_to_data(20_000).space.batch_size.values == (32, 64, 128, 256, 512)
    assert config.fitted_to_data(20_000).budget.max_epochs == config.budget.max_epochs
    # epochs of epoch_rows rows: as many as about 2,000 batches of 32 rows need
    assert _config(budget={"epoch_rows": 1000}).fitted_to_data(20_000).budget.max_epochs == 64
    # what the study file sets is kept, and checked against the data
    explicit = _config(space={"batch_size": [128, 256]}, budget={"max_epochs": 30})
    assert explicit.fitted_to_data(90).budget.max_epochs == 30
    with pytest.raises(ConfigError, match="space.batch_size: 128, 256 exceed"):
        load_splits(explicit)
    # overrides keep the distinction between the file's values and defaults
    assert "batch_size" not in config.with_overrides(seed=3).space.model_fields_set
    assert "batch_size" in explicit.with_overrides(seed=3).space.model_fields_set


# --- greedy ensemble selection ----------------------------------------------------------------


def test_greedy_selection_combines_complementary_trials_and_stops_when_nothing_helps():
    y = np.array([0, 0, 1, 1])
    labels = [0, 1]
    # trial 1 is sure and right on the first two rows, unsure on the others; trial 2 the reverse;
    # trial 3 is uniform. Their average beats either alone.
    one = np.array([[0.99, 0.01], [0.99, 0.01], [0.6, 0.4], [0.6, 0.4]])
    two = np.array([[0.4, 0.6], [0.4, 0.6], [0.01, 0.99], [0.01, 0.99]])
    flat = np.full((4, 2), 0.5)

    def loss(p):
        return ensemble_loss("classification", y, p, labels)

    members, value = greedy_selection({1: one, 2: two, 3: flat}, loss, size=5)
    assert set(members) == {1, 2}
    assert value == pytest.approx(log_loss(y, sum(w * {1: one, 2: two}[n] for n, w in members.items()) / sum(members.values())))
    assert value < min(loss(one), loss(two), loss(flat))
    # a perfect trial is picked alone: nothing added to it lowers the loss
    perfect = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]) * (1 - 2e-9) + 1e-9
    assert greedy_selection({1: one, 2: perfect, 3: flat}, loss, size=5)[0] == {2: 1}
    # regression: squared error of the average
    yr = np.array([1.0, -1.0])
    members, value = greedy_selection(
        {1: np.array([2.0, -1.0]), 2: np.array([0.0, -1.0])}, lambda p: ensemble_loss("regression", yr, p, None), 4
    )
    assert members == {1: 1, 2: 1} and value == pytest.approx(0.0)


def test_copy_seeds_are_the_trials_seed_first_then_distinct_and_reproducible():
    for seed in (0, 7, 2**32 - 5):
        copies = [copy_seed(seed, k) for k in range(6)]
        assert copies[0] == seed and len(set(copies)) == 6
        assert copies == [copy_seed(seed, k) for k in range(6)]
        assert all(0 <= c < 2**32 for c in copies)
        # not the seeds of the study's next trials (seed + 1, seed + 2, ...)
        assert not set(copies[1:]) & {seed + k for k in range(1, 1000)}


class _Study:
    def __init__(self, attrs):
        self.user_attrs = attrs


def test_a_recorded_final_model_replays_its_seeds_and_older_records_had_one():
    record = {"members": {"3": 2, "5": 1}, "epochs": {"3": 11, "5": 7}, "refit": True, "seeds": 4}
    assert recorded_final(_Study({FINAL_ATTR: record})) == ({3: 2, 5: 1}, {3: 11, 5: 7}, 4)
    older = {k: v for k, v in record.items() if k != "seeds"}
    assert recorded_final(_Study({FINAL_ATTR: older})) == ({3: 2, 5: 1}, {3: 11, 5: 7}, 1)
    assert recorded_final(_Study({})) is None


# --- a run: defaults first, refit, ensemble ----------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("final")
    config = _config(
        seed=3, budget={"n_trials": 6, "max_epochs": 30},
        space={"n_layers": 1, "units": {"low": 8, "high": 32}, "optimizer": ["adam"], "activation": ["relu", "tanh"]},
        pruner={"name": "none"}, result={"ensemble": 4, "defaults_candidate": False},
    )
    result = runner.run_study(
        config, storage=f"sqlite:///{folder}/optuna.db", tracking_uri=f"sqlite:///{folder}/mlflow.db"
    )
    assert_no_failed_trials(result.study)
    return config, result


def test_the_first_trial_is_the_small_baseline_network(small_run):
    config, result = small_run
    first = result.study.trials[0]
    n_train = len(load_splits(config).y_train)
    assert first.params == defaults_trial(config.fitted_to_data(n_train).space)
    assert first.params["units_l0"] == 32  # 64 clipped into 8..32


def test_the_final_model_is_refit_on_training_and_validation_rows(small_run):
    config, result = small_run
    splits = load_splits(config)
    final = result.final
    assert final.refit and sum(final.members.values()) <= 4
    X = pd.concat([splits.X_train, splits.X_val])
    y = np.concatenate([splits.y_train, splits.y_val])
    assert final.fingerprint == fingerprint(X, y)
    mlp = final.pipeline.steps[-1][1]
    assert isinstance(mlp, MLPEnsemble)
    # each chosen trial is refit with 3 seeds (the default), its own first, each copy weighted
    # as its trial was picked
    seeds = config.result.seeds
    assert seeds == final.seeds == 3 and len(mlp.estimators) == seeds * len(final.members)
    assert list(mlp.weights) == [float(w) for w in final.members.values() for _ in range(seeds)]
    trials = {t.number: t for t in result.study.trials}
    for i, number in enumerate(final.members):
        copies = mlp.estimators[i * seeds:(i + 1) * seeds]
        for copy, est in enumerate(copies):
            # trained for the epochs its trial needed, from the trial's seed (copy 0) or one drawn from it
            assert est.n_iter_ == final.epochs[number] == int(trials[number].user_attrs["fit_epochs"])
            assert est.random_state == copy_seed(config.seed + number, copy) and not est.early_stopping
            assert est.get_params()["hidden_layer_sizes"] == copies[0].get_params()["hidden_layer_sizes"]
        assert copies[0].random_state == config.seed + number
        assert not np.allclose(copies[0].coefs_[0], copies[1].coefs_[0])  # different networks
    # the scores the run reports are the final model's, measured on the test split
    accuracy = float(np.mean(final.pipeline.predict(splits.X_test) == splits.y_test))
    assert result.test_scores["accuracy"] == pytest.approx(accuracy)
    assert result.study.user_attrs["final_model"]["members"] == {str(k): v for k, v in final.members.items()}


def test_ensemble_of_one_without_refit_is_the_best_trial_alone(tmp_path):
    config = _config(seed=1, budget={"n_trials": 3, "max_epochs": 10}, pruner={"name": "none"},
                     result={"ensemble": 1, "refit": False, "defaults_candidate": False})
    result = runner.run_study(config, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert_no_failed_trials(result.study)
    assert result.final.members == {result.study.best_trial.number: 1} and not result.final.refit
    assert result.final.seeds == 1  # without refit the member is the trial's own model, one copy
    assert result.test_scores == result.best_trial_scores


# --- the ensemble as a model -------------------------------------------------------------------


def _wine_mixed():
    frame = pd.read_csv(REPO / "data" / "wine_mixed.csv")
    return frame.drop(columns=["cultivar"]), frame["cultivar"].astype(str).to_numpy(dtype=object)


def test_an_ensemble_averages_its_members_and_round_trips_without_pickle(tmp_path):
    X, y = _wine_mixed()
    pre = TabularPreprocessor().fit(X)
    Xt = pre.transform(X)
    members = [small_classifier(hidden_layer_sizes=(h,), max_epochs=15, random_state=s).fit(Xt, y)
               for h, s in ((8, 0), (16, 1), (12, 2))]
    ensemble = MLPEnsemble(members, [2.0, 1.0, 1.0])
    expected = (2 * members[0].predict_proba(Xt) + members[1].predict_proba(Xt) + members[2].predict_proba(Xt)) / 4
    np.testing.assert_allclose(ensemble.predict_proba(Xt), expected, rtol=0, atol=1e-15)
    assert list(ensemble.predict(Xt)) == list(ensemble.classes_[expected.argmax(axis=1)])
    pipeline = Pipeline([("preprocess", pre), ("mlp", ensemble)])
    path = model.save(pipeline, tmp_path / "ens.npz")
    loaded = model.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), pipeline.predict(X))
    assert loaded.steps[-1][1].weights == [0.5, 0.25, 0.25]
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[name].dtype != object for name in data.files)


def test_a_regression_ensemble_averages_predictions_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3
    members = [small_regressor(hidden_layer_sizes=(8,), max_epochs=20, random_state=s).fit(X, y) for s in (0, 1)]
    ensemble = MLPEnsemble(members)
    np.testing.assert_allclose(ensemble.predict(X), (members[0].predict(X) + members[1].predict(X)) / 2, atol=1e-12)
    assert not hasattr(ensemble, "classes_")
    with pytest.raises(AttributeError):
        ensemble.predict_proba(X)
    loaded = model.load(model.save(ensemble, tmp_path / "reg.npz"))
    np.testing.assert_array_equal(loaded.predict(X), ensemble.predict(X))


def test_an_ensemble_refuses_members_that_do_not_fit_together():
    X = np.random.default_rng(1).normal(size=(30, 2))
    a = small_classifier(max_epochs=2, random_state=0).fit(X, np.arange(30) % 2)
    b = small_classifier(max_epochs=2, random_state=0).fit(X, np.arange(30) % 3)
    r = small_regressor(max_epochs=2, random_state=0).fit(X, np.arange(30.0))
    with pytest.raises(ValueError, match="different classes"):
        MLPEnsemble([a, b]).predict(X)
    with pytest.raises(ValueError, match="mixes classifiers and regressors"):
        MLPEnsemble([a, r]).predict(X)
    with pytest.raises(ValueError, match="positive"):
        MLPEnsemble([a, a], [1.0, -1.0]).predict(X)
    with pytest.raises(ValueError, match="at least one"):
        MLPEnsemble([]).predict(X)
    assert math.isclose(MLPEnsemble([a, a]).score(X, np.arange(30) % 2), a.score(X, np.arange(30) % 2))


def test_early_stopping_on_the_validation_loss_restores_the_epoch_of_lowest_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + 0.8 * rng.normal(size=200) > 0).astype(int)  # noisy: the loss turns up
    Xv, yv = X[150:], y[150:]
    est = small_classifier(hidden_layer_sizes=(64,), learning_rate=0.05, max_epochs=60, early_stopping=True,
                        patience=60, early_stopping_metric="loss", random_state=0)
    est.fit(X[:150], y[:150], X_val=Xv, y_val=yv)
    losses = est.validation_scores_
    assert len(losses) == 60 and est.best_epoch_ == int(np.argmin(losses)) + 1 < 60
    assert log_loss(yv, est.predict_proba(Xv)) == pytest.approx(min(losses), rel=1e-4)  # restored
    by_score = small_classifier(hidden_layer_sizes=(64,), learning_rate=0.05, max_epochs=60, early_stopping=True,
                             patience=60, random_state=0).fit(X[:150], y[:150], X_val=Xv, y_val=yv)
    assert by_score.best_epoch_ == int(np.argmax(by_score.validation_scores_)) + 1  # accuracy, first best
    reg = small_regressor(max_epochs=5, early_stopping=True, early_stopping_metric="loss", random_state=0)
    reg.fit(X[:150], X[:150, 0], X_val=Xv, y_val=Xv[:, 0])
    assert reg.best_epoch_ == int(np.argmin(reg.validation_scores_)) + 1  # RMSE, lower is better
    with pytest.raises(ValueError, match="early_stopping_metric"):
        small_classifier(early_stopping_metric="auc").fit(X, y)


def test_a_refit_follows_its_trials_learning_rates_epoch_by_epoch(tmp_path):
    """Refit on the trial's own training rows for the trial's best epoch, the refit is the trial's
    restored model bit for bit: the decaying schedule keeps the trial's horizon (``max_epochs``)
    instead of squeezing the whole decay into the refit's epochs."""
    from tuner.result.final import refit_estimator, retrain_trial

    config = _config(
        seed=2, budget={"n_trials": 1, "max_epochs": 60}, pruner={"name": "none"},
        objective={"validation_splits": 1}, result={"ensemble": 1},
        space={"n_layers": 1, "units": 16, "lr_schedule": "exponential", "optimizer": "adam",
               "learning_rate": 0.05, "dropout": 0.2, "patience": 3},
    )
    result = runner.run_study(config, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert_no_failed_trials(result.study)
    fitted, trial = result.config, result.study.trials[0]
    splits = load_splits(fitted)
    trained = retrain_trial(fitted, splits, trial).steps[-1][1]
    assert 1 <= trained.best_epoch_ < trained.n_iter_ < 60  # stopped early, then restored
    refit = refit_estimator(fitted, splits, trial, trained.best_epoch_, splits.Xt_train, splits.y_train)
    assert refit.n_iter_ == trained.best_epoch_
    for a, b in zip(refit.coefs_ + refit.intercepts_, trained.coefs_ + trained.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_budget_epoch_rows_makes_each_trial_epoch_that_many_rows_and_a_refit_epoch_the_same_share_of_a_pass(
    tmp_path, monkeypatch
):
    """``[budget] epoch_rows`` reaches every trial's estimator (the pruner's steps and max_epochs count
    its epochs), each epoch is scored on its share of the validation rows (here at least 10 of them)
    while the trial's value is the whole split's, and the refit on training + validation rows makes
    its epochs the same share of a pass: iris trains on 90 rows, refits on 120, so 30-row epochs
    become 40-row ones."""
    from tuner.result.final import refit_estimator, refit_rows, retrain_trial
    from tuner.search import trial_model

    monkeypatch.setattr(trial_model, "MIN_MONITORED_ROWS", 10)
    scored_on = []
    original_fit = MLPClassifier.fit

    def fit(self, X, y, X_val=None, y_val=None, callbacks=None):
        scored_on.append(None if X_val is None else len(X_val))
        return original_fit(self, X, y, X_val, y_val, callbacks)

    monkeypatch.setattr(MLPClassifier, "fit", fit)

    config = _config(
        seed=1, budget={"n_trials": 1, "max_epochs": 6, "epoch_rows": 30}, pruner={"name": "none"},
        objective={"validation_splits": 1}, result={"ensemble": 1, "seeds": 1},
        space={"n_layers": 1, "units": 8, "batch_size": 16, "patience": False},
    )
    result = runner.run_study(config, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert_no_failed_trials(result.study)
    fitted, trial = result.config, result.study.trials[0]
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5, 6]
    splits = load_splits(fitted)
    assert len(splits.y_train) == 90
    trained = retrain_trial(fitted, splits, trial).steps[-1][1]
    assert trained.epoch_rows == 30 and trained.n_iter_ == 6 and trained.t_ == 6 * 2  # 16 + 14 rows
    assert trial.intermediate_values[6] == trained.score(splits.Xt_val[:10], splits.y_val[:10])
    assert trial.value == trained.score(splits.Xt_val, splits.y_val)
    _, Xt, y, _ = refit_rows(fitted, splits)
    refit = refit_estimator(fitted, splits, trial, 6, Xt, y)
    assert len(y) == 120 and refit.epoch_rows == 40 and refit.n_iter_ == 6 and refit.t_ == 6 * 3
    # the trial, its retraining (the same model) and the refit (no validation rows left)
    assert len(splits.y_val) == 30 and scored_on[0] == scored_on[-2] == 10 and scored_on[-1] is None


def test_an_epoch_of_epoch_rows_is_scored_on_its_share_of_the_validation_rows():
    from types import SimpleNamespace

    from tuner.search.trial_model import monitored_rows

    splits = SimpleNamespace(y_train=np.zeros(600_000), y_val=np.zeros(200_000))
    rows = {er: monitored_rows(_config(budget={"epoch_rows": er} if er else {}), splits)
            for er in (None, 60_000, 3_000, 10**7)}
    assert rows == {None: 200_000, 60_000: 20_000, 3_000: 10_000, 10**7: 200_000}
    assert monitored_rows(_config(budget={"epoch_rows": 60_000}), SimpleNamespace(y_train=splits.y_train, y_val=np.zeros(500))) == 500
