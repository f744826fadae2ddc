"""The tracker of one study: its experiment, parent and trial runs, the model a trial stores.

Runs are created and logged on background threads; tracking never stops tuning.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.tracking import summary
from tuner.tracking.client import (
    CHECK_TIMEOUT,
    PROBE_TIMEOUT,
    ExperimentWarning,
    TrackingWarning,
    experiment_url,
    first_line,
    health,
    is_http,
    open_client,
)
from tuner.tracking.experiments import claim_experiment, open_experiment
from tuner.tracking.keys import (
    MODEL_ARTIFACT_DIR,
    RUN_STATUS,
    TAG_HOST,
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
    dedupe,
    flatten,
    mlflow_key,
    ms,
    param_value,
    storage_identity,
)
from tuner.tracking.records import TrialRecord, trial_entities
from tuner.tracking.runs import new_points
from tuner.urls import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Experiment, Run

logger = logging.getLogger(__name__)


@dataclass
class PendingRun:
    """A trial's child run being created on a logging thread.

    See :meth:`StudyTracker.start_trial_later`.
    """

    number: int
    future: Future

    def done(self) -> bool:
        return self.future.done()


class StudyTracker:
    """Logs an Optuna study to MLflow: a parent run per process, a child run per trial.

    Thread-safe (Optuna ``n_jobs > 1``): all state lives in explicit run ids.

    Args:
        study_name: Optuna study name (tags, default experiment name).
        storage_url: Optuna storage URL, logged as a tag with any password hidden
            (:func:`storage_identity`).
        tracking_uri: MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else MLflow's default
            (``sqlite:///mlflow.db`` in the working directory).
        experiment_name: default ``study_name``; when that experiment records another storage,
            ``<name> (<storage>)`` (see :meth:`_get_or_create_experiment`).
        artifact_location: artifact root of the experiment if it has to be created; default for a
            ``sqlite:`` store is ``<database dir>/mlartifacts/<experiment name>`` (so artifacts do
            not depend on the working directory), else the store's default.
    """

    def __init__(
        self,
        study_name: str,
        storage_url: str,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        *,
        artifact_location: str | None = None,
    ) -> None:
        self.study_name = study_name
        self.storage_url = storage_identity(storage_url)
        self.experiment_name = experiment_name or study_name
        self.client: MlflowClient = open_client(tracking_uri)
        self.tracking_uri: str = self.client.tracking_uri
        self._artifact_location = artifact_location
        self._experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.unlogged_trials: set[int] = set()
        self._lock = threading.Lock()
        #: Logging threads: "start" creates trials' runs, "end" logs finished trials. A trial
        #: waits for its run to exist, so creating it never queues behind the previous trial's
        #: logging (tens of milliseconds, as long as the shortest pruned trials).
        self._background: dict[str, ThreadPoolExecutor] = {}
        self._warned = False
        self._offline = False
        #: The one line said when the study has an experiment of its own because another
        #: storage's study of the same name holds the experiment of its name (else None).
        self.notice: str | None = None

    # ----------------------------------------------------------------------------- experiment

    @property
    def experiment_id(self) -> str:
        """Id of the study's experiment, created on first use (raises on store errors)."""
        if self._experiment_id is None:
            with self._lock:
                if self._experiment_id is None:
                    self._experiment_id = self._get_or_create_experiment()
        return self._experiment_id

    def _get_or_create_experiment(self) -> str:
        """The study's experiment: the one named ``experiment_name`` when it records this
        storage (or none), else one named after the study and its storage, so that two studies
        of the same name in two storages never mix their runs (said in one warning when that
        experiment is created; :attr:`notice` holds the line every time)."""
        experiment, _ = self._open_experiment(self.experiment_name)
        recorded = experiment.tags.get(TAG_STORAGE)
        if recorded is None or storage_identity(recorded) == self.storage_url:
            return claim_experiment(self.client, experiment, self.storage_url)
        name = f"{self.experiment_name} ({self.storage_url})"
        separate, created = self._open_experiment(name)
        if storage_identity(separate.tags.get(TAG_STORAGE) or self.storage_url) != self.storage_url:
            raise TunerError(
                f"MLflow experiment {name!r} records another storage; "
                "choose another experiment name"
            )
        self.notice = (
            f"MLflow: study {self.study_name!r} on {self.storage_url} is logged to experiment "
            f"{name!r}: experiment {self.experiment_name!r} holds the study of that name on "
            f"{redact_url(recorded)}"
        )
        if created:
            warnings.warn(self.notice, ExperimentWarning, stacklevel=4)
        self.experiment_name = name
        return claim_experiment(self.client, separate, self.storage_url)

    def _open_experiment(self, name: str) -> tuple[Experiment, bool]:
        return open_experiment(
            self.client, name, self.study_name, self.storage_url, self._artifact_location
        )

    @property
    def url(self) -> str | None:
        """:func:`experiment_url` of this tracker's experiment (None for non-http stores)."""
        return experiment_url(self.tracking_uri, self.experiment_id)

    def check_connection(self) -> None:
        """Fail fast if the tracking store is unusable: raise TunerError with a one-line message.

        Also creates (or finds) the study's experiment.
        """
        try:
            if is_http(self.tracking_uri):
                health(self.tracking_uri, CHECK_TIMEOUT)  # fails fast, whatever MLflow's retries
            self.client.search_experiments(max_results=1)
            self.experiment_id  # noqa: B018 - resolves / creates the experiment
        except TunerError:
            raise
        except Exception as exc:
            raise TunerError(
                f"MLflow tracking store {redact_url(self.tracking_uri)} is unreachable or "
                f"unusable: {first_line(exc)}"
            ) from None

    # ----------------------------------------------------------------------------- failures

    def report_failure(self, what: str, trial_number: int | None, exc: BaseException) -> None:
        """Remember and report a tracking failure: one warning per tracker for trials, one per
        failure for the parent run (``trial_number`` None)."""
        with self._lock:
            if trial_number is not None:
                self.unlogged_trials.add(trial_number)
            self._offline = True
            first = not self._warned or trial_number is None
            self._warned = True
        logger.debug("MLflow %s failed", what, exc_info=exc)
        if first:
            from tuner.cli.hints import tuner_command

            warnings.warn(
                f"MLflow tracking failed ({what}): {first_line(exc)}. Tuning continues; "
                f"missing trials can be logged later with `{tuner_command()} sync`.",
                TrackingWarning,
                stacklevel=3,
            )

    def available(self) -> bool:
        """After a failure against an http store, probe ``/health`` quickly before trying again."""
        if not self._offline:
            return True
        if not is_http(self.tracking_uri):
            return True
        try:
            health(self.tracking_uri, PROBE_TIMEOUT)
            ok = True
        except (OSError, ValueError):  # urllib's URLError is an OSError
            ok = False
        if ok:
            with self._lock:
                self._offline = False
            logger.info("MLflow tracking server %s is reachable again", self.tracking_uri)
        return ok

    # ----------------------------------------------------------------------------- parent

    def base_tags(self) -> dict[str, str]:
        try:
            user = getpass.getuser()
        except Exception:  # no user name in some containers
            user = "unknown"
        return {
            TAG_STUDY: self.study_name,
            TAG_STORAGE: self.storage_url,
            "mlflow.user": user,
            "mlflow.source.type": "LOCAL",
            "mlflow.source.name": "tuner",
        }

    def start_parent(
        self,
        settings: Mapping[str, Any],
        run_name: str | None = None,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Create this process's parent run (RUNNING) with the flattened settings as params, and
        ``tags`` besides its own (e.g. a warm start's sources, :mod:`tuner.search.warm_start`).

        Default run name: ``<study>-<host>-<pid>``. Raises TunerError if the store fails (this
        happens before tuning starts).
        """
        from mlflow.entities import Param

        name = run_name or f"{self.study_name}-{socket.gethostname()}-{os.getpid()}"
        tags = (
            self.base_tags()
            | {
                TAG_ROLE: "parent",
                TAG_HOST: socket.gethostname(),
                TAG_PID: str(os.getpid()),
            }
            | dict(tags or {})
        )
        params = [Param(mlflow_key(k), param_value(v)) for k, v in flatten(settings).items()]
        try:
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
            self.parent_run_id = run.info.run_id
            self.client.log_batch(self.parent_run_id, params=dedupe(params))
        except TunerError:
            raise
        except Exception as exc:
            raise TunerError(
                f"cannot create the MLflow parent run in {redact_url(self.tracking_uri)}: "
                f"{first_line(exc)}"
            ) from None
        return self.parent_run_id

    # ----------------------------------------------------------------------------- trials

    def start_trial(self, trial_number: int, *, start_time: float | None = None) -> str | None:
        """Create the RUNNING child run ``trial-<n>``; return its id, or None if tracking failed.

        ``start_time`` (Unix seconds) defaults to now.
        """
        if not self.available():
            with self._lock:
                self.unlogged_trials.add(trial_number)
            return None
        tags = self.base_tags() | {
            TAG_ROLE: "trial",
            TAG_TRIAL: str(trial_number),
            TAG_RUN_NAME: f"trial-{trial_number}",
        }
        if self.parent_run_id is not None:
            tags[TAG_PARENT] = self.parent_run_id
        try:
            run = self.client.create_run(
                self.experiment_id,
                start_time=None if start_time is None else ms(start_time),
                tags=tags,
                run_name=f"trial-{trial_number}",
            )
        except Exception as exc:  # tracking must never stop tuning
            self.report_failure(f"start of trial {trial_number}", trial_number, exc)
            return None
        return run.info.run_id

    def end_trial(self, run_id: str | None, record: TrialRecord, found: Run | None = None) -> None:
        """Log the trial in one batch (params, per-epoch metrics, final metrics, state tags, the
        run name with its state and score, see :func:`.records.run_name`), then terminate its
        run: FINISHED (COMPLETE, PRUNED: told apart by the tag ``optuna.state``), FAILED (FAIL),
        KILLED (interrupted by Ctrl-C / SIGTERM).

        ``found``: the run as found in the store, when it may hold some of the trial's points
        already (a run left RUNNING, closed by ``tuner sync``): only the points it lacks are
        logged (:func:`.runs.new_points`). ``run_id`` None (``start_trial`` failed) only records
        the trial as unlogged. Never raises on tracking errors.
        """
        if run_id is None or not self.available():
            with self._lock:
                self.unlogged_trials.add(record.number)
            return
        try:
            metrics, params, tags = trial_entities(record)
            if found is not None:
                metrics = new_points(self.client, found, metrics)
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            self.client.set_terminated(
                run_id,
                status="KILLED" if record.interrupted else RUN_STATUS[record.state],
                end_time=ms(record.end_time),
            )
        except Exception as exc:  # tracking must never stop tuning
            self.report_failure(f"end of trial {record.number}", record.number, exc)
            return
        with self._lock:
            self.unlogged_trials.discard(record.number)

    def log_model(self, run_id: str | None, trial_number: int, fitted) -> bool:
        """Store a trial's fitted pipeline as its run's model (:meth:`store_model`), so export can
        take the model the trial trained; False (and a warning) when the store refused it."""
        if run_id is None or not self.available():
            return False
        try:
            self.store_model(run_id, fitted)
        except Exception as exc:  # tracking must never stop tuning
            self.report_failure(f"model of trial {trial_number}", trial_number, exc)
            return False
        return True

    def store_model(self, run_id: str, fitted) -> None:
        """Upload ``fitted`` (``model.save``: arrays + JSON, no pickle) as the run's
        ``model/model.npz`` artifact; raises what the artifact store raises."""
        from model import save

        with tempfile.TemporaryDirectory() as tmp:
            path = save(fitted, Path(tmp) / "model.npz")
            self.client.log_artifact(run_id, str(path), artifact_path=MODEL_ARTIFACT_DIR)

    def load_model(self, run_id: str):
        """The model that :meth:`log_model` stored for ``run_id``; TunerError if it is missing."""
        from model import load

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(
                    run_id, f"{MODEL_ARTIFACT_DIR}/model.npz", tmp
                )
                return load(path)
        except Exception as exc:
            raise TunerError(
                f"no stored model for MLflow run {run_id}: {first_line(exc)}"
            ) from None

    def start_trial_later(self, trial_number: int) -> PendingRun:
        """:meth:`start_trial` on a logging thread of its own, so that the trial trains while
        its run is created; :meth:`wait_for_run` gives the run id."""
        return PendingRun(
            trial_number,
            self._executor("start").submit(self.start_trial, trial_number, start_time=time.time()),
        )

    def wait_for_run(self, pending: PendingRun) -> str | None:
        """The run id of a :meth:`start_trial_later` (None if tracking failed), once created."""
        return pending.future.result()

    def _executor(self, kind: str) -> ThreadPoolExecutor:
        with self._lock:
            if kind not in self._background:
                self._background[kind] = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"mlflow-{kind}"
                )
            return self._background[kind]

    def end_trial_later(self, run_id: str | None, record: TrialRecord, fitted=None) -> None:
        """:meth:`log_model` (when ``fitted`` is given) then :meth:`end_trial`, on a background
        thread, so that the next trial trains while this one is logged. :meth:`flush` waits."""
        self._executor("end").submit(self._end_trial_with_model, run_id, record, fitted)

    def _end_trial_with_model(self, run_id: str | None, record: TrialRecord, fitted) -> None:
        if (
            fitted is not None
            and run_id is not None
            and not self.log_model(run_id, record.number, fitted)
        ):
            record.missing.append("model")  # tagged, so that `tuner sync` logs it later
        self.end_trial(run_id, record)

    def flush(self) -> None:
        """Wait until every trial handed to :meth:`end_trial_later` is logged."""
        with self._lock:
            executors, self._background = list(self._background.values()), {}
        for executor in executors:
            executor.shutdown(wait=True)

    def link_retry(
        self, run_id: str | None, previous_run_id: str | None, retry_of: int, number: int
    ) -> None:
        """Tag a retry's run and the run of the trial it replaces with each other, and close the
        dead worker's run as FAILED if it is still RUNNING. Never raises (``tuner sync`` closes
        runs later)."""
        try:
            if run_id:
                self.client.set_tag(run_id, TAG_RETRY_OF, str(retry_of))
            if previous_run_id:
                self.client.set_tag(previous_run_id, TAG_RETRIED_BY, str(number))
                self.client.set_tag(previous_run_id, TAG_STATE, "FAIL")
                # A run that is not RUNNING is already closed with its reason.
                if self.client.get_run(previous_run_id).info.status == "RUNNING":
                    self.client.set_tag(
                        previous_run_id,
                        TAG_REASON,
                        f"worker lost (no heartbeat); retried as trial {number}",
                    )
                    self.client.set_terminated(previous_run_id, status="FAILED")
        except Exception:  # tracking never stops tuning
            pass

    def close_lost_run(self, run_id: str) -> None:
        """Close FAILED the run of a trial that this process ran to its end after another worker
        had failed it (its heartbeat arrived late): the run's own end logged the state the trial
        reached, but Optuna's trial is FAIL and its retry has a run of its own. Never raises."""
        self.flush()  # the run's own end first, so that it cannot overwrite this one
        try:
            self.client.set_tag(run_id, TAG_STATE, "FAIL")
            self.client.set_tag(
                run_id, TAG_REASON, "failed by another worker (its heartbeat arrived late); retried"
            )
            self.client.set_terminated(run_id, status="FAILED")
        except Exception:  # tracking never stops tuning
            pass

    def log_trial(self, record: TrialRecord) -> str | None:
        """Log an already finished trial in one go (for ``tuner sync``); None if tracking failed."""
        run_id = self.start_trial(record.number, start_time=record.start_time)
        self.end_trial(run_id, record)
        return run_id if record.number not in self.unlogged_trials else None

    # ----------------------------------------------------------------------------- finish

    #: Log the study summary to the parent run and terminate it (:mod:`tuner.tracking.summary`).
    finish_parent = summary.finish_parent
