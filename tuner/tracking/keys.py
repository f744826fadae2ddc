"""Names and values as MLflow takes them: the tags the tuner writes, key and value encoding."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from tuner.urls import redact_url

#: Optuna trial state -> MLflow run status of the trial's child run. A pruned trial is the tuner
#: working as intended, so its run is FINISHED, told apart by its state tag and run name; MLflow
#: shows KILLED and FAILED with the same failure mark.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}
TAG_STUDY = "optuna.study_name"
TAG_TRIAL = "optuna.trial_number"
TAG_STORAGE = "optuna.storage"
TAG_STATE = "optuna.state"
TAG_REASON = "optuna.reason"
TAG_ROLE = "tuner.role"  # "parent" | "trial"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
TAG_HOST = "tuner.host"  # a parent run's process: host and process id
TAG_PID = "tuner.pid"
#: A retry's run names the trial it replaces; that trial's run names the retry.
TAG_RETRY_OF = "tuner.retry_of"
TAG_RETRIED_BY = "tuner.retried_by"
#: What a run lacks because the artifact store refused it: ``model`` on a trial's run, e.g.
#: ``plots, trials.csv`` on a parent run. ``tuner sync`` logs it and removes the tag.
TAG_MISSING = "tuner.missing"
#: On an exported model (logged model and registered version): where it comes from.
TAG_EXPORT_STUDY = "tuner.study"
TAG_EXPORT_TRIAL = "tuner.trial"
TAG_EXPORT_SOURCE = "tuner.source"
TAG_DATA_FINGERPRINT = "tuner.data_fingerprint"
TAG_MODEL_ID = "tuner.model_id"
#: A run's description, shown on its page (MLflow's own tag).
TAG_NOTE = "mlflow.note.content"
#: MLflow 3 opens an experiment in model-training mode (not GenAI) from this experiment tag.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: On a parent run: the study's best trial and its run.
TAG_BEST_TRIAL = "best_trial_number"
TAG_BEST_RUN = "best_run_id"
#: On a parent run: the final model it scored on the test split (:mod:`tuner.result.final`), as
#: printed: its trials (``"8, 10 x2, 5"``: weights as ``xN``), whether they were refit on training
#: + validation rows (``true`` / ``false``), the copies of each (seeds), and the whole sentence.
TAG_FINAL_MEMBERS = "final_members"
TAG_FINAL_REFIT = "final_refit"
TAG_FINAL_SEEDS = "final_seeds"
TAG_FINAL_MODEL = "final_model"
#: On a ``tuner worker``'s parent run: the run that scored the study's final model on the test
#: split (its ``final/test_*`` are copied to the worker's run), and where the test scores are.
TAG_FINAL_RUN = "tuner.final_run_id"
TAG_TEST_SCORES = "tuner.test_scores"
#: Parent-run metric and param names, grouped by prefix apart from the trials' own metrics (the
#: UI's chart view makes one section per prefix before ``/``): ``study/best_value``,
#: ``study/n_complete``; ``best_trial/<metric>``, ``best_trial/test_<metric>``, params
#: ``best_trial/<param>``; ``final/test_<metric>`` (the final model on the test split).
STUDY_PREFIX = "study/"
BEST_PREFIX = "best_trial/"
FINAL_PREFIX = "final/"
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
MODEL_ARTIFACT_DIR = "model"


def storage_identity(url: str) -> str:
    """The Optuna storage as runs and experiments record it: password hidden (:mod:`tuner.urls`), a
    relative SQLite or journal file path made absolute (``sqlite:///optuna.db`` names a
    different file in each working directory), anything else as given."""
    url = redact_url(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        return "sqlite:///" + os.path.abspath(url[len("sqlite:///") :])
    if "://" not in url and url.endswith((".log", ".journal")):
        return os.path.abspath(url)
    return url


def ms(seconds: float | None) -> int:
    return int(round((time.time() if seconds is None else seconds) * 1000))


def mlflow_key(name: Any) -> str:
    """A valid MLflow param/metric/tag key (invalid characters become ``_``, max 250 chars)."""
    key = _BAD_KEY_CHARS.sub("_", str(name)).strip("/") or "_"
    key = re.sub(r"/+", "/", key).replace("/./", "/_./").replace("/../", "/__/")
    if key.startswith("."):
        key = "_" + key
    return key[:250]


def param_value(value: Any) -> str:
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


def metric_value(value: Any) -> float | None:
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


def quote(value: str) -> str | None:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def dedupe(entities: list[Any]) -> list[Any]:
    """Keep the last entity per key (MLflow rejects duplicate keys in a batch)."""
    return list({e.key: e for e in entities}.values())


#: On an exported model (logged model and registered version): what it is made of. The member
#: trials with their weights ("8, 10 x2, 5"), the copies of each member (one per seed), and
#: whether the members were trained again on training + validation rows ("true"/"false").
#: ``tuner.trial`` is set only on the model of one trial.
TAG_EXPORT_MEMBERS = "tuner.members"
TAG_EXPORT_SEEDS = "tuner.seeds"
TAG_EXPORT_REFIT = "tuner.refit"


def members_text(members: Mapping[Any, int]) -> str:
    """A final model's members, trial number -> weight (``{"8": 1, "10": 2}``), as ``8, 10 x2``:
    the value of the ``final_members`` and ``tuner.members`` tags and of the printed summary."""
    return ", ".join(f"{n}" + (f" x{w}" if int(w) > 1 else "") for n, w in members.items())
