"""Names and values as MLflow takes them: the tags the tuner writes, key and value encoding."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

from ..urls import redact_url


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
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")
MODEL_ARTIFACT_DIR = "model"


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
