"""The model a study hands back: which trials it is made of, on which rows they are trained.

After the trials, the study's ``[result]`` table decides the final model:

- ``ensemble = N`` (default 5): Caruana's greedy ensemble selection (Caruana et al., 2004). From the
  best ``N × CANDIDATES_PER_MEMBER`` completed trials by the study's metric (among those that meet
  the study's ``[objective] constraints``, :mod:`tuner.search.constraints`), start from the one of
  lowest validation loss and repeatedly add (with replacement) the trial whose addition lowers the
  validation loss of the averaged outputs most, up to N picks or until no addition helps. The loss
  is the log loss of the averaged class probabilities (a smooth score that separates trials tied on
  accuracy) or the squared error of the averaged predictions. A trial's weight is the number of
  times it was picked. ``ensemble = 1`` keeps the study's best trial alone.
- ``refit = true`` (default): each chosen trial is trained again from its parameters and seed on
  training + validation rows, for the epochs its trial needed (no early stopping: nothing is left
  to stop on), with the preprocessing fitted on the same rows (``GridSearchCV(refit=True)``).
- ``seeds = K`` (default 3, with ``refit``): each chosen trial is refit K times, from its own seed
  and K - 1 seeds drawn from it (:func:`tuner.search.trial_model.copy_seed`), and the copies are
  averaged with the trial's weight each. A refit has no validation rows left to pick a lucky seed
  on, its test score moves from seed to seed about as much as the top trials differ, and the greedy
  selection often settles on one or two trials: without copies the final model is then one or two
  networks. Chosen on development data only (the README's "What tuning buys" has the measurement and
  its command). Without refit the members are the trials' own models.

``defaults_candidate = "auto"`` (default; ``true`` always, ``false`` never): the estimator's
defaults (``MLPClassifier()`` / ``MLPRegressor()``, a larger network trained longer than a trial)
are one more candidate of the selection, so that a study does not hand back a model worse on
validation than no tuning at all. They are trained on the training rows of every validation split
with the study's seed, and their validation outputs join the trials' (with ``ensemble = 1``: the
one of lower validation loss, the best trial or the defaults). Picked, they are a member like a
trial (weight, ``seeds`` copies on training + validation rows from the study's seed and ones drawn
from it), trained on their own schedule to its end. With ``"auto"`` they are a candidate only when
their one fit's work (weights times epochs) is at most :data:`DEFAULTS_COST_FACTOR` times the
trials' together (:func:`considers_defaults`): on large data a few small trials of a few passes
each are far cheaper than the defaults' 256 passes of a (256, 256) network, which would then dwarf
the study. Left out under ``[budget] epoch_rows``, under ``[objective] constraints``, in a
multi-objective study and for multilabel targets. Chosen on development data only
(docs/benchmarks.md, "The estimator's defaults as a candidate").

The validation outputs of the trials come from the objective of this process when it ran them, else
from the trial trained again (deterministic from its parameters and seed). With several validation
splits (``[objective] validation_splits``, :mod:`tuner.search.resampling`) they are the outputs of
every split, scored together, and a refit trains for the median of the splits' epochs. The test
split is not used here: the caller scores the result once.

A multi-objective study's final model is its primary trial alone (the front's best on the first
metric, :mod:`tuner.search.pareto`), refit with one seed: an ensemble or seed copies would
multiply the latency and size it was chosen for (``ensemble`` and ``seeds`` are 1 there and under
constraints: :meth:`tuner.study.config.StudyConfig._one_network`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import optuna
from sklearn.pipeline import Pipeline

from model import MLPClassifier, MLPEnsemble, MLPRegressor
from tuner.data.loading import Splits, fingerprint
from tuner.errors import TunerError
from tuner.result.defaults import (
    DEFAULTS_COST_FACTOR,
    defaults_cost,
    defaults_estimator,
    trials_cost,
)
from tuner.search.constraints import ranked_trials
from tuner.search.objective import CANDIDATES_PER_MEMBER, CompletedTrial, score_resamples
from tuner.search.pareto import best_trial
from tuner.search.resampling import Resample, resamples, validation_targets
from tuner.search.trial_model import (
    copy_seed,
    monitored_validation,
    trial_epochs,
    trial_estimator,
    validation_output,
)
from tuner.storage.retries import RUN_ID_ATTR
from tuner.study.config import StudyConfig
from tuner.study.definition import (
    BEST_TEST_SCORES_ATTR,
    FINAL_ATTR,
    SCORED_BY_ATTR,
    TEST_SCORES_ATTR,
)

if TYPE_CHECKING:  # pragma: no cover
    from tuner.tracking import StudyTracker


#: The key of the estimator's defaults among a final model's members (no trial has a negative
#: number), and its name where members are written out (the study's record, tags, the summary).
DEFAULTS_MEMBER = -1
DEFAULTS_NAME = "defaults"


def member_name(number: int) -> str:
    """A member as written out: its trial number, or :data:`DEFAULTS_NAME`."""
    return DEFAULTS_NAME if number == DEFAULTS_MEMBER else str(int(number))


def member_number(name: str) -> int:
    """The inverse of :func:`member_name`."""
    return DEFAULTS_MEMBER if name == DEFAULTS_NAME else int(name)


@dataclass
class FinalModel:
    """The final model (raw rows in) and what it is made of."""

    pipeline: Pipeline
    members: dict[int, int]  # trial number -> weight (times picked)
    refit: bool
    validation_loss: float | None = None
    fingerprint: str = ""
    epochs: dict[int, int] = field(default_factory=dict)
    seeds: int = 1  # copies of each member, one per seed

    @property
    def kind(self) -> str:
        return "ensemble" if len(self.members) > 1 or self.seeds > 1 else "single"

    @property
    def is_defaults(self) -> bool:
        """Whether the final model is the estimator's defaults alone (no trial among it)."""
        return set(self.members) == {DEFAULTS_MEMBER}

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary, stored on the study (see :data:`FINAL_ATTR`)."""
        return {
            "members": {member_name(k): int(v) for k, v in self.members.items()},
            "refit": self.refit,
            "epochs": {member_name(k): int(v) for k, v in self.epochs.items()},
            "validation_loss": self.validation_loss,
            "seeds": int(self.seeds),
        }


def ensemble_loss(
    task: str, y: np.ndarray, output: np.ndarray, classes: Sequence[Any] | None
) -> float:
    """Validation loss of (averaged) outputs: log loss, or mean squared error."""
    if task == "classification":
        from sklearn.metrics import log_loss

        assert classes is not None, "a classification task has classes"
        return float(log_loss(y, np.clip(output, 1e-15, 1.0), labels=list(classes)))
    return float(np.mean((np.asarray(y, dtype=np.float64) - output) ** 2))


def greedy_selection(
    outputs: dict[int, np.ndarray], loss: Callable[[np.ndarray], float], size: int
) -> tuple[dict[int, int], float]:
    """Caruana's forward selection with replacement: ``{trial: times picked}`` and the loss of
    the weighted average. ``outputs`` maps trial numbers to validation outputs, ``loss`` scores
    an averaged output (lower is better); stops after ``size`` picks or when no pick helps."""
    if not outputs:
        raise ValueError("no candidate trials to select from")
    picks: Counter[int] = Counter()
    total: np.ndarray | None = None
    best_loss = np.inf
    for _ in range(size):
        n = sum(picks.values())
        scored = []
        for number, out in outputs.items():
            avg = out if total is None else (total + out) / (n + 1)
            scored.append((loss(avg), number))
        value, number = min(scored)  # ties: the lower trial number
        if value >= best_loss:
            break
        best_loss = value
        picks[number] += 1
        total = outputs[number] if total is None else total + outputs[number]
    return dict(picks), float(best_loss)


def considers_defaults(
    config: StudyConfig, splits: Splits, study: optuna.Study | None = None
) -> bool:
    """Whether the estimator's defaults are a candidate final model (see the module): never under
    ``epoch_rows``, constraints, several objectives or multilabel targets; with
    ``defaults_candidate = "auto"`` only when their one fit's work is at most
    :data:`DEFAULTS_COST_FACTOR` times the trials' (:func:`defaults_cost`, :func:`trials_cost`)."""
    multilabel = splits.task == "classification" and splits.classes is None
    setting = config.result.defaults_candidate
    if (
        setting is False
        or config.budget.epoch_rows is not None
        or config.objective.constraints
        or config.multi_objective
        or multilabel
    ):
        return False
    if setting == "auto":
        if study is None:
            return False
        return defaults_cost(splits) <= DEFAULTS_COST_FACTOR * trials_cost(config, splits, study)
    return True


