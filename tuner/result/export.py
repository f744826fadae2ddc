"""``tuner export``: a study's best model as a self-contained MLflow pyfunc model, without pickle.

The folder is written by :mod:`tuner.result.model_folder` (layout and the no-pickle check there).

Where it is logged: the same folder is logged as an MLflow *logged model* whose source run is the
study's latest parent run (the run of the last ``tuner run``/worker of the study in its
experiment); a study without one gets a new run named ``export-<study>``. The logged model is
named for what it is (:func:`tuner.result.model_folder.model_name`): ``<study>-final`` for the study's
final model, ``<study>-trial-N`` for trial N's own model, ``<study>-trial-N-refit`` for its refit;
its tags (:func:`export_tags`) list the members, their seeds and whether they were refit, and
``tuner.trial`` only when the model is one trial's. With ``register`` the logged model becomes a
new version of that registered model, with the same tags, and the alias ``champion`` points at it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tuner.search.costs import ATTR_PREFIX, measure_costs, trial_costs
from tuner.errors import TunerError
from tuner.result.model_folder import (
    check_no_pickle,
    describe_export,
    model_name,
    package_versions,
    prepare_out,
    swap_in,
    write_model_folder,
)
from tuner.storage.retries import RUN_ID_ATTR
from tuner.study.files import resolve_config
from tuner.tracking.keys import (
    TAG_DATA_FINGERPRINT,
    TAG_EXPORT_MEMBERS,
    TAG_EXPORT_REFIT,
    TAG_EXPORT_SEEDS,
    TAG_EXPORT_SOURCE,
    TAG_EXPORT_STUDY,
    TAG_EXPORT_TRIAL,
    TAG_MODEL_ID,
)
from tuner.search.warm_start import TRIAL_ATTR as WARM_START_TRIAL_ATTR

CHAMPION = "champion"
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
    source: str  # "final" (the study's final model), "trial" (the model the trial trained), "retrained", "refit"
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

    pipeline: Any
    fingerprint: str
    source: str
    members: dict[int, int]
    epochs: dict[int, int]
    seeds: int = 1
    refit: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def lead(self) -> int:
        """The member of largest weight (the first of those)."""
        return max(self.members, key=self.members.get)


# --------------------------------------------------------------------------------------------
# study, trial and config


def pick_trial(study, number: int | None, where=None):
    """The trial to export: ``number``; else, with ``where`` (requirements on the trials' stored
    costs, :func:`tuner.search.constraints.parse_where`), the most accurate completed trial that meets
    them all; else the best trial (the best that meets the study's constraints). TunerError if
    there is none or it did not complete."""
    import optuna

    from tuner.search.pareto import best_trial
    from tuner.search.constraints import best_meeting, no_feasible_message

    complete = optuna.trial.TrialState.COMPLETE
    if number is not None:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if number not in trials:
            raise TunerError(
                f"study {study.study_name!r} has no trial {number} (trials 0 to {len(trials) - 1})"
            )
        trial = trials[number]
        if trial.state != complete:
            raise TunerError(f"trial {number} of study {study.study_name!r} is {trial.state.name}, not COMPLETE")
        return trial
    n_complete = sum(t.state == complete for t in study.get_trials(deepcopy=False))
    if not n_complete:
        raise TunerError(f"study {study.study_name!r} has no completed trial to export")
    if where:
        return best_meeting(study, where)
    try:
        return best_trial(study)  # a multi-objective study's primary trial (tuner/search/pareto.py)
    except ValueError:  # Optuna: no completed trial meets the constraints
        raise TunerError(no_feasible_message(study.study_name, n_complete)) from None


# --------------------------------------------------------------------------------------------
# the model


def final_model(config, splits, study, notes: list[str]):
    """The study's final model (tuner/result/final.py): the members its last ``tuner run`` chose, trained
    again the same way, or, when no run recorded them, chosen now."""
    from tuner.result.final import build_final_model, recorded_final

    recorded = recorded_final(study)
    if recorded is None:
        notes.append("no run of this study recorded its final model; chose its members now (same rule)")
        return build_final_model(config, splits, study)
    members, epochs, seeds = recorded
    return build_final_model(config, splits, study, members=members, epochs=epochs, seeds=seeds)


def _plain(value: Any) -> Any:
    """JSON/YAML-safe plain data (numpy scalars to Python, tuples to lists)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _trial_fields(config, trial, epochs: int) -> dict[str, Any]:
    """What one trial contributes to a model: its parameters, validation score, epochs and seed."""
    return {
        "hyperparameters": dict(trial.params),
        "fixed_parameters": {
            k: v for k, v in trial.user_attrs.items() if k not in NOT_PARAMETERS and not k.startswith(ATTR_PREFIX)
        },
        "validation_score": float(trial.values[0]),
        "epochs": int(epochs),
        "seed": int(config.seed + trial.number),
        "trial_costs": trial_costs(trial),
        "trial_run_id": trial.user_attrs.get(RUN_ID_ATTR),
    }


def provenance(config, splits, built: BuiltModel, trials: dict, test_scores: dict[str, float]) -> dict[str, Any]:
    """The model's metadata: what it is, where it came from and how good it is.

    ``member_trials`` holds each member's parameters, validation score, epochs and seed. A model
    of one trial (its own model, its refit, or a final model of one member) also has them at the
    top level with ``trial``; a model of several trials has ``trial`` and those fields None, so
    that no one member's figures pass for the whole model's.
    """
    pipeline = built.pipeline
    est = pipeline.steps[-1][1]
    if hasattr(est, "estimators"):  # an ensemble: each member's parameters
        model_params = {"members": [m.get_params() for m in est.estimators], "weights": list(est.weights)}
    else:
        model_params = {k: v for k, v in est.get_params().items() if k != "random_state"}
    members = {n: _trial_fields(config, trials[n], built.epochs[n]) | {"weight": int(w)} for n, w in built.members.items()}
    one = trials[built.lead] if len(members) == 1 else None
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
        "members": {str(k): int(v) for k, v in built.members.items()},
        "seeds": int(built.seeds),
        "member_trials": {str(n): fields for n, fields in members.items()},
        "objective": {"metric": config.metric, "direction": config.direction}
        | ({"metrics": dict(zip(config.objectives, map(float, one.values), strict=True))}
           if config.multi_objective and one else {}),
        "test_scores": {k: float(v) for k, v in test_scores.items()},
        "source": built.source,
        "trained_on": "train+validation" if built.refit else "train",
        "data_source": config.data.source,
        "data_fingerprint": built.fingerprint,
        # What the exported model costs here (tuner/search/costs.py; an ensemble or a refit differs from
        # its trials, whose own costs are in member_trials / trial_costs).
        "costs": measure_costs(est, pipeline.steps[0][1].transform(splits.X_val)),
        "study_seed": int(config.seed),
        "package_versions": package_versions(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return _plain(meta)


def members_text(members: dict[str, int]) -> str:
    """``{"8": 1, "10": 2}`` as ``8, 10 x2``."""
    return ", ".join(f"{k}" + (f" x{v}" if int(v) > 1 else "") for k, v in members.items())


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


def _logged_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The logged model's parameters: one trial's hyperparameters, or each member's prefixed
    with ``trial_<n>.``."""
    if meta["trial"] is not None:
        return meta["hyperparameters"]
    return {f"trial_{n}.{k}": v for n, fields in meta["member_trials"].items() for k, v in fields["hyperparameters"].items()}


# --------------------------------------------------------------------------------------------
# MLflow tracking and registry


def _export_run_id(tracker) -> str:
    from tuner.tracking import TAG_ROLE, latest_parent_run

    run = latest_parent_run(tracker.client, tracker.experiment_id, tracker.study_name)
    if run is not None:
        return run.info.run_id
    tags = tracker.base_tags() | {TAG_ROLE: "export"}
    run = tracker.client.create_run(tracker.experiment_id, tags=tags, run_name=f"export-{tracker.study_name}")
    tracker.client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


def log_exported_model(tracker, path: Path, result: ExportResult) -> None:
    """Log the folder as a logged model of the study's parent run, named and tagged for what it
    is (:func:`export_tags`; its MLmodel gets the run and model ids first, so the local folder
    and the logged copy are the same files)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from tuner.tracking.keys import param_value

    client = tracker.client
    run_id = _export_run_id(tracker)
    params = {k: param_value(v) for k, v in _logged_params(result.metadata).items()}
    logged = client.create_logged_model(
        tracker.experiment_id, name=result.model_name,
        source_run_id=run_id, tags=export_tags(result), params=params, model_type="tuned-mlp",
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        mlmodel = Model.load(str(path))
        mlmodel.run_id = run_id
        mlmodel.model_id = logged.model_id
        mlmodel.model_uuid = logged.model_id
        mlmodel.artifact_path = logged.artifact_location
        mlmodel.save(str(path / "MLmodel"))
        client.log_model_artifacts(logged.model_id, str(path))
        _log_scores(client, run_id, logged.model_id, result)
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    except Exception:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    result.run_id, result.model_id = run_id, logged.model_id


def _log_scores(client, run_id: str, model_id: str, result: ExportResult) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"export_test_{k}", float(v), now, 0, model_id=model_id) for k, v in result.test_scores.items()]
    if result.metadata["validation_score"] is not None:  # one trial's model: that trial's score
        metrics.append(Metric("export_validation_score", float(result.validation_score), now, 0, model_id=model_id))
    client.log_batch(run_id, metrics=metrics)


def register(tracker, result: ExportResult, name: str) -> None:
    """A new version of registered model ``name`` from the logged model, with its tags
    (:func:`export_tags`) and the test scores; the alias ``champion`` points at it."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = export_tags(result) | {TAG_MODEL_ID: result.model_id}  # the SQL registry does not keep model_id itself
    for key, value in result.test_scores.items():
        tags[f"test_{key}"] = repr(float(value))
    # The logged model's artifact location, not "models:/<id>": MLflow's SQL registry resolves a
    # models:/ source through the global tracking URI, not this client's.
    source = client.get_logged_model(result.model_id).artifact_location
    version = client.create_model_version(
        name, source=source, run_id=result.run_id, tags=tags, model_id=result.model_id,
    )
    client.set_registered_model_alias(name, CHAMPION, version.version)
    result.registered_name, result.registered_version = name, str(version.version)


# --------------------------------------------------------------------------------------------
# the whole export


def default_out(study_name: str) -> Path:
    return Path("exports") / study_name


def export_study(
    study,
    *,
    out: str | Path | None = None,
    refit: bool = False,
    register_as: str | None = None,
    trial_number: int | None = None,
    best: bool = False,
    where: list[str] | None = None,
    force: bool = False,
    storage: str | None = None,
    tracking_uri: str | None = None,
    log: bool = True,
    say: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a study's best (or chosen) trial; see the module docstring.

    ``study`` is a study name, a study file or a StudyConfig. By default the study's final model
    (refit and ensemble as its ``[result]`` table says, the model ``tuner run`` scored); with
    ``trial_number``, ``where`` (clauses on the trials' stored costs, see :func:`pick_trial`) or
    ``best`` (implied by ``refit``) one trial's model, refit on request.
    An existing folder holding another model is replaced only with ``force``.

    ``log=False`` writes the folder only (no MLflow run, no registry); ``register_as`` needs
    ``log``.
    """
    from tuner.study.metrics import test_scores
    from tuner.search.constraints import parse_where

    say = say or (lambda message: None)
    if register_as and not log:
        raise TunerError("registering a model needs it logged to MLflow")
    requirements = parse_where(where or [])  # a bad clause is refused before anything is opened
    if requirements and trial_number is not None:
        raise TunerError("--where chooses the trial: give --trial or --where, not both")
    config, optuna_study, splits, tracker = _open(study, storage, tracking_uri)
    single = trial_number is not None or bool(requirements) or best or refit
    trial = pick_trial(optuna_study, trial_number, requirements)
    out_path = Path(out) if out is not None else default_out(config.name)
    source_kind = ("refit" if refit else "trial") if single else "final"
    prepare_out(out_path, describe_export(config.name, source_kind, trial.number if single else None), force)

    if single:
        built = _trial_build(config, splits, tracker, trial, refit, say)
    else:
        say("training the study's final model (see [result] in the study file)")
        built = _final_build(config, splits, optuna_study)
    trials = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}
    scores = test_scores(splits, built.pipeline)
    lead = trials[built.lead]
    result = ExportResult(
        path=out_path, study_name=config.name, trial_number=lead.number, source=built.source,
        validation_score=float(lead.values[0]), test_scores=scores,
        metadata=provenance(config, splits, built, trials, scores), notes=built.notes,
    )
    _write(out_path, built.pipeline, splits, result, tracker if log else None)
    if register_as:
        register(tracker, result, register_as)
    return result


