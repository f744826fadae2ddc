"""MLflow tracking of Optuna studies.

Layout in MLflow:

- one experiment per study and storage, named after the study (unless ``experiment_name`` is
  given), tagged with its storage (``optuna.storage``, password hidden) and MLflow 3's
  model-training kind; a study of the same name from another storage gets an experiment of its
  own, ``<study> (<storage>)``, with one :class:`ExperimentWarning`;
- one *parent* run per ``tuner run`` invocation / worker process
  (:meth:`StudyTracker.start_parent`);
- one *child* run per Optuna trial, named ``trial-<number>`` and, once finished, with its state
  and score (``trial-3 0.9722``, ``trial-7 pruned@12``, ``trial-5 failed``), nested under the
  parent through the ``mlflow.parentRunId`` tag, and tagged ``optuna.study_name`` /
  ``optuna.trial_number`` / ``optuna.storage`` / ``optuna.state`` (/ ``optuna.reason``, also its
  description). A pruned trial's run is FINISHED: pruning is the tuner working as intended.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids, never through mlflow's
fluent "active run" state, so it works across threads and processes and is not affected by a
``MLFLOW_RUN_ID`` environment variable.

Tracking never stops tuning: :meth:`StudyTracker.start_trial` and :meth:`StudyTracker.end_trial`
swallow tracking-store errors (one :class:`TrackingWarning`, the trial number is remembered in
:attr:`StudyTracker.unlogged_trials` so that ``tuner sync`` can fill the gap later with
:func:`trial_runs`). Use :meth:`StudyTracker.check_connection` up front to fail fast instead.

``mlflow`` (slow to import) and matplotlib (in :mod:`tuner.tracking.plots`) are imported lazily:
importing this module is cheap.

The package: :mod:`.keys` (tags, key and value encoding), :mod:`.records` (a trial's record),
:mod:`.client` (the store and its health), :mod:`.runs` (finding runs), :mod:`.tracker`
(:class:`StudyTracker`: the experiment, parent and trial runs, background logging, trial models),
:mod:`.experiments` (opening and tagging the study's experiment),
:mod:`.summary` (the study summary and plots on the parent run), :mod:`.view` (the runs table
the study's link opens).
"""

from __future__ import annotations

from tuner.tracking.client import (
    ExperimentWarning,
    TrackingWarning,
    experiment_url,
    resolve_tracking_uri,
)
from tuner.tracking.keys import (
    MODEL_ARTIFACT_DIR,
    RUN_STATUS,
    TAG_DATA_FINGERPRINT,
    TAG_EXPORT_SOURCE,
    TAG_EXPORT_STUDY,
    TAG_EXPORT_TRIAL,
    TAG_HOST,
    TAG_MISSING,
    TAG_MODEL_ID,
    TAG_NOTE,
    TAG_PARENT,
    TAG_PID,
    TAG_REASON,
    TAG_RETRIED_BY,
    TAG_RETRY_OF,
    TAG_ROLE,
    TAG_RUN_NAME,
    TAG_STATE,
    TAG_STORAGE,
    TAG_STUDY,
    TAG_TRIAL,
)
from tuner.tracking.records import TrialRecord
from tuner.tracking.runs import find_trial_run, latest_parent_run, trial_runs
from tuner.tracking.tracker import PendingRun, StudyTracker

__all__ = [
    "ExperimentWarning",
    "MODEL_ARTIFACT_DIR",
    "PendingRun",
    "RUN_STATUS",
    "StudyTracker",
    "TAG_DATA_FINGERPRINT",
    "TAG_EXPORT_SOURCE",
    "TAG_EXPORT_STUDY",
    "TAG_EXPORT_TRIAL",
    "TAG_HOST",
    "TAG_MISSING",
    "TAG_MODEL_ID",
    "TAG_NOTE",
    "TAG_PARENT",
    "TAG_PID",
    "TAG_REASON",
    "TAG_RETRIED_BY",
    "TAG_RETRY_OF",
    "TAG_ROLE",
    "TAG_RUN_NAME",
    "TAG_STATE",
    "TAG_STORAGE",
    "TAG_STUDY",
    "TAG_TRIAL",
    "TrackingWarning",
    "TrialRecord",
    "experiment_url",
    "find_trial_run",
    "latest_parent_run",
    "resolve_tracking_uri",
    "trial_runs",
]