def defaults_known(config: StudyConfig, splits: Splits, extra: list[Resample]) -> CompletedTrial:
    """The estimator's defaults as a trial: trained with the study's seed on the training rows of
    every validation split, their validation outputs concatenated as a trial's are."""
    task, seed = splits.task, config.seed
    estimator = defaults_estimator(task, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(splits.Xt_train, splits.y_train)
    output = validation_output(task, estimator, splits.Xt_val)
    if extra:
        _, outputs, _ = score_resamples(
            config.metric, task, lambda: defaults_estimator(task, seed), extra
        )
        output = np.concatenate([output, *outputs])
    return CompletedTrial(
        value=float("nan"), output=output, epochs=int(estimator.n_iter_), estimator=estimator
    )


def retrain_trial(config: StudyConfig, splits: Splits, trial: optuna.trial.FrozenTrial) -> Pipeline:
    """Train a completed trial's model again from its parameters and seed on the training split,
    as the trial did (deterministic)."""
    est = trial_estimator(config, splits, trial)
    X_val, y_val = monitored_validation(config, splits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(splits.Xt_train, splits.y_train, X_val=X_val, y_val=y_val)
    return Pipeline([("preprocess", splits.preprocessor), ("mlp", est)])


def trial_model(
    config: StudyConfig,
    splits: Splits,
    tracker: StudyTracker,
    trial: optuna.trial.FrozenTrial,
    notes: list[str] | None = None,
) -> tuple[Pipeline, Literal["trial", "retrained"]]:
    """``(pipeline, source)``: the model the trial trained, downloaded from its MLflow run
    (``"trial"``), or, if the run has none, the same model trained again from the trial's
    parameters and seed (``"retrained"``); ``notes`` gets the reason for a retraining."""
    notes = [] if notes is None else notes
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id:
        try:
            return tracker.load_model(run_id), "trial"
        except TunerError as exc:
            notes.append(f"{exc}; trained trial {trial.number} again (same parameters and seed)")
    else:
        notes.append(
            f"trial {trial.number} has no MLflow run with its model; trained it again "
            "(same parameters and seed)"
        )
    return retrain_trial(config, splits, trial), "retrained"


def refit_rows(config: StudyConfig, splits: Splits) -> tuple[Any, np.ndarray, np.ndarray, str]:
    """(preprocessor, Xt, y, fingerprint) of training + validation rows, the preprocessing
    fitted on them."""
    from sklearn.base import clone

    X = splits.train_and_validation()
    y = np.concatenate([splits.y_train, splits.y_val])
    # The study's preprocessing settings (missing values, dates), unfitted.
    pre = clone(splits.preprocessor)
    return pre, pre.fit_transform(X), y, fingerprint(X, y)


def refit_estimator(
    config: StudyConfig,
    splits: Splits,
    trial: optuna.trial.FrozenTrial,
    epochs: int,
    Xt: np.ndarray,
    y: np.ndarray,
    copy: int = 0,
) -> MLPClassifier | MLPRegressor:
    """The trial's parameters and seed trained on (Xt, y) for the first ``epochs`` epochs of the
    trial's own training (``copy`` > 0: with another seed, see the module).

    Every parameter stays the trial's, ``max_epochs`` included: the decaying learning-rate
    schedules are laid out over ``max_epochs`` (:mod:`model.schedules`), so the refit follows the
    trial's rates epoch by epoch and stops where the trial's restored weights were made. (With
    ``max_epochs = epochs`` the whole decay would fall into those epochs: an exponential schedule
    of a trial that stops at epoch 6 of 200 would reach 1/100 of its rate by epoch 6 of the
    refit, and leave the final model undertrained.) Early stopping is off (nothing is left
    to stop on); the training-loss convergence rule still applies, as in any fit.

    With ``[budget] epoch_rows`` an epoch stays the same share of a pass: its rows grow with the
    refit's rows over the training split's, so the refit's ``epochs`` cover as many passes as the
    trial's did (as without ``epoch_rows``, where an epoch is one pass of either).
    """
    est = trial_estimator(config, splits, trial, copy)
    est.set_params(early_stopping=False)
    if est.epoch_rows is not None:
        share = len(y) / max(1, len(splits.y_train))
        est.set_params(epoch_rows=max(1, round(est.epoch_rows * share)))
    stop_after = int(epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xt, y, callbacks=[lambda epoch, logs: epoch >= stop_after])
    return est


def refit_trial(
    config: StudyConfig, splits: Splits, trial: optuna.trial.FrozenTrial, epochs: int
) -> tuple[Pipeline, str]:
    """(pipeline, fingerprint): one trial refit on training + validation rows (see the module)."""
    pre, Xt, y, fp = refit_rows(config, splits)
    return Pipeline(
        [("preprocess", pre), ("mlp", refit_estimator(config, splits, trial, epochs, Xt, y))]
    ), fp


def _known(
    config: StudyConfig,
    splits: Splits,
    trial: optuna.trial.FrozenTrial,
    completed: dict[int, CompletedTrial],
    extra: list[Resample],
) -> CompletedTrial:
    """The trial's validation outputs (every split's, see :mod:`tuner.search.resampling`) and
    epochs: from this process's objective, else trained again."""
    if trial.number in completed:
        return completed[trial.number]
    estimator = retrain_trial(config, splits, trial).steps[-1][1]
    output = validation_output(splits.task, estimator, splits.Xt_val)
    epochs = trial_epochs(estimator)
    if extra:
        _, outputs, more = score_resamples(
            config.metric, splits.task, lambda: trial_estimator(config, splits, trial), extra
        )
        output, epochs = np.concatenate([output, *outputs]), int(np.median([epochs, *more]))
    return CompletedTrial(
        value=float(trial.values[0]), output=output, epochs=epochs, estimator=estimator
    )


def select_members(
    config: StudyConfig,
    splits: Splits,
    study: optuna.Study,
    completed: dict[int, CompletedTrial] | None = None,
) -> tuple[dict[int, int], dict[int, CompletedTrial], float | None]:
    """The members of the final model (``{trial: weight}``, :data:`DEFAULTS_MEMBER` for the
    estimator's defaults), what is known of each, and the validation loss of their average (None
    for the single best trial alone). Only trials that meet the study's constraints are candidates
    (:mod:`tuner.search.constraints`), and the estimator's defaults where
    :func:`considers_defaults` allows them."""
    completed = completed or {}
    ranked = ranked_trials(study)
    if not ranked:
        raise ValueError(
            f"study {study.study_name!r} has no completed trial that meets its constraints"
        )
    size = config.result.ensemble
    multilabel = splits.task == "classification" and splits.classes is None
    extra = resamples(config, splits)
    classes, y_val = splits.classes, validation_targets(splits, extra)

    def loss(output: np.ndarray) -> float:
        return ensemble_loss(splits.task, y_val, output, classes)

    # size is 1 in a multi-objective study (tuner.study.config).
    if size == 1 or len(ranked) == 1 or multilabel:
        # A multi-objective study's primary trial alone (tuner.search.pareto).
        best = best_trial(study)
        known = {best.number: _known(config, splits, best, completed, extra)}
        size = 1
    else:
        pool = ranked[: size * CANDIDATES_PER_MEMBER]
        known = {t.number: _known(config, splits, t, completed, extra) for t in pool}
    if considers_defaults(config, splits, study):
        known[DEFAULTS_MEMBER] = defaults_known(config, splits, extra)
    elif size == 1:
        return {best.number: 1}, known, None
    outputs = {n: k.output for n, k in known.items() if np.all(np.isfinite(k.output))}
    members, value = greedy_selection(outputs, loss, size)
    return members, {n: known[n] for n in members}, value


def build_final_model(
    config: StudyConfig,
    splits: Splits,
    study: optuna.Study,
    completed: dict[int, CompletedTrial] | None = None,
    members: dict[int, int] | None = None,
    epochs: dict[int, int] | None = None,
    seeds: int | None = None,
) -> FinalModel:
    """The final model of ``study`` as its ``[result]`` table says (see the module docstring).
    ``members`` (and their ``epochs`` and ``seeds``) replay a recorded selection instead of
    selecting again."""
    seeds = config.result.seeds if seeds is None else int(seeds)
    if not config.result.refit:
        seeds = 1  # without refit the members are the trials' own models, as they were chosen
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    value = None
    known: dict[int, CompletedTrial] = {}
    if members is None:
        members, known, value = select_members(config, splits, study, completed)
        epochs = {n: known[n].epochs for n in members}
    elif epochs is None or set(epochs) != set(members):
        extra = resamples(config, splits)
        known = {
            n: defaults_known(config, splits, extra)
            if n == DEFAULTS_MEMBER
            else _known(config, splits, trials[n], completed or {}, extra)
            for n in members
        }
        epochs = {n: known[n].epochs for n in members}
    if config.result.refit:
        pre, Xt, y, fp = refit_rows(config, splits)

        def train(n: int, copy: int):
            if n == DEFAULTS_MEMBER:  # their own schedule, to its end
                estimator = defaults_estimator(splits.task, copy_seed(config.seed, copy))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return estimator.fit(Xt, y)
            return refit_estimator(config, splits, trials[n], epochs[n], Xt, y, copy)
    else:
        pre, fp = splits.preprocessor, splits.fingerprint

        def train(n: int, copy: int):  # one copy: the trial's own model
            if n in known and known[n].estimator is not None:
                return known[n].estimator
            if n == DEFAULTS_MEMBER:
                return defaults_known(config, splits, []).estimator
            return retrain_trial(config, splits, trials[n]).steps[-1][1]

    estimators, weights = [], []
    for n, weight in members.items():
        for copy in range(seeds):
            estimators.append(train(n, copy))
            weights.append(float(weight))
    final_est = estimators[0] if len(estimators) == 1 else MLPEnsemble(estimators, weights)
    return FinalModel(
        pipeline=Pipeline([("preprocess", pre), ("mlp", final_est)]),
        members=dict(members),
        refit=config.result.refit,
        validation_loss=value,
        fingerprint=fp,
        epochs=epochs,
        seeds=seeds,
    )


def recorded_final(study: optuna.Study) -> tuple[dict[int, int], dict[int, int], int] | None:
    """``(members, epochs, seeds)`` of the final model the study's last run chose
    (:data:`FINAL_ATTR`), or None when no run recorded one (e.g. a study run by ``tuner worker``
    only). A record without ``seeds`` stands for one copy of each member."""
    recorded: Any = study.user_attrs.get(FINAL_ATTR)  # JSON data as stored, checked below
    try:
        members = {member_number(k): int(v) for k, v in recorded["members"].items()}
        epochs = {member_number(k): int(v) for k, v in recorded["epochs"].items()}
        seeds = int(recorded.get("seeds", 1))
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return (members, epochs, max(seeds, 1)) if members else None


def record_result(
    study: optuna.Study,
    final: FinalModel,
    scores: dict[str, float],
    best_scores: dict[str, float],
    run_id: str | None,
) -> None:
    """Store on the study what a run hands back: the final model, its and the best trial's test
    scores, and the MLflow parent run that scored them (:data:`SCORED_BY_ATTR`)."""
    study.set_user_attr(FINAL_ATTR, final.describe())
    study.set_user_attr(TEST_SCORES_ATTR, scores)
    study.set_user_attr(BEST_TEST_SCORES_ATTR, best_scores)
    study.set_user_attr(SCORED_BY_ATTR, run_id)
