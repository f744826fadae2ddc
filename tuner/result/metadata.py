"""What an exported model is and says about itself: its provenance metadata (the ``metadata`` of
its MLmodel file, also saved in ``model.npz``), the tags and parameters of its MLflow logged model
and registered versions, and the result :func:`tuner.result.export.export_study` hands back.

An export is one of four kinds (:data:`Source`): ``"final"``, the study's final model (refit and
ensemble as its ``[result]`` table says); ``"trial"``, the model a trial trained, downloaded from
its MLflow run; ``"retrained"``, that model trained again alike when its run has none;
``"refit"``, a trial's parameters trained again on training + validation rows. The logged model is
named for what it is (:func:`tuner.result.model_folder.model_name`): ``<study>-final``,
``<study>-trial-N`` or ``<study>-trial-N-refit``; its tags (:func:`export_tags`) list the members,
their seeds and whether they were refit, and ``tuner.trial`` only when the model is one trial's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tuner.result.defaults import defaults_estimator
from tuner.result.model_folder import model_name, package_versions
from tuner.search.costs import ATTR_PREFIX, measure_costs, trial_costs
from tuner.search.warm_start import TRIAL_ATTR as WARM_START_TRIAL_ATTR
from tuner.storage.retries import RUN_ID_ATTR
from tuner.tracking.keys import (
    TAG_DATA_FINGERPRINT,
    TAG_EXPORT_MEMBERS,
    TAG_EXPORT_REFIT,
    TAG_EXPORT_SEEDS,
    TAG_EXPORT_SOURCE,
    TAG_EXPORT_STUDY,
    TAG_EXPORT_TRIAL,
    members_text,
)

if TYPE_CHECKING:  # pragma: no cover
    from optuna.trial import FrozenTrial
    from sklearn.pipeline import Pipeline

    from tuner.data.loading import Splits
    from tuner.study.config import StudyConfig

#: What an export holds (see the module docstring).
Source = Literal["final", "trial", "retrained", "refit"]

EXPORT_FORMAT = "mlp-tuner-export"
EXPORT_VERSION = 1

#: Trial user attributes that are not fixed hyperparameters (nor are the costs, ``cost_*``).
NOT_PARAMETERS = (RUN_ID_ATTR, "pruned_epoch", "fail_reason", "reason", WARM_START_TRIAL_ATTR)


@dataclass
class ExportResult:
    """What an export produced."""

    path: Path
    study_name: str
    #: The exported trial; for the final model, its member of largest weight.
    trial_number: int
    source: Source
    validation_score: float  # of the trial ``trial_number``
    test_scores: dict[str, float]
    metadata: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    run_id: str | None = None
    model_id: str | None = None
    registered_name: str | None = None
    registered_version: str | None = None

    @property
    def model_uri(self) -> str | None:
        return f"models:/{self.model_id}" if self.model_id else None

    @property
    def model_name(self) -> str:
        """The name of the MLflow logged model (see the module docstring)."""
        return model_name(self.study_name, self.source, self.metadata["trial"])


@dataclass
class BuiltModel:
    """The exported model and what it is made of: ``members`` (trial number -> weight), each
    trained ``seeds`` times, for ``epochs[trial]`` epochs, refit or not."""

    pipeline: Pipeline
    fingerprint: str
    source: Source
    members: dict[int, int]
    epochs: dict[int, int]
    seeds: int = 1
    refit: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def lead(self) -> int:
        """The member of largest weight (the first of those)."""
        return max(self.members, key=lambda number: self.members[number])


def _plain(value: Any) -> Any:
    """JSON/YAML-safe plain data (numpy scalars to Python, tuples to lists)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _trial_fields(config: StudyConfig, trial: FrozenTrial, epochs: int) -> dict[str, Any]:
    """What one trial contributes to a model: its parameters, validation score, epochs and seed."""
    return {
        "hyperparameters": dict(trial.params),
        "fixed_parameters": {
            k: v
            for k, v in trial.user_attrs.items()
            if k not in NOT_PARAMETERS and not k.startswith(ATTR_PREFIX)
        },
        "validation_score": float(trial.values[0]),
        "epochs": int(epochs),
        "seed": int(config.seed + trial.number),
        "trial_costs": trial_costs(trial),
        "trial_run_id": trial.user_attrs.get(RUN_ID_ATTR),
    }


