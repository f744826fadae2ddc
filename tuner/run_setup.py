"""What every run sets up before its trials (``tuner run``, each of its ``--jobs`` workers,
``tuner worker``): the study, created or resumed, its data, storage and tracker, and the MLflow
parent run around the trials."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import optuna

from tuner.data.loading import Splits, load_splits
from tuner.data.sharing import SharedSplits
from tuner.search import warm_start
from tuner.search.pruners import make_pruner
from tuner.search.samplers import make_sampler, trials_started
from tuner.storage.storages import open_storage
from tuner.study.config import StudyConfig
from tuner.study.definition import (
    STUDY_FILE_ATTR,
    DefinitionChanged,
    check_definition,
    study_definition,
)
from tuner.study.space import defaults_trial
from tuner.tracking import StudyTracker


def create_study(
    config: StudyConfig,
    storage: str | optuna.storages.BaseStorage,
    worker: str | None = None,
    started: int | None = None,
    definition: dict[str, Any] | None = None,
    *,
    storage_url: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> optuna.Study:
    """Create the study named in ``config`` or load it to continue (same name, same storage: a URL,
    or a storage from :func:`open_storage`); ``worker`` names this process among several sampling
    the study, and ``started`` (default: counted now) is how many trials had run when this run of
    the study began: both seed the sampler (see :func:`tuner.search.samplers.worker_seed`), so that
    a resumed study draws new trials. ``definition``
    (:func:`tuner.study.definition.study_definition`) is stored on a new study and checked against
    an existing one: a study file changed in what defines the study is refused, not mixed in. A new
    study with a ``[warm_start]`` table starts from earlier studies' best trials
    (:mod:`tuner.search.warm_start`: the sources are read before the study is created;
    ``storage_url`` names its storage, ``notify`` gets one line per source)."""
    if isinstance(storage, str):
        storage_url, storage = storage, open_storage(storage)
    sources = warm_start.read_sources(config, storage, storage_url)
    if hasattr(storage, "set_budget"):
        storage.set_budget(config.budget.n_trials, constrained=bool(config.objective.constraints))
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        sampler=make_sampler(config, worker),
        pruner=make_pruner(config),
        directions=[optuna.study.StudyDirection[d.upper()] for d in config.directions],
        load_if_exists=True,
    )
    if definition is not None:
        try:
            check_definition(study, definition, config.path)
        except DefinitionChanged as exc:
            if not exc.replaceable:
                raise
            _replace_failed_study(study, storage, exc.shown, notify)
            return create_study(
                config, storage, worker, started, definition, storage_url=storage_url, notify=notify
            )
        if STUDY_FILE_ATTR not in study.user_attrs:
            study.set_user_attr(STUDY_FILE_ATTR, config.file_settings())
    started = trials_started(study) if started is None else started
    if started:
        study.sampler = make_sampler(config, worker, started)
    if study.user_attrs.get("metric") != config.metric:
        study.set_user_attr("metric", config.metric)
    queued = []
    if (
        config.result.start_from_defaults
        and config.sampler.name != "grid"
        and not study.get_trials(deepcopy=False)
    ):
        # The small baseline network goes first (tuner.study.space.DEFAULTS_TRIAL).
        queued.append(defaults_trial(config.space))
        study.enqueue_trial(queued[0], skip_if_exists=True)
    warm_start.enqueue_once(study, storage, config, sources, queued, notify)
    return study


def _replace_failed_study(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    shown: str,
    notify: Callable[[str], None] | None,
) -> None:
    """Delete a study whose every trial failed, so that the corrected study file (its data, say)
    starts it again instead of being refused for differing from it."""
    n = len(study.get_trials(deepcopy=False))
    optuna.delete_study(study_name=study.study_name, storage=storage)
    line = (
        f"study {study.study_name!r} started again: its {n} trial(s) all failed, "
        f"and its settings changed ({shown})"
    )
    if notify is not None:
        notify(line)
    else:
        warnings.warn(line, UserWarning, stacklevel=3)


@dataclass
class OpenRun:
    """A study opened for a run in this process, with what runs it: its data, storage, tracker."""

    config: StudyConfig
    splits: Splits
    storage: optuna.storages.BaseStorage
    tracker: StudyTracker
    study: optuna.Study


def open_run(
    config: StudyConfig,
    storage_url: str,
    tracking_uri: str | None,
    *,
    check_tracking: bool = True,
    worker: str | None = None,
    started: int | None = None,
    notify: Callable[[str], None] | None = None,
    shared: SharedSplits | None = None,
) -> OpenRun:
    """The set-up of every run (``tuner run``, each worker): the data, the config fitted to it,
    the storage (an unreachable database: one clear error before anything else), the tracker
    (``check_tracking``: fail on an unreachable server before the study exists, so that it
    changes nothing), and the study, created or checked against the study file. The data is
    read and prepared here, or, in a worker of ``tuner run --jobs``, opened from what the
    command's process prepared (``shared``, :mod:`tuner.data.sharing`)."""
    splits = load_splits(config) if shared is None else shared.open()
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    storage = open_storage(storage_url)
    tracker = StudyTracker(config.name, storage_url, tracking_uri=tracking_uri)
    if check_tracking:
        tracker.check_connection()
    study = create_study(
        config,
        storage,
        worker,
        started,
        definition=study_definition(config, splits),
        storage_url=storage_url,
        notify=notify,
    )
    return OpenRun(config, splits, storage, tracker, study)


@contextlib.contextmanager
def parent_run(
    run: OpenRun, settings: dict[str, Any], parent_run_id: str | None = None
) -> Iterator[dict[str, Any]]:
    """The MLflow parent run around a run's trials: a new one logging ``settings``, or, with
    ``parent_run_id``, the run of the ``tuner run --jobs`` that started this worker. A new one is
    finished with the study's summary (the keyword arguments of ``finish_parent`` the block puts
    in the yielded dict) and its status: FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED."""
    if parent_run_id is None:
        run.tracker.start_parent(settings, tags=warm_start.parent_tags(run.study))
    else:
        run.tracker.parent_run_id = parent_run_id
    summary: dict[str, Any] = {}
    status = "FAILED"
    try:
        yield summary
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if parent_run_id is None:
            run.tracker.finish_parent(run.study, status=status, **summary)
        else:
            run.tracker.flush()
