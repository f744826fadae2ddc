"""Running a study end to end: the one code path behind ``tuner run`` and :func:`run_study`."""

from __future__ import annotations

import contextlib
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from tuner import interrupts
from tuner.data.loading import Splits, load_splits
from tuner.process import frozen_heap, own_process
from tuner.result.final import FinalModel, build_final_model, record_result, trial_model
from tuner.search import warm_start
from tuner.search.constraints import ranked_trials
from tuner.search.failures import one_line_failures
from tuner.search.objective import Objective
from tuner.search.pareto import best_trial
from tuner.search.pruners import make_pruner
from tuner.search.samplers import make_sampler, trials_started
from tuner.storage.budget import BudgetReached, counted_trials
from tuner.storage.recovery import recover, requeue_interrupted
from tuner.storage.storages import (
    fail_stale_trials,
    has_heartbeats,
    open_storage,
    resolve_storage_url,
)
from tuner.study import metrics
from tuner.study.config import StudyConfig, load_config
from tuner.study.definition import (
    STUDY_FILE_ATTR,
    DefinitionChanged,
    check_definition,
    study_definition,
)
from tuner.study.space import defaults_trial
from tuner.threads import limit_blas_threads, worker_threads
from tuner.tracking import StudyTracker


@dataclass
class StudyResult:
    """What a run produced: the Optuna study and, when a trial completed, its test scores."""

    study: optuna.Study
    config: StudyConfig
    #: The final model's scores (:mod:`tuner.result.final`: refit and ensemble as the study file
    #: says).
    test_scores: dict[str, float]
    tracker: StudyTracker | None
    #: The best trial's own model (trained on the training split) on the same test split.
    best_trial_scores: dict[str, float] = field(default_factory=dict)
    final: FinalModel | None = None


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
        # The estimator's defaults go first: the study can only improve on them (on validation).
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


def finished_count(study: optuna.Study, n_trials: int) -> int:
    """Trials that count against a budget of ``n_trials`` (see :func:`counted_trials`)."""
    return len(counted_trials(study.get_trials(deepcopy=False), n_trials))


def budget_counts(study: optuna.Study, n_trials: int) -> tuple[int, int]:
    """``(finished trials that count, RUNNING trials)``, after failing the stale trials of dead
    workers so that they stop holding a slot (their WAITING retries run in their place)."""
    fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    running = sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    return len(counted_trials(trials, n_trials)), running


#: Seconds between checks while a worker waits for other workers' last trials.
WAIT_POLL = 1.0


def optimize(
    study: optuna.Study,
    objective: Objective,
    config: StudyConfig,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    *,
    storage: optuna.storages.BaseStorage | None = None,
) -> None:
    """Run trials in this process until the study's total budget (or the timeout) is reached.

    When the only trials left are RUNNING in other workers and ``storage`` (the one the study
    was opened with) has heartbeats, this worker waits for them: if one of those workers died,
    its trial is failed after the grace period and re-queued, and this worker runs the retry. So
    the study ends with its budget of finished trials even when workers are killed. A failed
    trial is logged in one line (:func:`tuner.search.failures.one_line_failures`).
    """
    import time

    n_trials = config.budget.n_trials
    timeout = config.budget.timeout
    start = time.monotonic()
    waits = storage is not None and has_heartbeats(storage)
    recover(
        study,
        getattr(objective, "tracker", None),
        f"{socket.gethostname()}-{os.getpid()} starting the study",
    )
    with one_line_failures():
        while True:
            interrupts.check()
            remaining = None if timeout is None else timeout - (time.monotonic() - start)
            if remaining is not None and remaining <= 0:
                return
            finished, running = budget_counts(study, n_trials)
            if finished >= n_trials:
                return
            if finished + running >= n_trials:
                if not (running and waits):
                    return
                time.sleep(WAIT_POLL)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                try:
                    # The storage's budget guard stops this worker when other workers take the last
                    # trials (BudgetReached); n_trials bounds a storage without the guard.
                    study.optimize(
                        objective,
                        n_trials=n_trials - finished - running,
                        timeout=remaining,
                        catch=(Exception,),
                        callbacks=callbacks,
                        gc_after_trial=False,
                    )
                except BudgetReached:  # another worker took the last slot first
                    continue
                except KeyboardInterrupt:  # the trial it stopped runs again on resume, off budget
                    requeue_interrupted(study, getattr(objective, "interrupted", []))
                    raise


def run_worker(
    config: StudyConfig,
    storage_url: str,
    tracking_uri: str | None,
    parent_run_id: str | None = None,
    blas_threads: int | None = None,
    worker: str | None = None,
    started: int | None = None,
    freeze_heap: bool = False,
    notify: Callable[[str], None] | None = None,
) -> list[int]:
    """One worker: join (or create) the study and run trials until the total budget is reached;
    returns the numbers of the trials this worker ran.

    Trials nest under ``parent_run_id`` when given (``tuner run --jobs``), else under a parent run
    of this worker's own (``tuner worker``), which says that it scores no test split until a
    ``tuner run`` of the study scores the final model and copies the scores to it. ``worker``
    seeds its sampler (default: this host and process, so that workers started alike on many
    hosts still draw different trials).
    ``blas_threads``: see :mod:`tuner.threads` (default: the policy's one thread).
    ``freeze_heap``: see :func:`tuner.process.frozen_heap` (for a caller that owns its process).
    ``notify``: see :func:`create_study`.
    """
    blas_threads = worker_threads(blas_threads)
    with limit_blas_threads(blas_threads), frozen_heap(freeze_heap) as freeze_setup:
        run = open_run(
            config,
            storage_url,
            tracking_uri,
            check_tracking=parent_run_id is None,
            worker=worker or f"{socket.gethostname()}-{os.getpid()}",
            started=started,
            notify=notify,
        )
        settings = run.config.flat_settings() | {
            "storage": storage_url,
            "role": "worker",
            "blas_threads": blas_threads,
        }
        with parent_run(run, settings, parent_run_id) as summary:
            summary["role"] = "worker"  # its own run scores no test split (tuner.tracking.summary)
            freeze_setup()
            objective = Objective(run.config, run.splits, run.tracker)
            optimize(run.study, objective, run.config, storage=run.storage)
    return objective.ran


