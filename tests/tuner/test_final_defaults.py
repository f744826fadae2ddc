"""The estimator's defaults as a candidate final model (tuner/result/final.py): chosen when their
validation loss is below the selected trials', not otherwise, trained like a member when chosen,
and recorded so that an export replays them."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from model import MLPClassifier, MLPEnsemble
from tests.helpers import assert_no_failed_trials
from tuner import runner
from tuner.data.loading import load_splits
from tuner.result import final as final_module
from tuner.result.defaults import DEFAULTS_COST_FACTOR, defaults_cost, trials_cost
from tuner.result.final import (
    DEFAULTS_MEMBER,
    build_final_model,
    considers_defaults,
    recorded_final,
    select_members,
)
from tuner.search.objective import CompletedTrial
from tuner.search.resampling import resamples, validation_targets
from tuner.search.trial_model import copy_seed
from tuner.study.config import StudyConfig
from tuner.study.definition import FINAL_ATTR


def _config(**raw) -> StudyConfig:
    base = {
        "name": "t", "seed": 2, "data": {"source": "sklearn:iris"},
        "budget": {"n_trials": 4, "max_epochs": 8}, "pruner": {"name": "none"},
        "space": {"n_layers": 1, "units": {"low": 8, "high": 16}, "optimizer": ["adam"]},
        "objective": {"validation_splits": 1}, "result": {"defaults_candidate": False},
    }  # fmt: skip
    return StudyConfig.model_validate(base | raw)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A short study whose own final model leaves the defaults out."""
    folder = tmp_path_factory.mktemp("final_defaults")
    result = runner.run_study(
        _config(), storage=f"sqlite:///{folder}/o.db", tracking_uri=f"sqlite:///{folder}/m.db"
    )
    assert_no_failed_trials(result.study)
    return _candidate(result.config, True), load_splits(result.config), result


def _candidate(config: StudyConfig, on: bool) -> StudyConfig:
    return config.model_copy(
        update={"result": config.result.model_copy(update={"defaults_candidate": on})}
    )


def _one_hot(splits, sharp: float) -> np.ndarray:
    """Validation outputs that put ``sharp`` on each row's true class (the rest spread evenly)."""
    classes = list(splits.classes)
    y = validation_targets(splits, [])
    out = np.full((len(y), len(classes)), (1 - sharp) / (len(classes) - 1))
    out[np.arange(len(y)), [classes.index(v) for v in y]] = sharp
    return out


def _with_defaults_output(monkeypatch, splits, output: np.ndarray) -> None:
    def fake(config, splits_, extra):
        return CompletedTrial(value=float("nan"), output=output, epochs=256)

    monkeypatch.setattr(final_module, "defaults_known", fake)


def test_defaults_better_on_validation_replace_the_trials(iris_run, monkeypatch):
    config, splits, result = iris_run
    _with_defaults_output(monkeypatch, splits, _one_hot(splits, 0.999))  # near-zero log loss
    members, known, loss = select_members(config, splits, result.study)
    assert members == {DEFAULTS_MEMBER: 1} and set(known) == {DEFAULTS_MEMBER}
    assert loss == pytest.approx(-np.log(0.999))


def test_defaults_worse_on_validation_leave_the_selection_as_it_was(iris_run, monkeypatch):
    config, splits, result = iris_run
    without = select_members(_candidate(config, False), splits, result.study)[0]
    _with_defaults_output(monkeypatch, splits, _one_hot(splits, 0.34))  # about uniform: log 3
    members, _, loss = select_members(config, splits, result.study)
    assert members == without and DEFAULTS_MEMBER not in members
    assert loss < -np.log(0.34)


def test_the_defaults_are_considered_only_where_the_study_allows_them(iris_run):
    config, splits, _ = iris_run
    assert considers_defaults(config, splits)
    assert not considers_defaults(_candidate(config, False), splits)
    for raw in (
        {"objective": {"constraints": {"size_kb": 100.0}, "validation_splits": 1}},
        {"budget": {"n_trials": 4, "max_epochs": 8, "epoch_rows": 50}},
        {"objective": {"metrics": ["accuracy", "log_loss"], "validation_splits": 1}},
    ):
        other = _config(**raw, result={"defaults_candidate": True})
        assert not considers_defaults(other, splits), raw


