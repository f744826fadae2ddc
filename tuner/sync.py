"""``tuner sync``: log to MLflow every finished trial that MLflow is missing.

Optuna's storage is the record of truth: each trial stores its curves and summary there (see
:meth:`tuner.objective.Objective._record`), so a trial whose logging failed while the tracking
server was down can be logged afterwards, and a run left RUNNING is closed with its real state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .budget import FINISHED_STATES
from .recovery import recover
from .storage import load_existing_study, open_storage, resolve_storage_url
from .tracking import StudyTracker, TrialRecord, trial_runs


@dataclass
class SyncReport:
    finished: int
    logged: list[int]
    closed: list[int]
    failed: list[int]
    #: MLflow runs that dead processes had left RUNNING, closed (see tuner.recovery).
    dead_runs: list[str] = field(default_factory=list)


def sync_study(study_name: str, storage: str | None = None, tracking_uri: str | None = None) -> SyncReport:
    """Make MLflow agree with Optuna for ``study_name``; returns what was done."""
    url = resolve_storage_url(storage)
    study = load_existing_study(study_name, open_storage(url), url)
    tracker = StudyTracker(study_name, url, tracking_uri=tracking_uri)
    tracker.check_connection()
    dead_runs = recover(study, tracker, "tuner sync")
    runs = trial_runs(tracker.client, tracker.experiment_id, study_name)
    metric = f"val_{study.user_attrs.get('metric', 'value')}"
    finished = study.get_trials(deepcopy=False, states=FINISHED_STATES)
    missing = [t for t in finished if t.number not in runs]
    left_running = [t for t in finished if t.number in runs and runs[t.number].info.status == "RUNNING"]
    logged, closed = [], []
    if missing:
        tracker.start_parent({"role": "sync", "storage": url}, run_name=f"sync-{time.strftime('%Y%m%d-%H%M%S')}")
        for trial in missing:
            if tracker.log_trial(_record(trial, metric)) is not None:
                logged.append(trial.number)
        tracker.finish_parent(study)
    for trial in left_running:
        tracker.end_trial(runs[trial.number].info.run_id, _record(trial, metric))
        if trial.number not in tracker.unlogged_trials:
            closed.append(trial.number)
    return SyncReport(len(finished), logged, closed, sorted(tracker.unlogged_trials), dead_runs)


def _record(trial, metric: str) -> TrialRecord:
    record = TrialRecord.from_frozen_trial(trial, objective_name=metric)
    if trial.datetime_start and trial.datetime_complete:
        record.start_time = trial.datetime_start.timestamp()
        record.end_time = trial.datetime_complete.timestamp()
    return record
