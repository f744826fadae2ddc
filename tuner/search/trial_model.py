"""The estimator of a trial: built from its parameters and seed, and what it tells once trained
(the epochs that made its weights, the outputs an ensemble averages)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from model import MLPClassifier, MLPRegressor
from tuner.study.space import params_from_trial

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from tuner.data.loading import Splits
    from tuner.study.config import StudyConfig


#: Study metrics whose early stopping watches the estimator's score (accuracy, R²); every other
#: metric watches the validation loss, which orders epochs as that metric does (log loss, RMSE)
#: or, for roc_auc, f1_macro and mae, more closely than accuracy does. Stopping a log-loss study
#: on accuracy restores early, under-confident weights (wine: test log loss 0.09 against 0.007
#: for the untuned defaults).
SCORE_STOPPED_METRICS = ("accuracy", "r2")


def build_estimator(
    task: str, params: dict[str, Any], seed: int, metric: str | None = None
) -> MLPClassifier | MLPRegressor:
    """The estimator for ``task`` with the trial's parameters and a per-trial seed; with
    ``patience``, early stopping on the validation metric that fits the study's ``metric``."""
    params = dict(params)
    if "patience" in params:
        params["early_stopping"] = True
        if metric is not None and metric not in SCORE_STOPPED_METRICS:
            params["early_stopping_metric"] = "loss"
    cls = MLPClassifier if task == "classification" else MLPRegressor
    return cls(random_state=seed, **params)


def budget_params(config: StudyConfig) -> dict[str, Any]:
    """The estimator parameters a study's ``[budget]`` gives every trial besides ``max_epochs``:
    ``epoch_rows`` when set."""
    rows = config.budget.epoch_rows
    return {} if rows is None else {"epoch_rows": int(rows)}


#: The fewest validation rows an epoch of ``[budget] epoch_rows`` rows is scored on.
MIN_MONITORED_ROWS = 10_000


def monitored_rows(config: StudyConfig, splits: Splits) -> int:
    """How many validation rows score each epoch of a trial (for the pruner, early stopping and
    the curves): the first ones of the validation split, whose rows are in random order.

    All of them with one pass an epoch. With ``[budget] epoch_rows``, the epoch's share of a pass
    of them, at least :data:`MIN_MONITORED_ROWS`: scoring an epoch then costs the same share of
    a pass's training as with one pass an epoch, instead of growing with the number of epochs a
    pass. A trial's value, its outputs and its refit are those of the whole validation split.
    """
    rows, n_val = config.budget.epoch_rows, len(splits.y_val)
    if rows is None:
        return n_val
    share = min(1.0, rows / max(1, len(splits.y_train)))
    return min(n_val, max(MIN_MONITORED_ROWS, math.ceil(share * n_val)))


def monitored_validation(config: StudyConfig, splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The validation rows that score each epoch (:func:`monitored_rows`): the split's own arrays
    when they are all of them (the trials share them, not views of them), else their first rows."""
    rows = monitored_rows(config, splits)
    if rows == len(splits.y_val):
        return splits.Xt_val, splits.y_val
    return splits.Xt_val[:rows], splits.y_val[:rows]


def copy_seed(seed: int, copy: int) -> int:
    """The seed of the ``copy``-th training of a final-model member whose trial had ``seed``: the
    trial's own seed for copy 0, else one drawn from ``(seed, copy)`` by NumPy's ``SeedSequence``
    (deterministic, and unrelated to the seeds ``seed + 1, seed + 2, ...`` of the study's other
    trials)."""
    if copy == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(copy)]).generate_state(1)[0])


def trial_estimator(
    config: StudyConfig, splits: Splits, trial: optuna.trial.FrozenTrial, copy: int = 0
) -> MLPClassifier | MLPRegressor:
    """The unfitted estimator of a finished trial: its parameters, its seed, the study's metric.
    ``copy`` > 0 gives the same parameters with another seed (:func:`copy_seed`)."""
    params = params_from_trial(trial, config.space, config.budget.max_epochs)
    params |= budget_params(config)
    return build_estimator(
        splits.task, params, copy_seed(config.seed + trial.number, copy), config.metric
    )


def validation_output(task: str, estimator, X) -> np.ndarray:
    """What ensembles average: class probabilities, or predictions in the target's units."""
    if task == "classification":
        return np.asarray(estimator.predict_proba(X), dtype=np.float64)
    return np.asarray(estimator.predict(X), dtype=np.float64)


def trial_epochs(estimator) -> int:
    """The epochs that made the trial's weights: the restored best epoch with early stopping,
    else every epoch that ran (what a refit on more rows trains for)."""
    best = int(getattr(estimator, "best_epoch_", 0) or 0)
    if getattr(estimator, "early_stopping", False) and best > 0:
        return best
    return int(estimator.n_iter_)
