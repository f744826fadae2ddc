"""The MLflow client of a tracking store: which store, opening it safely, whether it answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.errors import TunerError
from tuner.tracking.view import VIEW_KEY
from tuner.urls import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient


#: Seconds check_connection() gives a tracking server to answer (a refused connection fails at
#: once; a busy server gets time).
CHECK_TIMEOUT = 60
#: Seconds a tracker that saw the server fail waits for ``/health`` before trying it again.
PROBE_TIMEOUT = 2


def resolve_tracking_uri(flag: str | None = None) -> str:
    """The tracking URI in force: the flag, else ``$MLFLOW_TRACKING_URI``, else MLflow's default."""
    if flag:
        return flag
    import mlflow

    return mlflow.get_tracking_uri()


class TrackingWarning(UserWarning):
    """The tracking store failed; tuning goes on but some trials are missing from MLflow."""


class ExperimentWarning(UserWarning):
    """The study is logged to another experiment than its name: one of that name holds a study
    of the same name from another storage, whose runs are kept apart."""


def open_client(tracking_uri: str | None) -> MlflowClient:
    """An MlflowClient whose database store is created (or migrated) safely when other
    processes create it at the same instant (:mod:`tuner.storage.creation`), after checking that
    a server database exists; an SQLite store is then put in write-ahead-log mode, like the
    Optuna storage beside it: logging a trial took a dozen fsync'd commits, and their waits and
    the logging thread's work slowed the trials training meanwhile."""
    from mlflow import MlflowClient

    from tuner.storage._internals import mlflow_engine
    from tuner.storage.creation import check_database, open_racing
    from tuner.storage.sqlite import use_wal

    uri = resolve_tracking_uri(tracking_uri)
    if is_http(uri):
        return MlflowClient(tracking_uri=uri)
    check_database(uri, "MLflow tracking store")
    try:
        # The client opens its store when it is made.
        client = open_racing(lambda: MlflowClient(tracking_uri=uri), uri, create=_create_tables)
    except Exception as exc:
        raise TunerError(
            f"MLflow tracking store {redact_url(uri)} cannot be opened: {first_line(exc)}"
        ) from None
    if uri.startswith("sqlite:"):
        use_wal(mlflow_engine(client))
    return client


def _create_tables(uri: str) -> None:
    """Create MLflow's tables in the SQLite file of ``uri`` and close it."""
    from mlflow import MlflowClient

    from tuner.storage._internals import mlflow_engine

    mlflow_engine(MlflowClient(tracking_uri=uri)).dispose()


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def health(uri: str, timeout: float) -> None:
    """Return if the tracking server at ``uri`` answers ``GET /health`` with 200, else OSError.

    Asked directly (urllib), not through MLflow's client, whose retries and timeouts come from
    the process's environment. ``uri`` is an http(s) URL.
    """
    import urllib.request

    with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"/health answered {response.status}")


def experiment_url(tracking_uri: str, experiment_id: str) -> str | None:
    """Link to the runs table of an experiment in the UI's model-training mode, for http(s)
    tracking URIs (else None).

    MLflow 3.17's UI opens in its GenAI mode unless the link asks for model training
    (``workflowType=machine_learning``; a browser remembers the mode last chosen otherwise): the
    experiment tag ``mlflow.experimentKind`` only decides it when the UI has no mode selector.
    The link opens the study's view of its runs (:mod:`tuner.tracking.view`: trials sorted by
    validation score, their scores, state and main hyperparameters as columns).
    """
    if not is_http(tracking_uri):
        return None
    query = f"viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"
