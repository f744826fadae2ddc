"""The study's MLflow experiment: found or created, tagged with its storage and kind.

:class:`tuner.tracking.tracker.StudyTracker` decides which experiment a study logs to; this
module opens one by name and makes sure it records the storage and MLflow 3's model-training kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.errors import TunerError
from tuner.tracking.keys import EXPERIMENT_KIND, TAG_EXPERIMENT_KIND, TAG_STORAGE, TAG_STUDY

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Experiment


def default_artifacts(tracking_uri: str, name: str) -> str | None:
    """Where a new experiment ``name`` keeps its artifacts by default.

    For a ``sqlite:`` store ``<database dir>/mlartifacts/<name as a folder name>``, so that
    artifacts do not depend on the working directory; else None, the store's default.
    """
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        from urllib.parse import unquote

        db_path = Path(unquote(tracking_uri[len("sqlite:///") :].split("?", 1)[0]))
        folder = re.sub(r"[^\w.\- ]+", "_", name).strip("._ ") or "_"
        return str((db_path.parent / "mlartifacts" / folder).resolve())
    return None


def open_experiment(
    client: MlflowClient,
    name: str,
    study_name: str,
    storage_url: str,
    artifact_location: str | None,
) -> tuple[Experiment, bool]:
    """``(experiment, created)``: the experiment ``name``, created if it does not exist.

    A new experiment is tagged with the study, the storage and MLflow 3's model-training kind,
    and keeps its artifacts at ``artifact_location`` (None: :func:`default_artifacts`).
    TunerError if the experiment is deleted.
    """
    from mlflow.exceptions import MlflowException

    experiment, created = client.get_experiment_by_name(name), False
    if experiment is None:
        tags = {
            TAG_STUDY: study_name,
            TAG_STORAGE: storage_url,
            TAG_EXPERIMENT_KIND: EXPERIMENT_KIND,
        }
        if artifact_location is None:
            artifact_location = default_artifacts(client.tracking_uri, name)
        try:
            client.create_experiment(name, artifact_location=artifact_location, tags=tags)
            created = True
        except MlflowException:  # created concurrently by another worker: read below
            pass
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise TunerError(f"MLflow experiment {name!r} can be neither created nor found")
    if experiment.lifecycle_stage == "deleted":
        raise TunerError(
            f"MLflow experiment {name!r} is deleted; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
            "or choose another experiment name"
        )
    return experiment, created


def claim_experiment(client: MlflowClient, experiment: Experiment, storage_url: str) -> str:
    """The experiment's id, after recording the storage and the model-training kind.

    An experiment made by hand or by an older tuner lacks them; a kind set by the user is kept.
    """
    missing = {TAG_STORAGE: storage_url, TAG_EXPERIMENT_KIND: EXPERIMENT_KIND}
    for key, value in missing.items():
        if key not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id