def _worker_process(
    config, storage_url, tracking_uri, parent_run_id, blas_threads, worker, started
) -> None:
    """A worker process of ``tuner run --jobs``: the command's own, so it sets what the command
    sets."""
    own_process()
    interrupts.install()
    try:
        run_worker(
            config,
            storage_url,
            tracking_uri,
            parent_run_id,
            blas_threads,
            worker,
            started,
            freeze_heap=True,
        )
    except KeyboardInterrupt:
        pass


def _run_workers(
    config: StudyConfig,
    storage_url: str,
    tracker: StudyTracker,
    study: optuna.Study,
    jobs: int,
    callbacks: list[Callable] | None,
    threads: int,
) -> None:
    """``jobs`` worker processes on this host, sharing the storage and the parent run, each with
    ``threads`` BLAS threads (see :mod:`tuner.threads`)."""
    import multiprocessing as mp
    import time

    ctx = mp.get_context("spawn")
    started = trials_started(study)  # counted once, so that the workers' seeds do not race
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(
                config,
                storage_url,
                tracker.tracking_uri,
                tracker.parent_run_id,
                threads,
                f"job-{i}",
                started,
            ),
            name=f"tuner-worker-{i}",
        )
        for i in range(jobs)
    ]
    for proc in procs:
        proc.start()
    try:
        while any(proc.is_alive() for proc in procs):
            time.sleep(0.5)
            for callback in callbacks or []:
                callback(study, None)
    except KeyboardInterrupt:
        for proc in procs:  # SIGTERM sent to this process alone: pass it on
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=30)
        raise
    finally:
        for proc in procs:
            proc.join()


def run_study(
    config: str | Path | StudyConfig,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    jobs: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    seed: int | None = None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None = None,
    threads: int | None = None,
    freeze_heap: bool = False,
    notify: Callable[[str], None] | None = None,
) -> StudyResult:
    """Create or resume a study and run it until its total budget of trials is reached.

    ``n_trials`` is the study's total (trials already in the storage count); ``jobs`` worker
    processes share the storage. The test split is scored once, for the best trial, at the end.
    ``threads``: BLAS threads per worker process (default: the policy of :mod:`tuner.threads`);
    the limit holds while the study runs and is lifted when this returns. ``freeze_heap``: see
    :func:`tuner.process.frozen_heap` (the ``tuner`` command, which owns its process, asks for it;
    otherwise the process's garbage collector is left alone). ``notify`` gets the lines a new
    study's warm start tells the user (see :func:`create_study`; default: logged).
    """
    if not isinstance(config, StudyConfig):
        config = load_config(config)
    config = config.with_overrides(n_trials=n_trials, timeout=timeout, seed=seed)
    threads = worker_threads(threads)
    with limit_blas_threads(threads), frozen_heap(freeze_heap) as freeze_setup:
        return _run_study(
            config,
            jobs,
            resolve_storage_url(storage),
            tracking_uri,
            callbacks,
            threads,
            freeze_setup,
            notify,
        )


def _run_study(
    config: StudyConfig,
    jobs: int,
    storage_url: str,
    tracking_uri: str | None,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None,
    threads: int,
    freeze_setup: Callable[[], None],
    notify: Callable[[str], None] | None = None,
) -> StudyResult:
    run = open_run(config, storage_url, tracking_uri, notify=notify)
    config, splits, study, tracker = run.config, run.splits, run.study, run.tracker
    settings = config.flat_settings() | {
        "storage": storage_url,
        "jobs": jobs,
        "blas_threads": threads,
    }
    with parent_run(run, settings) as summary:
        freeze_setup()
        objective = Objective(config, splits, tracker)
        if jobs > 1:
            _run_workers(config, storage_url, tracker, study, jobs, callbacks, threads)
        else:
            optimize(study, objective, config, callbacks, storage=run.storage)
        if not ranked_trials(study):  # no completed trial, or none meets the constraints
            return StudyResult(study, config, {}, tracker)
        best = best_trial(study)
        pipeline = (
            objective.best_pipelines.get(best.number)
            or trial_model(config, splits, tracker, best)[0]
        )
        best_scores = metrics.test_scores(splits, pipeline)
        final = build_final_model(config, splits, study, objective.completed)
        scores = metrics.test_scores(splits, final.pipeline)
        record_result(study, final, scores, best_scores, tracker.parent_run_id)
        summary.update(
            test_scores=scores or None,
            best_history=objective.histories.get(best.number),
            best_trial_test_scores=best_scores or None,
            final=final.describe(),
        )
        return StudyResult(study, config, scores, tracker, best_scores, final)


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
) -> OpenRun:
    """The set-up of every run (``tuner run``, each worker): the data, the config fitted to it,
    the storage (an unreachable database: one clear error before anything else), the tracker
    (``check_tracking``: fail on an unreachable server before the study exists, so that it
    changes nothing), and the study, created or checked against the study file."""
    splits = load_splits(config)
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
