"""Running a study end to end: the one code path behind ``tuner run`` and :func:`run_study`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
from sklearn.pipeline import Pipeline

from . import metrics
from .config import StudyConfig, load_config
from .data import Splits, load_splits
from .objective import Objective, build_estimator
from .sampling import make_pruner, make_sampler
from .storage import open_storage, resolve_storage_url
from .tracking import StudyTracker


@dataclass
class StudyResult:
    """What a run produced: the Optuna study and, when a trial completed, its test scores."""

    study: optuna.Study
    config: StudyConfig
    test_scores: dict[str, float]
    tracker: StudyTracker | None


def create_study(config: StudyConfig, storage_url: str) -> optuna.Study:
    """Create the study named in ``config`` or load it to continue (same name, same storage)."""
    storage = open_storage(storage_url)
    return optuna.create_study(
        study_name=config.name,
        storage=storage,
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        direction=config.direction,
        load_if_exists=True,
    )


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: every trial that ran to an end."""
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def test_scores(config: StudyConfig, splits: Splits, pipeline: Pipeline) -> dict[str, float]:
    """Every metric of the task on the held-out test split (raw rows through the pipeline)."""
    scores = {}
    for name in metrics.metrics_for_task(splits.task, splits.n_classes):
        if metrics.needs_proba(name):
            scores[name] = metrics.score(
                name, splits.y_test, proba=pipeline.predict_proba(splits.X_test), labels=pipeline.classes_
            )
        else:
            scores[name] = metrics.score(name, splits.y_test, y_pred=pipeline.predict(splits.X_test))
    return scores


def retrain_trial(config: StudyConfig, splits: Splits, trial: optuna.trial.FrozenTrial) -> Pipeline:
    """Train a completed trial's model again from its parameters and seed (deterministic)."""
    from .space import params_from_trial

    params = params_from_trial(trial, config.space, config.budget.max_epochs)
    est = build_estimator(splits.task, params, config.seed + trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(splits.Xt_train, splits.y_train, X_val=splits.Xt_val, y_val=splits.y_val)
    return Pipeline([("preprocess", splits.preprocessor), ("mlp", est)])


def run_study(
    config: str | Path | StudyConfig,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    seed: int | None = None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
) -> StudyResult:
    """Create or resume a study and run it until its total budget of trials is reached.

    ``n_trials`` is the study's total (trials already in the storage count); the test split is
    scored once, for the best trial, after the search.
    """
    if not isinstance(config, StudyConfig):
        config = load_config(config)
    config = config.with_overrides(n_trials=n_trials, timeout=timeout, seed=seed)
    splits = load_splits(config)
    storage_url = resolve_storage_url(storage)
    tracker = StudyTracker(config.name, storage_url, tracking_uri=tracking_uri)
    tracker.check_connection()
    study = create_study(config, storage_url)
    tracker.start_parent(config.flat_settings() | {"storage": storage_url})
    objective = Objective(config, splits, tracker)
    status, scores, best_history = "FAILED", {}, None
    try:
        remaining = config.budget.n_trials - finished_count(study)
        if remaining > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=config.budget.timeout,
                    catch=(Exception,),
                    callbacks=callbacks,
                    gc_after_trial=False,
                )
        if _has_complete(study):
            best = study.best_trial
            pipeline = objective.best_pipelines.get(best.number) or retrain_trial(config, splits, best)
            scores = test_scores(config, splits, pipeline)
            best_history = objective.histories.get(best.number)
            study.set_user_attr("test_scores", scores)
        status = "FINISHED"
        return StudyResult(study, config, scores, tracker)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish_parent(
            study,
            test_scores=scores or None,
            best_history=best_history,
            status=status,
        )


def _has_complete(study: optuna.Study) -> bool:
    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
