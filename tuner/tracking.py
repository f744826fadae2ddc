"""MLflow tracking of Optuna studies.

Layout in MLflow:

- one experiment per study (named after the study unless ``experiment_name`` is given);
- one *parent* run per ``tuner run`` invocation / worker process (:meth:`StudyTracker.start_parent`);
- one *child* run per Optuna trial, named ``trial-<number>``, nested under the parent through the
  ``mlflow.parentRunId`` tag, and tagged ``optuna.study_name`` / ``optuna.trial_number`` /
  ``optuna.storage`` / ``optuna.state`` (/ ``optuna.reason``).

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids, never through mlflow's
fluent "active run" state, so it works across threads and processes and is not affected by a
``MLFLOW_RUN_ID`` environment variable.

Tracking never stops tuning: :meth:`StudyTracker.start_trial` and :meth:`StudyTracker.end_trial`
swallow tracking-store errors (one :class:`TrackingWarning`, the trial number is remembered in
:attr:`StudyTracker.unlogged_trials` so that ``tuner sync`` can fill the gap later with
:func:`trial_runs`). Use :meth:`StudyTracker.check_connection` up front to fail fast instead.

``mlflow`` (slow to import) and matplotlib (in :mod:`tuner.plots`) are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import re
import socket
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.urls import redact_url

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = [
    "TrackingWarning",
    "TrialRecord",
    "StudyTracker",
    "experiment_url",
    "find_trial_run",
    "trial_runs",
]

logger = logging.getLogger(__name__)

#: Optuna trial state -> MLflow run status of the trial's child run.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}

TAG_STUDY = "optuna.study_name"
TAG_TRIAL = "optuna.trial_number"
TAG_STORAGE = "optuna.storage"
TAG_STATE = "optuna.state"
TAG_REASON = "optuna.reason"
TAG_ROLE = "tuner.role"  # "parent" | "trial"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"

#: Seconds check_connection() gives a tracking server to answer (a refused connection fails at
#: once; a busy server gets time).
CHECK_TIMEOUT = 60
#: Seconds a tracker that saw the server fail waits for ``/health`` before trying it again.
PROBE_TIMEOUT = 2

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


MODEL_ARTIFACT_DIR = "model"


def resolve_tracking_uri(flag: str | None = None) -> str:
    """The tracking URI in force: the flag, else ``$MLFLOW_TRACKING_URI``, else MLflow's default."""
    if flag:
        return flag
    import mlflow

    return mlflow.get_tracking_uri()


class TrackingWarning(UserWarning):
    """The tracking store failed; tuning goes on but some trials are missing from MLflow."""


