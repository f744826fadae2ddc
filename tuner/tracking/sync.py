"""``tuner sync``: log to MLflow every finished trial that MLflow is missing.

Optuna's storage is the record of truth: each trial stores its curves and summary there (see
:meth:`tuner.search.objective.Objective._record`), so a trial whose logging failed while the
tracking server was down can be logged afterwards, and a run left RUNNING is closed with its real
state.

Artifacts the store refused while the runs were logged (an unwritable artifact location) are
named on their run by the tag ``tuner.missing``; sync logs them once the store takes them: a
trial's model trained again from its parameters and seed (deterministic: the model the trial
trained), a parent run's plots and trials table drawn from the study as it is now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from tuner.errors import TunerError
from tuner.search.pareto import is_multi, tag_front
from tuner.storage.budget import FINISHED_STATES
from tuner.storage.recovery import recover
from tuner.storage.storages import load_existing_study, open_storage, resolve_storage_url
from tuner.study.files import study_name as resolve_study_name
from tuner.tracking import TAG_MISSING, TAG_TRIAL, StudyTracker, TrialRecord, trial_runs
from tuner.tracking.client import first_line
from tuner.tracking.runs import runs_missing_artifacts
from tuner.tracking.summary import log_study_artifacts, study_curves


@dataclass
class SyncReport:
    finished: int
    logged: list[int]
    closed: list[int]
    failed: list[int]
    #: MLflow runs that dead processes had left RUNNING, closed (see :mod:`tuner.storage.recovery`).
    dead_runs: list[str] = field(default_factory=list)
    #: Artifacts logged that the store had refused ("model of trial 3",
    #: "plots, trials.csv of run X").
    artifacts: list[str] = field(default_factory=list)
    #: Those still missing because the store still refuses them, and its error.
    artifacts_missing: list[str] = field(default_factory=list)
    artifact_error: str | None = None


def sync_study(
    study: str, storage: str | None = None, tracking_uri: str | None = None
) -> SyncReport:
    """Make MLflow agree with Optuna for ``study`` (a study name or file); returns what was done.
    A trial's model to train again needs the study's data: its file, found as
    :func:`tuner.study.files.resolve_config` finds it."""
    name = resolve_study_name(study)
    url = resolve_storage_url(storage)
    optuna_study = load_existing_study(name, open_storage(url), url)
    tracker = StudyTracker(name, url, tracking_uri=tracking_uri)
    tracker.check_connection()
    dead_runs = recover(optuna_study, tracker, "tuner sync")
    runs = trial_runs(tracker.client, tracker.experiment_id, name)
    metric = f"val_{optuna_study.user_attrs.get('metric', 'value')}"
    finished = optuna_study.get_trials(deepcopy=False, states=FINISHED_STATES)
    missing = [t for t in finished if t.number not in runs]
    left_running = [
        t for t in finished if t.number in runs and runs[t.number].info.status == "RUNNING"
    ]
    logged, closed = [], []
    if missing:
        tracker.start_parent(
            {"role": "sync", "storage": url}, run_name=f"sync-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        for trial in missing:
            if tracker.log_trial(_record(trial, metric)) is not None:
                logged.append(trial.number)
        tracker.finish_parent(optuna_study)
    for trial in left_running:
        run = runs[trial.number]
        tracker.end_trial(run.info.run_id, _record(trial, metric), found=run)
        if trial.number not in tracker.unlogged_trials:
            closed.append(trial.number)
    report = SyncReport(len(finished), logged, closed, sorted(tracker.unlogged_trials), dead_runs)
    # Runs logged by this sync may be on the Pareto front (:mod:`tuner.search.pareto`).
    if is_multi(optuna_study):
        tag_front(
            tracker.client, trial_runs(tracker.client, tracker.experiment_id, name), optuna_study
        )
    report.artifacts, report.artifacts_missing, report.artifact_error = log_missing_artifacts(
        optuna_study,
        tracker,
        lambda: _retrainer(study, url, optuna_study),
    )
    return report


def log_missing_artifacts(
    study: optuna.Study,
    tracker: StudyTracker,
    retrainer: Callable[[], Callable],
) -> tuple[list[str], list[str], str | None]:
    """Log what the runs tagged ``tuner.missing`` lack and remove the tag: ``(logged, still
    missing, the store's error)``. A trial's model comes from ``retrainer()(trial)`` (called
    once, when a model is missing). After the store's first refusal the rest is not tried (it
    would be refused alike, after training models for nothing)."""
    client = tracker.client
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    logged: list[str] = []
    missing: list[str] = []
    error: str | None = None
    retrain = None
    for run in runs_missing_artifacts(client, tracker.experiment_id, study.study_name):
        tags, run_id = run.data.tags, run.info.run_id
        number = int(tags[TAG_TRIAL]) if tags.get(TAG_TRIAL, "").isdigit() else None
        label = (
            f"model of trial {number}"
            if number is not None
            else f"{tags[TAG_MISSING]} of run {run.info.run_name}"
        )
        if error is not None:
            missing.append(label)
            continue
        try:
            if number is not None:
                retrain = retrain or retrainer()
                tracker.store_model(run_id, retrain(trials[number]))
            else:
                best, history = study_curves(tracker, study)
                _, exc = log_study_artifacts(client, run_id, study, history, best)
                if exc is not None:
                    raise exc
            client.delete_tag(run_id, TAG_MISSING)
            logged.append(label)
        except TunerError:  # the study file does not define the study, say: the user's to fix
            raise
        except Exception as exc:  # the store still refuses: said in one line
            error = first_line(exc)
            missing.append(label)
    return logged, missing, error


def _retrainer(study: str, url: str, optuna_study: optuna.Study) -> Callable:
    """Trains a completed trial's model again on the study's data.

    Uses :func:`tuner.result.final.retrain_trial`, after checking that the study file still
    defines the study.
    """
    from tuner.data.loading import load_splits
    from tuner.result.final import retrain_trial
    from tuner.study.definition import check_definition, study_definition
    from tuner.study.files import resolve_config

    config = resolve_config(study, url)
    splits = load_splits(config, check=False)
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    check_definition(optuna_study, study_definition(config, splits), config.path)
    return lambda trial: retrain_trial(config, splits, trial)


def _record(trial, metric: str) -> TrialRecord:
    record = TrialRecord.from_frozen_trial(trial, objective_name=metric)
    if trial.datetime_start and trial.datetime_complete:
        record.start_time = trial.datetime_start.timestamp()
        record.end_time = trial.datetime_complete.timestamp()
    return record
