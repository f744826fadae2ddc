"""``tuner export``: a study's best model as a self-contained MLflow pyfunc model, without pickle.

The folder is written by :mod:`tuner.result.model_folder` (layout and the no-pickle check there);
what the model says about itself (its metadata, the tags and names of its MLflow copies) is
:mod:`tuner.result.metadata`.

Where it is logged: the same folder is logged as an MLflow *logged model* whose source run is the
study's latest parent run (the run of the last ``tuner run``/worker of the study in its
experiment); a study without one gets a new run named ``export-<study>``. With ``register`` the
logged model becomes a new version of that registered model, with the same tags, and the alias
``champion`` points at it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.errors import TunerError
from tuner.result.metadata import (
    BuiltModel,
    ExportResult,
    Source,
    export_tags,
    logged_params,
    provenance,
)
from tuner.result.model_folder import (
    check_no_pickle,
    describe_export,
    prepare_out,
    swap_in,
    write_model_folder,
)
from tuner.study.files import resolve_config
from tuner.tracking.keys import TAG_MODEL_ID

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from tuner.data.loading import Splits
    from tuner.result.final import FinalModel
    from tuner.search.constraints import Requirement
    from tuner.study.config import StudyConfig
    from tuner.tracking import StudyTracker

__all__ = [
    "CHAMPION",
    "ExportResult",
    "check_no_pickle",
    "export_study",
    "pick_trial",
    "register",
    "resolve_config",
    "write_model_folder",
]

CHAMPION = "champion"
# --------------------------------------------------------------------------------------------
# study, trial and config


def pick_trial(
    study: optuna.Study, number: int | None, where: Sequence[Requirement] | None = None
) -> optuna.trial.FrozenTrial:
    """The trial to export: ``number``; else, with ``where`` (requirements on the trials' stored
    costs, :func:`tuner.search.constraints.parse_where`), the most accurate completed trial that
    meets them all; else the best trial (the best that meets the study's constraints). TunerError if
    there is none or it did not complete."""
    import optuna

    from tuner.search.constraints import best_meeting, no_feasible_message
    from tuner.search.pareto import best_trial

    complete = optuna.trial.TrialState.COMPLETE
    if number is not None:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if number not in trials:
            raise TunerError(
                f"study {study.study_name!r} has no trial {number} (trials 0 to {len(trials) - 1})"
            )
        trial = trials[number]
        if trial.state != complete:
            raise TunerError(
                f"trial {number} of study {study.study_name!r} is {trial.state.name}, not COMPLETE"
            )
        return trial
    n_complete = sum(t.state == complete for t in study.get_trials(deepcopy=False))
    if not n_complete:
        raise TunerError(f"study {study.study_name!r} has no completed trial to export")
    if where:
        return best_meeting(study, where)
    try:
        return best_trial(study)  # a multi-objective study's primary trial (tuner.search.pareto)
    except ValueError:  # Optuna: no completed trial meets the constraints
        raise TunerError(no_feasible_message(study.study_name, n_complete)) from None


# --------------------------------------------------------------------------------------------
# the model


def final_model(
    config: StudyConfig, splits: Splits, study: optuna.Study, notes: list[str]
) -> FinalModel:
    """The study's final model (:mod:`tuner.result.final`): the members its last ``tuner run``
    chose, trained again the same way, or, when no run recorded them, chosen now."""
    from tuner.result.final import build_final_model, recorded_final

    recorded = recorded_final(study)
    if recorded is None:
        notes.append(
            "no run of this study recorded its final model; chose its members now (same rule)"
        )
        return build_final_model(config, splits, study)
    members, epochs, seeds = recorded
    return build_final_model(config, splits, study, members=members, epochs=epochs, seeds=seeds)


# --------------------------------------------------------------------------------------------
# MLflow tracking and registry


def _export_run_id(tracker: StudyTracker) -> str:
    from tuner.tracking import TAG_ROLE, latest_parent_run

    run = latest_parent_run(tracker.client, tracker.experiment_id, tracker.study_name)
    if run is not None:
        return run.info.run_id
    tags = tracker.base_tags() | {TAG_ROLE: "export"}
    run = tracker.client.create_run(
        tracker.experiment_id, tags=tags, run_name=f"export-{tracker.study_name}"
    )
    tracker.client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


def log_exported_model(tracker: StudyTracker, path: Path, result: ExportResult) -> None:
    """Log the folder as a logged model of the study's parent run, named and tagged for what it
    is (:func:`export_tags`; its MLmodel gets the run and model ids first, so the local folder
    and the logged copy are the same files)."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    from tuner.tracking.keys import param_value

    client = tracker.client
    run_id = _export_run_id(tracker)
    params = {k: param_value(v) for k, v in logged_params(result.metadata).items()}
    logged = client.create_logged_model(
        tracker.experiment_id,
        name=result.model_name,
        source_run_id=run_id,
        tags=export_tags(result),
        params=params,
        model_type="tuned-mlp",
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


def _log_scores(client: MlflowClient, run_id: str, model_id: str, result: ExportResult) -> None:
    """The export's test scores, and one trial's validation score, as metrics of the run, linked
    to the logged model."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(f"export_test_{k}", float(v), now, 0, model_id=model_id)
        for k, v in result.test_scores.items()
    ]
    if result.metadata["validation_score"] is not None:  # one trial's model: that trial's score
        metrics.append(
            Metric(
                "export_validation_score", float(result.validation_score), now, 0, model_id=model_id
            )
        )
    client.log_batch(run_id, metrics=metrics)


def register(tracker: StudyTracker, result: ExportResult, name: str) -> None:
    """A new version of registered model ``name`` from the logged model, with its tags
    (:func:`export_tags`) and the test scores; the alias ``champion`` points at it."""
    from mlflow.exceptions import MlflowException

    model_id = result.model_id
    if model_id is None:
        raise TunerError("registering a model needs it logged to MLflow")
    client = tracker.client
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    # The SQL registry does not keep model_id itself.
    tags = export_tags(result) | {TAG_MODEL_ID: model_id}
    for key, value in result.test_scores.items():
        tags[f"test_{key}"] = repr(float(value))
    # The logged model's artifact location, not "models:/<id>": MLflow's SQL registry resolves a
    # models:/ source through the global tracking URI, not this client's.
    source = client.get_logged_model(model_id).artifact_location
    version = client.create_model_version(
        name,
        source=source,
        run_id=result.run_id,
        tags=tags,
        model_id=model_id,
    )
    client.set_registered_model_alias(name, CHAMPION, version.version)
    result.registered_name, result.registered_version = name, str(version.version)


# --------------------------------------------------------------------------------------------
# the whole export


def default_out(study_name: str) -> Path:
    """The folder an export writes when given none: ``exports/<study>``."""
    return Path("exports") / study_name


def export_study(
    study: str | Path | StudyConfig,
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
    from tuner.search.constraints import parse_where
    from tuner.study.metrics import test_scores

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
    prepare_out(
        out_path, describe_export(config.name, source_kind, trial.number if single else None), force
    )

    if single:
        built = _trial_build(config, splits, tracker, trial, refit, say)
    else:
        say("training the study's final model (see [result] in the study file)")
        built = _final_build(config, splits, optuna_study)
    trials = {t.number: t for t in optuna_study.get_trials(deepcopy=False)}
    scores = test_scores(splits, built.pipeline)
    lead = trials.get(built.lead)  # None for the estimator's defaults (no trial)
    result = ExportResult(
        path=out_path,
        study_name=config.name,
        trial_number=built.lead,
        source=built.source,
        validation_score=float(lead.values[0]) if lead is not None else float("nan"),
        test_scores=scores,
        metadata=provenance(config, splits, built, trials, scores),
        notes=built.notes,
    )
    _write(out_path, built.pipeline, splits, result, tracker if log else None)
    if register_as:
        register(tracker, result, register_as)
    return result


def _open(
    study: str | Path | StudyConfig, storage: str | None, tracking_uri: str | None
) -> tuple[StudyConfig, optuna.Study, Splits, StudyTracker]:
    """(config fitted to its data, Optuna study, splits, tracker): the study, its data and its
    MLflow experiment, checked to fit together and reachable."""
    from tuner.data.loading import load_splits
    from tuner.storage.storages import load_existing_study, open_storage, resolve_storage_url
    from tuner.study.definition import check_definition, study_definition
    from tuner.tracking import StudyTracker

    url = resolve_storage_url(storage)
    config = resolve_config(study, url)
    optuna_study = load_existing_study(config.name, open_storage(url), url)
    splits = load_splits(config, check=False)
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    # The study file still fits the study.
    check_definition(optuna_study, study_definition(config, splits), config.path)
    tracker = StudyTracker(config.name, url, tracking_uri=tracking_uri)
    tracker.check_connection()
    return config, optuna_study, splits, tracker


def _trial_build(
    config: StudyConfig,
    splits: Splits,
    tracker: StudyTracker,
    trial: optuna.trial.FrozenTrial,
    refit: bool,
    say: Callable[[str], None],
) -> BuiltModel:
    """One trial's model: the one it trained (or trained again alike), or its refit."""
    from tuner.result.final import refit_trial, trial_model
    from tuner.search.trial_model import trial_epochs

    notes: list[str] = []
    source: Source
    pipeline, source = trial_model(config, splits, tracker, trial, notes)
    epochs = trial_epochs(pipeline.steps[-1][1])
    fingerprint = splits.fingerprint
    if refit:
        say(f"refitting trial {trial.number} on training + validation rows for {epochs} epochs")
        pipeline, fingerprint = refit_trial(config, splits, trial, epochs)
        source = "refit"
    return BuiltModel(
        pipeline, fingerprint, source, {trial.number: 1}, {trial.number: epochs}, 1, refit, notes
    )


def _final_build(config: StudyConfig, splits: Splits, optuna_study: optuna.Study) -> BuiltModel:
    """The study's final model (see :func:`final_model`)."""
    notes: list[str] = []
    final = final_model(config, splits, optuna_study, notes)
    return BuiltModel(
        final.pipeline,
        final.fingerprint,
        "final",
        dict(final.members),
        {n: final.epochs[n] for n in final.members},
        final.seeds,
        final.refit,
        notes,
    )


def _write(
    out_path: Path,
    pipeline: Pipeline,
    splits: Splits,
    result: ExportResult,
    tracker: StudyTracker | None,
) -> None:
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
