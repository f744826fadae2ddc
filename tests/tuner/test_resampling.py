"""Scoring trials on several train / validation splits on small data (tuner/search/resampling.py,
issue 11): what "auto" resolves to, which rows the extra splits hold, and a trial's value being
the mean over its splits, with the final model's selection scoring every split's outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_no_failed_trials
from tuner import runner
from tuner.study.config import StudyConfig
from tuner.data.loading import load_splits
from tuner.errors import ConfigError
from tuner.search.trial_model import trial_estimator
from tuner.result.final import DEFAULTS_MEMBER, select_members
from tuner.study.metrics import score_model
from tuner.search.resampling import resamples, validation_targets


def _config(**raw) -> StudyConfig:
    return StudyConfig.model_validate({"name": "r", "data": {"source": "sklearn:iris"}} | raw)


def _fitted(config: StudyConfig):
    splits = load_splits(config)
    return config.fitted_to_data(len(splits.y_train), len(splits.y_val)), splits


def test_auto_uses_five_splits_below_a_thousand_rows_and_one_above():
    assert _fitted(_config())[0].objective.validation_splits == 5  # iris: 120 training + validation rows
    digits = _config(data={"source": "sklearn:digits"})
    assert _fitted(digits)[0].objective.validation_splits == 1  # 1,437 rows
    assert _fitted(_config(objective={"validation_splits": 3}))[0].objective.validation_splits == 3
    assert _fitted(digits.model_copy(update={"objective": digits.objective.model_copy(
        update={"validation_splits": 2})}))[0].objective.validation_splits == 2


@pytest.mark.parametrize("bad", [0, 21, "all"])
def test_a_bad_number_of_splits_is_one_clear_error(tmp_path, bad):
    from tuner.study.config import load_config

    value = f'"{bad}"' if isinstance(bad, str) else bad
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\nvalidation_splits = {value}\n')
    with pytest.raises(ConfigError, match="objective.validation_splits") as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_extra_splits_reshuffle_the_training_and_validation_rows_and_never_the_test_rows():
    config, splits = _fitted(_config(data={"source": "sklearn:wine"}))
    extra = resamples(config, splits)
    assert len(extra) == config.objective.validation_splits - 1 == 4
    scored = set(splits.X_train.index) | set(splits.X_val.index)
    validation_sets = []
    for split in extra:
        assert len(split.y_val) == len(splits.y_val) and len(split.y_train) == len(splits.y_train)
        # the study's training + validation rows, shared out again; no test row in either part
        assert set(split.train_rows) | set(split.val_rows) == scored
        assert not set(split.train_rows) & set(split.val_rows)
        assert not (set(split.train_rows) | set(split.val_rows)) & set(splits.X_test.index)
        # each split's preprocessing is fitted on its own training rows (standardised: mean 0)
        assert np.allclose(split.Xt_train.mean(axis=0), 0.0, atol=1e-6)
        # stratified: each class keeps its share of the validation rows (within one row)
        for label in splits.classes:
            assert abs(np.sum(split.y_val == label) - np.sum(splits.y_val == label)) <= 1
        validation_sets.append(frozenset(split.val_rows))
    assert len(set(validation_sets)) == len(extra)  # all different
    assert frozenset(splits.X_val.index) not in validation_sets  # and none is the study's own
    assert len(validation_targets(splits, extra)) == 5 * len(splits.y_val)
    one = config.model_copy(update={"objective": config.objective.model_copy(update={"validation_splits": 1})})
    assert resamples(one, splits) == []


def test_a_trial_scores_the_mean_of_its_splits_and_the_ensemble_sees_them_all(tmp_path):
    config = _config(
        seed=2, budget={"n_trials": 3, "max_epochs": 15}, pruner={"name": "none"},
        objective={"validation_splits": 3}, result={"ensemble": 3},
        space={"n_layers": 1, "units": {"low": 8, "high": 16}, "optimizer": ["adam"]},
    )
    result = runner.run_study(config, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    assert_no_failed_trials(result.study)
    fitted, splits = _fitted(config)
    extra = resamples(fitted, splits)
    trial = result.study.trials[1]
    values = trial.user_attrs["split_values"]
    assert len(values) == 3 and trial.value == pytest.approx(np.mean(values))
    # each split's score is the trial's parameters and seed trained on that split
    for value, split in zip(values[1:], extra):
        est = trial_estimator(fitted, splits, trial)
        est.fit(split.Xt_train, split.y_train, X_val=split.Xt_val, y_val=split.y_val)
        assert score_model(fitted.metric, est, split.Xt_val, split.y_val) == pytest.approx(value)
    # the selection (redone in a fresh process's way, from the trials alone) scores 3 splits' outputs
    members, known, _ = select_members(fitted, splits, result.study)
    assert all(len(k.output) == 3 * len(splits.y_val) for k in known.values())
    assert set(members) <= {t.number for t in result.study.trials} | {DEFAULTS_MEMBER}