def test_the_defaults_validation_outputs_come_from_every_split():
    config = _config(objective={"validation_splits": 2}, result={"defaults_candidate": True})
    config = config.fitted_to_data(120)
    splits = load_splits(config)
    extra = resamples(config, splits)
    known = final_module.defaults_known(config, splits, extra)
    assert known.output.shape == (len(validation_targets(splits, extra)), 3)
    np.testing.assert_allclose(known.output.sum(axis=1), 1.0)
    assert (
        isinstance(known.estimator, MLPClassifier) and known.estimator.random_state == config.seed
    )
    assert known.epochs == known.estimator.max_epochs  # the defaults' own schedule, to its end


def test_a_final_model_of_the_defaults_is_their_seeded_copies_on_all_rows(iris_run):
    config, splits, result = iris_run
    final = build_final_model(
        config, splits, result.study, members={DEFAULTS_MEMBER: 1}, epochs={DEFAULTS_MEMBER: 256}
    )
    assert final.is_defaults and final.seeds == config.result.seeds == 3
    ensemble = final.pipeline.steps[-1][1]
    assert isinstance(ensemble, MLPEnsemble) and len(ensemble.estimators) == 3
    defaults = MLPClassifier().get_params()
    n_rows = len(splits.y_train) + len(splits.y_val)
    for copy, est in enumerate(ensemble.estimators):
        assert est.random_state == copy_seed(config.seed, copy)
        assert {k: v for k, v in est.get_params().items() if k != "random_state"} == {
            k: v for k, v in defaults.items() if k != "random_state"
        }
        assert est.n_iter_ == est.max_epochs and est.t_ == est.n_iter_ * -(
            -n_rows // est.batch_size
        )
    # recorded by name, and replayed as the same member
    record = final.describe()
    assert record["members"] == {"defaults": 1} and record["epochs"] == {"defaults": 256}

    class _Study:
        user_attrs = {FINAL_ATTR: record}

    assert recorded_final(_Study()) == ({DEFAULTS_MEMBER: 1}, {DEFAULTS_MEMBER: 256}, 3)


def test_with_an_ensemble_of_one_the_lower_loss_of_best_trial_and_defaults_wins(
    iris_run, monkeypatch
):
    config, splits, result = iris_run
    one = config.model_copy(update={"result": config.result.model_copy(update={"ensemble": 1})})
    best = result.study.best_trial.number
    _with_defaults_output(monkeypatch, splits, _one_hot(splits, 0.34))
    assert select_members(one, splits, result.study)[0] == {best: 1}
    _with_defaults_output(monkeypatch, splits, _one_hot(splits, 0.999))
    assert select_members(one, splits, result.study)[0] == {DEFAULTS_MEMBER: 1}


def test_auto_weighs_one_fit_of_the_defaults_against_the_trials_work(iris_run):
    """``"auto"``: the defaults are a candidate when their one fit's work (256 epochs of a
    (256, 256) network) is at most DEFAULTS_COST_FACTOR times the trials' epochs times their
    networks' weights, summed."""
    config, splits, result = iris_run
    auto = _candidate(config, "auto")
    n_in, n_out = splits.Xt_train.shape[1], 3
    by_hand = sum(
        len(t.intermediate_values)
        * ((n_in + 1) * t.params["units_l0"] + (t.params["units_l0"] + 1) * n_out)
        for t in result.study.get_trials()
    )
    assert by_hand > 0 and trials_cost(auto, splits, result.study) == by_hand
    assert defaults_cost(splits) == 256 * ((n_in + 1) * 256 + 257 * 256 + 257 * n_out)
    # four small trials of 8 epochs: far below one fit of the defaults
    assert not considers_defaults(auto, splits, result.study)
    assert considers_defaults(_candidate(config, True), splits, result.study)
    # one trial that reported just enough epochs tips it
    template = result.study.best_trial
    weights = (n_in + 1) * template.params["units_l0"] + (template.params["units_l0"] + 1) * n_out
    enough = -(-defaults_cost(splits) // (DEFAULTS_COST_FACTOR * weights))
    for epochs, expected in ((enough, True), (enough - 1, False)):
        study = optuna.create_study()
        study.add_trial(
            optuna.trial.create_trial(
                params=template.params,
                distributions=template.distributions,
                value=template.value,
                intermediate_values=dict.fromkeys(range(epochs), 0.5),
            )
        )
        assert considers_defaults(auto, splits, study) is expected, epochs