def _defaults_fields(config: StudyConfig, task: str, built: BuiltModel) -> dict[str, Any]:
    """What the estimator's defaults contribute to a final model, in a trial's fields: their
    parameters (no trial, no validation score of a trial, no MLflow run)."""
    from tuner.result.final import DEFAULTS_MEMBER

    params = defaults_estimator(task, config.seed).get_params()
    return {
        "hyperparameters": {k: v for k, v in params.items() if k != "random_state"},
        "fixed_parameters": {},
        "validation_score": None,
        "epochs": int(built.epochs[DEFAULTS_MEMBER]),
        "seed": int(config.seed),
        "trial_costs": {},
        "trial_run_id": None,
    }


def provenance(
    config: StudyConfig,
    splits: Splits,
    built: BuiltModel,
    trials: dict[int, FrozenTrial],
    test_scores: dict[str, float],
) -> dict[str, Any]:
    """The model's metadata: what it is, where it came from and how good it is.

    ``member_trials`` holds each member's parameters, validation score, epochs and seed. A model
    of one trial (its own model, its refit, or a final model of one member) also has them at the
    top level with ``trial``; a model of several trials has ``trial`` and those fields None, so
    that no one member's figures pass for the whole model's.
    """
    pipeline = built.pipeline
    est = pipeline.steps[-1][1]
    if hasattr(est, "estimators"):  # an ensemble: each member's parameters
        model_params = {
            "members": [m.get_params() for m in est.estimators],
            "weights": list(est.weights),
        }
    else:
        model_params = {k: v for k, v in est.get_params().items() if k != "random_state"}
    from tuner.result.final import DEFAULTS_MEMBER, member_name

    members = {
        n: (
            _defaults_fields(config, splits.task, built)
            if n == DEFAULTS_MEMBER
            else _trial_fields(config, trials[n], built.epochs[n])
        )
        | {"weight": int(w)}
        for n, w in built.members.items()
    }
    one = trials.get(built.lead) if len(members) == 1 else None
    single = {k: v for k, v in members[built.lead].items() if k != "weight"}
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "study": config.name,
        "name": model_name(config.name, built.source, one.number if one else None),
        "trial": one.number if one else None,
        "task": splits.task,
        "target": splits.target_name,
        "classes": list(splits.classes) if splits.classes is not None else None,
        "columns": list(splits.columns),
        **{k: (v if one else None) for k, v in single.items()},
        "model_parameters": model_params,
        "members": {member_name(k): int(v) for k, v in built.members.items()},
        "seeds": int(built.seeds),
        "member_trials": {member_name(n): fields for n, fields in members.items()},
        "objective": {"metric": config.metric, "direction": config.direction}
        | (
            {"metrics": dict(zip(config.objectives, map(float, one.values), strict=True))}
            if config.multi_objective and one
            else {}
        ),
        "test_scores": {k: float(v) for k, v in test_scores.items()},
        "source": built.source,
        "trained_on": "train+validation" if built.refit else "train",
        "data_source": config.data.source,
        "data_fingerprint": built.fingerprint,
        # What the exported model costs here (tuner.search.costs; an ensemble or a refit differs
        # from its trials, whose own costs are in member_trials / trial_costs).
        "costs": measure_costs(est, pipeline.steps[0][1].transform(splits.X_val)),
        "study_seed": int(config.seed),
        "package_versions": package_versions(),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return _plain(meta)


def export_tags(result: ExportResult) -> dict[str, str]:
    """The tags of the logged model and of a registered version: the study, what the model is
    made of, and the data it was trained on. ``tuner.trial`` only on one trial's model."""
    meta = result.metadata
    tags = {
        TAG_EXPORT_STUDY: result.study_name,
        TAG_EXPORT_SOURCE: result.source,
        TAG_EXPORT_MEMBERS: members_text(meta["members"]),
        TAG_EXPORT_SEEDS: str(meta["seeds"]),
        TAG_EXPORT_REFIT: "true" if meta["trained_on"] == "train+validation" else "false",
        TAG_DATA_FINGERPRINT: meta["data_fingerprint"],
    }
    if meta["trial"] is not None:
        tags[TAG_EXPORT_TRIAL] = str(meta["trial"])
    return tags


def logged_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The logged model's parameters: one trial's hyperparameters, or each member's prefixed
    with ``trial_<n>.``."""
    if meta["trial"] is not None:
        return meta["hyperparameters"]
    return {
        f"trial_{n}.{k}": v
        for n, fields in meta["member_trials"].items()
        for k, v in fields["hyperparameters"].items()
    }