@dataclass
class TrialRecord:
    """What is logged for one finished trial.

    ``history[name][i]`` is the value of metric ``name`` after epoch ``i + 1``; it is logged with
    ``step = i + 1`` (steps start at 1, like Optuna's ``trial.report(value, epoch)`` in this
    project). Final ``metrics`` whose name is also a ``history`` key are logged as ``final_<name>``
    so that they do not become an extra point of the curve.

    Times are Unix seconds (``time.time()``). Epoch timestamps come from ``epoch_times`` when
    given, else are spread evenly between ``start_time`` and ``end_time``.
    """

    number: int
    params: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    state: str = "COMPLETE"  # "COMPLETE" | "PRUNED" | "FAIL"
    reason: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    epoch_times: list[float] | None = None
    #: The trial was stopped by Ctrl-C / SIGTERM: its run is closed as KILLED whatever the state.
    interrupted: bool = False

    def __post_init__(self) -> None:
        if self.state not in RUN_STATUS:
            raise ValueError(f"state must be one of {sorted(RUN_STATUS)}, got {self.state!r}")

    @classmethod
    def from_frozen_trial(
        cls,
        trial: optuna.trial.FrozenTrial,
        *,
        fixed_params: Mapping[str, Any] | None = None,
        objective_name: str = "value",
    ) -> TrialRecord:
        """Rebuild a record from a finished Optuna trial (for ``tuner sync``).

        Params are ``fixed_params`` updated with the trial's params. Metrics are the objective value
        (as ``objective_name``) plus the numeric user attributes. The history is the user attribute
        ``history`` when it is a ``{name: [values]}`` dict, else the intermediate values reported to
        Optuna (as ``objective_name``, one point per reported step, in step order). The reason is
        the user attribute ``reason`` or Optuna's ``fail_reason`` system attribute.
        """
        state = trial.state.name
        if state not in RUN_STATUS:
            raise ValueError(f"trial {trial.number} is not finished (state {state})")
        params = dict(fixed_params or {})
        params.update(trial.params)
        metrics: dict[str, float] = {}
        for key, value in trial.user_attrs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = float(value)
        if trial.value is not None:
            metrics[objective_name] = float(trial.value)
        history_attr = trial.user_attrs.get("history")
        if isinstance(history_attr, dict) and all(
            isinstance(v, list) for v in history_attr.values()
        ):
            history = {str(k): [float(x) for x in v] for k, v in history_attr.items()}
        elif trial.intermediate_values:
            steps = sorted(trial.intermediate_values)
            history = {objective_name: [trial.intermediate_values[s] for s in steps]}
        else:
            history = {}
        reason = (
            trial.user_attrs.get("reason")
            or trial.user_attrs.get("fail_reason")
            or trial.system_attrs.get("fail_reason")
        )
        return cls(
            number=trial.number,
            params=params,
            history=history,
            metrics=metrics,
            state=state,
            reason=None if reason is None else str(reason),
            start_time=trial.datetime_start.timestamp() if trial.datetime_start else None,
            end_time=trial.datetime_complete.timestamp() if trial.datetime_complete else None,
        )


# --------------------------------------------------------------------------------------------
# helpers


def _open_client(tracking_uri: str | None) -> MlflowClient:
    """An MlflowClient whose database store is created (or migrated) safely when other
    processes create it at the same instant (:mod:`tuner.store_creation`), after checking that
    a server database exists; an SQLite store is then put in write-ahead-log mode, like the
    Optuna storage beside it: logging a trial took a dozen fsync'd commits, and their waits and
    the logging thread's work slowed the trials training meanwhile."""
    from mlflow import MlflowClient

    from .internals import mlflow_engine
    from .sqlite import use_wal
    from .store_creation import check_database, open_racing

    uri = resolve_tracking_uri(tracking_uri)
    if _is_http(uri):
        return MlflowClient(tracking_uri=uri)
    check_database(uri, "MLflow tracking store")
    try:
        # The client opens its store when it is made.
        client = open_racing(lambda: MlflowClient(tracking_uri=uri), uri)
    except Exception as exc:
        raise TunerError(f"MLflow tracking store {redact_url(uri)} cannot be opened: {_first_line(exc)}") from None
    if uri.startswith("sqlite:"):
        use_wal(mlflow_engine(client))
    return client


def _ms(seconds: float | None) -> int:
    return int(round((time.time() if seconds is None else seconds) * 1000))


def _key(name: Any) -> str:
    """A valid MLflow param/metric/tag key (invalid characters become ``_``, max 250 chars)."""
    key = _BAD_KEY_CHARS.sub("_", str(name)).strip("/") or "_"
    key = re.sub(r"/+", "/", key).replace("/./", "/_./").replace("/../", "/__/")
    if key.startswith("."):
        key = "_" + key
    return key[:250]


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        text = redact_url(value)
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (list, tuple, dict)):
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = str(value)
        text = redact_url(text)
    else:
        text = str(value)
    return text[:6000]