def _open(study, storage: str | None, tracking_uri: str | None):
    """(config fitted to its data, Optuna study, splits, tracker): the study, its data and its
    MLflow experiment, checked to fit together and reachable."""
    from tuner.data.loading import load_splits
    from tuner.study.definition import check_definition, study_definition
    from tuner.storage.storages import load_existing_study, open_storage, resolve_storage_url
    from tuner.tracking import StudyTracker

    url = resolve_storage_url(storage)
    config = resolve_config(study, url)
    optuna_study = load_existing_study(config.name, open_storage(url), url)
    splits = load_splits(config, check=False)
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    check_definition(optuna_study, study_definition(config, splits), config.path)  # the file still fits the study
    tracker = StudyTracker(config.name, url, tracking_uri=tracking_uri)
    tracker.check_connection()
    return config, optuna_study, splits, tracker


def _trial_build(config, splits, tracker, trial, refit: bool, say: Callable[[str], None]) -> BuiltModel:
    """One trial's model: the one it trained (or trained again alike), or its refit."""
    from tuner.search.trial_model import trial_epochs
    from tuner.result.final import refit_trial, trial_model

    notes: list[str] = []
    pipeline, source = trial_model(config, splits, tracker, trial, notes)
    epochs = trial_epochs(pipeline.steps[-1][1])
    fingerprint = splits.fingerprint
    if refit:
        say(f"refitting trial {trial.number} on training + validation rows for {epochs} epochs")
        pipeline, fingerprint = refit_trial(config, splits, trial, epochs)
        source = "refit"
    return BuiltModel(pipeline, fingerprint, source, {trial.number: 1}, {trial.number: epochs}, 1, refit, notes)


def _final_build(config, splits, optuna_study) -> BuiltModel:
    """The study's final model (see :func:`final_model`)."""
    notes: list[str] = []
    final = final_model(config, splits, optuna_study, notes)
    return BuiltModel(
        final.pipeline, final.fingerprint, "final", dict(final.members),
        {n: final.epochs[n] for n in final.members}, final.seeds, final.refit, notes,
    )


def _write(out_path: Path, pipeline, splits, result: ExportResult, tracker) -> None:
    """Write the folder beside ``out_path``, check it holds no pickle, log it (unless ``tracker``
    is None) and swap it in; nothing changes at ``out_path`` if a step fails."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_path.name}.new-", dir=out_path.parent))
    try:
        write_model_folder(staging, pipeline, splits, result.metadata)
        problems = check_no_pickle(staging)
        if problems:  # pragma: no cover - guards against a change in MLflow
            raise TunerError("the exported folder would contain pickle: " + "; ".join(problems))
        if tracker is not None:
            log_exported_model(tracker, staging, result)
        swap_in(staging, out_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