def _metric_value(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; pydantic models and dataclasses are expanded."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        elif hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
            import dataclasses

            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _health(uri: str, timeout: float) -> None:
    """Return if the tracking server at ``uri`` answers ``GET /health`` with 200; else raise
    OSError. Asked directly (urllib), not through MLflow's client, whose retries and timeouts
    come from the process's environment."""
    import urllib.request

    with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310 - http(s) only
        if response.status != 200:
            raise OSError(f"/health answered {response.status}")


def experiment_url(tracking_uri: str, experiment_id: str) -> str | None:
    """Link to the classic runs table of an experiment, for http(s) tracking URIs (else None).

    MLflow 3.17's UI opens in its GenAI mode otherwise.
    """
    if not _is_http(tracking_uri):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs"


def _quote(value: str) -> str | None:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _search_trial_runs(
    client: MlflowClient, experiment_id: str, study_name: str, extra_filter: str = ""
) -> Iterator[Run]:
    quoted = _quote(study_name)
    clauses = [f"tags.`{TAG_STUDY}` = {quoted}"] if quoted else []
    if extra_filter:
        clauses.append(extra_filter)
    filter_string = " AND ".join(clauses)
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            if tags.get(TAG_STUDY) == study_name and TAG_TRIAL in tags:
                yield run
        token = page.token
        if not token:
            return


def find_trial_run(
    client: MlflowClient, experiment_id: str, study_name: str, trial_number: int
) -> Run | None:
    """The latest (by start time) active child run of a trial; None if it was never logged."""
    runs = _search_trial_runs(
        client, experiment_id, study_name, f"tags.`{TAG_TRIAL}` = '{int(trial_number)}'"
    )
    return next(runs, None)


def trial_runs(client: MlflowClient, experiment_id: str, study_name: str) -> dict[int, Run]:
    """All trials of a study logged in an experiment: trial number -> its latest child run.

    A trial whose run status is still RUNNING while Optuna says it is finished had its end
    logging lost (see :attr:`StudyTracker.unlogged_trials`).
    """
    found: dict[int, Run] = {}
    for run in _search_trial_runs(client, experiment_id, study_name):
        try:
            number = int(run.data.tags[TAG_TRIAL])
        except ValueError:
            continue
        found.setdefault(number, run)  # runs come newest first
    return found


# --------------------------------------------------------------------------------------------


@dataclass
class PendingRun:
    """A trial's child run being created on a logging thread (:meth:`StudyTracker.start_trial_later`)."""

    number: int
    future: Future

    def done(self) -> bool:
        return self.future.done()


class StudyTracker:
    """Logs an Optuna study to MLflow: a parent run per process, a child run per trial.

    Thread-safe (Optuna ``n_jobs > 1``): all state lives in explicit run ids.

    Args:
        study_name: Optuna study name (tags, default experiment name).
        storage_url: Optuna storage URL, logged as a tag with any password hidden.
        tracking_uri: MLflow tracking URI; default ``MLFLOW_TRACKING_URI``, else MLflow's default
            (``sqlite:///mlflow.db`` in the working directory).
        experiment_name: default ``study_name``.
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
        self.storage_url = redact_url(storage_url)
        self.experiment_name = experiment_name or study_name
        self.client: MlflowClient = _open_client(tracking_uri)
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

    # ----------------------------------------------------------------------------- experiment

    @property
    def experiment_id(self) -> str:
        """Id of the study's experiment, created on first use (raises on store errors)."""
        if self._experiment_id is None:
            with self._lock:
                if self._experiment_id is None:
                    self._experiment_id = self._get_or_create_experiment()
        return self._experiment_id

    def _default_artifact_location(self) -> str | None:
        if self._artifact_location is not None:
            return self._artifact_location
        uri = self.tracking_uri
        if uri.startswith("sqlite:///") and ":memory:" not in uri:
            from urllib.parse import unquote

            db_path = Path(unquote(uri[len("sqlite:///") :].split("?", 1)[0]))
            return str((db_path.parent / "mlartifacts" / _key(self.experiment_name)).resolve())
        return None

    def _get_or_create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self.client
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return client.create_experiment(
                    self.experiment_name,
                    artifact_location=self._default_artifact_location(),
                    tags={TAG_STUDY: self.study_name, TAG_STORAGE: self.storage_url},
                )
            except MlflowException as exc:  # created concurrently by another worker
                experiment = client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    raise exc
        if experiment.lifecycle_stage == "deleted":
            raise TunerError(
                f"MLflow experiment {self.experiment_name!r} is deleted; restore it "
                f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
                "or choose another experiment name"
            )
        return experiment.experiment_id

    @property
    def url(self) -> str | None:
        """:func:`experiment_url` of this tracker's experiment (None for non-http stores)."""
        return experiment_url(self.tracking_uri, self.experiment_id)

    def check_connection(self) -> None:
        """Fail fast if the tracking store is unusable: raise TunerError with a one-line message.

        Also creates (or finds) the study's experiment.
        """
        try:
            if _is_http(self.tracking_uri):
                _health(self.tracking_uri, CHECK_TIMEOUT)  # fails fast, whatever MLflow's retries
            self.client.search_experiments(max_results=1)
            self.experiment_id  # noqa: B018 - resolves / creates the experiment
        except TunerError:
            raise
        except Exception as exc:
            raise TunerError(
                f"MLflow tracking store {redact_url(self.tracking_uri)} is unreachable or "
                f"unusable: {_first_line(exc)}"
            ) from None

    # ----------------------------------------------------------------------------- failures

    def _failed(self, what: str, trial_number: int | None, exc: BaseException) -> None:
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
            from .hints import tuner_command

            warnings.warn(
                f"MLflow tracking failed ({what}): {_first_line(exc)}. Tuning continues; "
                f"missing trials can be logged later with `{tuner_command()} sync`.",
                TrackingWarning,
                stacklevel=3,
            )

    def _available(self) -> bool:
        """After a failure against an http store, probe ``/health`` quickly before trying again."""
        if not self._offline:
            return True
        if not _is_http(self.tracking_uri):
            return True
        try:
            _health(self.tracking_uri, PROBE_TIMEOUT)
            ok = True
        except (OSError, ValueError):  # urllib's URLError is an OSError
            ok = False
        if ok:
            with self._lock:
                self._offline = False
            logger.info("MLflow tracking server %s is reachable again", self.tracking_uri)
        return ok

    # ----------------------------------------------------------------------------- parent

    def _base_tags(self) -> dict[str, str]:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            user = "unknown"
        return {
            TAG_STUDY: self.study_name,
            TAG_STORAGE: self.storage_url,
            "mlflow.user": user,
            "mlflow.source.type": "LOCAL",
            "mlflow.source.name": "tuner",
        }

    def start_parent(self, settings: Mapping[str, Any], run_name: str | None = None) -> str:
        """Create this process's parent run (RUNNING) with the flattened settings as params.

        Default run name: ``<study>-<host>-<pid>``. Raises TunerError if the store fails (this
        happens before tuning starts).
        """
        from mlflow.entities import Param

        name = run_name or f"{self.study_name}-{socket.gethostname()}-{os.getpid()}"
        tags = self._base_tags() | {
            TAG_ROLE: "parent",
            "tuner.host": socket.gethostname(),
            "tuner.pid": str(os.getpid()),
        }
        params = [Param(_key(k), _param_value(v)) for k, v in flatten(settings).items()]
        try:
            run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
            self.parent_run_id = run.info.run_id
            self.client.log_batch(self.parent_run_id, params=_dedupe(params))
        except TunerError:
            raise
        except Exception as exc:
            raise TunerError(
                f"cannot create the MLflow parent run in {redact_url(self.tracking_uri)}: "
                f"{_first_line(exc)}"
            ) from None
        return self.parent_run_id

    # ----------------------------------------------------------------------------- trials

    def start_trial(self, trial_number: int, *, start_time: float | None = None) -> str | None:
        """Create the RUNNING child run ``trial-<n>``; return its id, or None if tracking failed.

        ``start_time`` (Unix seconds) defaults to now.
        """
        if not self._available():
            with self._lock:
                self.unlogged_trials.add(trial_number)
            return None
        tags = self._base_tags() | {
            TAG_ROLE: "trial",
            TAG_TRIAL: str(trial_number),
            TAG_RUN_NAME: f"trial-{trial_number}",
        }
        if self.parent_run_id is not None:
            tags[TAG_PARENT] = self.parent_run_id
        try:
            run = self.client.create_run(
                self.experiment_id,
                start_time=None if start_time is None else _ms(start_time),
                tags=tags,
                run_name=f"trial-{trial_number}",
            )
        except Exception as exc:  # noqa: BLE001 - tracking must never stop tuning
            self._failed(f"start of trial {trial_number}", trial_number, exc)
            return None
        return run.info.run_id

    def end_trial(self, run_id: str | None, record: TrialRecord) -> None:
        """Log the trial in one batch (params, per-epoch metrics, final metrics, state tags), then
        terminate its run: FINISHED (COMPLETE), KILLED (PRUNED) or FAILED (FAIL).

        ``run_id`` None (``start_trial`` failed) only records the trial as unlogged. Never raises
        on tracking errors.
        """
        if run_id is None or not self._available():
            with self._lock:
                self.unlogged_trials.add(record.number)
            return
        try:
            metrics, params, tags = _trial_entities(record)
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
            self.client.set_terminated(
                run_id,
                status="KILLED" if record.interrupted else RUN_STATUS[record.state],
                end_time=_ms(record.end_time),
            )
        except Exception as exc:  # noqa: BLE001 - tracking must never stop tuning
            self._failed(f"end of trial {record.number}", record.number, exc)
            return
        with self._lock:
            self.unlogged_trials.discard(record.number)

    def log_model(self, run_id: str | None, trial_number: int, fitted) -> None:
        """Store a trial's fitted pipeline (``model.save``: arrays + JSON, no pickle) as the run's
        ``model/model.npz`` artifact, so export can take the model the trial trained."""
        if run_id is None or not self._available():
            return
        from model import save

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = save(fitted, Path(tmp) / "model.npz")
                self.client.log_artifact(run_id, str(path), artifact_path=MODEL_ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001 - tracking must never stop tuning
            self._failed(f"model of trial {trial_number}", trial_number, exc)

    def load_model(self, run_id: str):
        """The model that :meth:`log_model` stored for ``run_id``; TunerError if it is missing."""
        from model import load

        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = self.client.download_artifacts(run_id, f"{MODEL_ARTIFACT_DIR}/model.npz", tmp)
                return load(path)
        except Exception as exc:
            raise TunerError(f"no stored model for MLflow run {run_id}: {_first_line(exc)}") from None

    def start_trial_later(self, trial_number: int) -> PendingRun:
        """:meth:`start_trial` on a logging thread of its own, so that the trial trains while
        its run is created; :meth:`wait_for_run` gives the run id."""
        return PendingRun(trial_number, self._executor("start").submit(self.start_trial, trial_number, start_time=time.time()))

    def wait_for_run(self, pending: PendingRun) -> str | None:
        """The run id of a :meth:`start_trial_later` (None if tracking failed), once created."""
        return pending.future.result()

    def _executor(self, kind: str) -> ThreadPoolExecutor:
        with self._lock:
            if kind not in self._background:
                self._background[kind] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mlflow-{kind}")
            return self._background[kind]

    def end_trial_later(self, run_id: str | None, record: TrialRecord, fitted=None) -> None:
        """:meth:`log_model` (when ``fitted`` is given) then :meth:`end_trial`, on a background
        thread, so that the next trial trains while this one is logged. :meth:`flush` waits."""
        self._executor("end").submit(self._end_trial_with_model, run_id, record, fitted)

    def _end_trial_with_model(self, run_id: str | None, record: TrialRecord, fitted) -> None:
        if fitted is not None:
            self.log_model(run_id, record.number, fitted)
        self.end_trial(run_id, record)

    def flush(self) -> None:
        """Wait until every trial handed to :meth:`end_trial_later` is logged."""
        with self._lock:
            executors, self._background = list(self._background.values()), {}
        for executor in executors:
            executor.shutdown(wait=True)

    def log_trial(self, record: TrialRecord) -> str | None:
        """Log an already finished trial in one go (for ``tuner sync``); None if tracking failed."""
        run_id = self.start_trial(record.number, start_time=record.start_time)
        self.end_trial(run_id, record)
        return run_id if record.number not in self.unlogged_trials else None

    # ----------------------------------------------------------------------------- finish

    def finish_parent(
        self,
        study: optuna.Study,
        *,
        test_scores: Mapping[str, float] | None = None,
        best_history: Mapping[str, list[float]] | None = None,
        status: str = "FINISHED",
        best_trial_test_scores: Mapping[str, float] | None = None,
        final: Mapping[str, Any] | None = None,
    ) -> None:
        """Log the study summary to the parent run and terminate it with ``status``.

        Logs params ``best_<param>``, metrics ``best_value``, ``best_<metric>`` (the best trial's
        final metrics, read from its child run), ``test_<metric>`` (the final model, see tuner/final.py), ``best_trial_test_<metric>`` (the best
        trial's own model), ``final_members`` / ``final_refit`` (tags: the final model's trials and
        weights, and whether they were refit), ``n_complete`` / ``n_pruned`` /
        ``n_failed``; tags ``best_trial_number`` / ``best_run_id``; artifacts
        ``optimization_history.png``, ``param_importances.png`` (>= 2 complete trials),
        ``parallel_coordinate.png``, ``learning_curves.png`` (``best_history``, else the best
        run's metric history) and ``trials.csv``. Every part is best effort: failures warn, never
        raise.
        """
        from mlflow.entities import Metric, Param, RunTag

        self.flush()
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        run_id = self.parent_run_id
        if run_id is None:
            warnings.warn(
                "finish_parent() without start_parent(): nothing logged",
                TrackingWarning,
                stacklevel=2,
            )
            return
        if not self._available():
            from .hints import tuner_command

            warnings.warn(
                "MLflow is unreachable: the study summary was not logged to the parent run; "
                f"`{tuner_command()} sync` logs the missing trials once it is back",
                TrackingWarning,
                stacklevel=2,
            )
            return
        import optuna

        now = _ms(None)
        trials = study.get_trials(deepcopy=False)
        states = optuna.trial.TrialState
        metrics = [
            Metric("n_complete", sum(t.state == states.COMPLETE for t in trials), now, 0),
            Metric("n_pruned", sum(t.state == states.PRUNED for t in trials), now, 0),
            Metric("n_failed", sum(t.state == states.FAIL for t in trials), now, 0),
        ]
        params: list[Param] = []
        tags: list[RunTag] = []
        best = None
        best_run = None
        run_history: dict[str, list[float]] = {}
        if len(study.directions) == 1 and any(t.state == states.COMPLETE for t in trials):
            with contextlib.suppress(Exception):
                best = study.best_trial
        if best is not None:
            params += [Param(_key(f"best_{k}"), _param_value(v)) for k, v in best.params.items()]
            metrics.append(Metric("best_value", float(best.value), now, 0))
            tags.append(RunTag("best_trial_number", str(best.number)))
            try:
                best_run = find_trial_run(
                    self.client, self.experiment_id, self.study_name, best.number
                )
            except Exception as exc:  # noqa: BLE001
                logger.debug("cannot find the best trial's run", exc_info=exc)
            if best_run is not None:
                tags.append(RunTag("best_run_id", best_run.info.run_id))
                final, run_history = self._run_metrics(best_run)
            else:
                final = {
                    k: v
                    for k, v in best.user_attrs.items()
                    if _metric_value(v) is not None and not isinstance(v, bool)
                }
            for k, v in final.items():
                value = _metric_value(v)
                if k.startswith("final_") and k[len("final_") :] in run_history:
                    k = k[len("final_") :]  # the curve's final value, see TrialRecord
                if value is not None and f"best_{k}" != "best_value":
                    metrics.append(Metric(_key(f"best_{k}"), value, now, 0))
        for prefix, scores in (("test", test_scores), ("best_trial_test", best_trial_test_scores)):
            for k, v in (scores or {}).items():
                value = _metric_value(v)
                if value is not None:
                    metrics.append(Metric(_key(f"{prefix}_{k}"), value, now, 0))
        if final:
            members = ",".join(f"{k}x{v}" for k, v in final.get("members", {}).items())
            tags += [RunTag("final_members", members), RunTag("final_refit", str(bool(final.get("refit"))).lower())]
        try:
            self.client.log_batch(
                run_id, metrics=_dedupe(metrics), params=_dedupe(params), tags=tags
            )
        except Exception as exc:  # noqa: BLE001
            self._failed("study summary", None, exc)

        history = dict(best_history) if best_history else None
        if history is None:
            history = run_history or None
        try:
            with tempfile.TemporaryDirectory(prefix="tuner-artifacts-") as tmp:
                _write_artifacts(study, Path(tmp), history, best)
                if any(Path(tmp).iterdir()):
                    self.client.log_artifacts(run_id, tmp)
        except Exception as exc:  # noqa: BLE001
            self._failed("study artifacts", None, exc)
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception as exc:  # noqa: BLE001
            self._failed("end of the parent run", None, exc)

    def _run_metrics(self, run: Run) -> tuple[dict[str, float], dict[str, list[float]]]:
        """A trial run's final metrics (logged at step 0) and per-epoch curves (steps >= 1)."""
        final: dict[str, float] = {}
        history: dict[str, list[float]] = {}
        try:
            for key in run.data.metrics:
                points = sorted(
                    self.client.get_metric_history(run.info.run_id, key), key=lambda m: m.step
                )
                if any(m.step >= 1 for m in points):
                    history[key] = [m.value for m in points if m.step >= 1]
                elif points:
                    final[key] = points[-1].value
        except Exception as exc:  # noqa: BLE001
            logger.debug("cannot read the best run's metrics", exc_info=exc)
            final = {k: v for k, v in run.data.metrics.items() if k not in history}
        return final, history


def _dedupe(entities: list[Any]) -> list[Any]:
    """Keep the last entity per key (MLflow rejects duplicate keys in a batch)."""
    return list({e.key: e for e in entities}.values())


def _trial_entities(record: TrialRecord) -> tuple[list[Any], list[Any], list[Any]]:
    from mlflow.entities import Metric, Param, RunTag

    end_ms = _ms(record.end_time)
    start_ms = _ms(record.start_time) if record.start_time is not None else end_ms
    metrics: list[Metric] = []
    for name, values in record.history.items():
        key = _key(name)
        n = len(values)
        for i, value in enumerate(values):
            v = _metric_value(value)
            if v is None:
                continue
            if record.epoch_times is not None and i < len(record.epoch_times):
                ts = _ms(record.epoch_times[i])
            else:
                ts = start_ms + (end_ms - start_ms) * (i + 1) // n
            metrics.append(Metric(key, v, ts, i + 1))
    history_keys = {_key(k) for k in record.history}
    for name, value in record.metrics.items():
        v = _metric_value(value)
        if v is None:
            continue
        key = _key(name)
        if key in history_keys:
            key = _key(f"final_{name}")
        metrics.append(Metric(key, v, end_ms, 0))
    params = _dedupe([Param(_key(k), _param_value(v)) for k, v in record.params.items()])
    tags = [RunTag(TAG_STATE, record.state)]
    if record.reason:
        tags.append(RunTag(TAG_REASON, record.reason[:8000]))
    return metrics, params, tags


# --------------------------------------------------------------------------------------------
# artifacts


def _write_artifacts(
    study: optuna.Study,
    out: Path,
    history: Mapping[str, list[float]] | None,
    best: optuna.trial.FrozenTrial | None,
) -> None:
    from .plots import write_study_plots

    write_study_plots(study, out, history, best)
    try:
        study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    except Exception as exc:  # noqa: BLE001
        logger.debug("cannot write trials.csv", exc_info=exc)
