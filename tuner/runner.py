"""Running a study end to end: the one code path behind ``tuner run`` and :func:`run_study`."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from tuner import interrupts
from tuner.data.sharing import SharedSplits, shared_splits
from tuner.process import frozen_heap, own_process
from tuner.result.final import FinalModel, build_final_model, record_result, trial_model
from tuner.run_setup import OpenRun, open_run, parent_run
from tuner.run_setup import create_study as create_study
from tuner.search.constraints import ranked_trials
from tuner.search.failures import one_line_failures
from tuner.search.objective import Objective
from tuner.search.pareto import best_trial
from tuner.search.resampling import uses_raw_rows
from tuner.search.samplers import trials_started
from tuner.storage.budget import BudgetReached, counted_trials
from tuner.storage.recovery import dead_worker_trials, recover, requeue_interrupted
from tuner.storage.storages import fail_stale_trials, has_heartbeats, resolve_storage_url
from tuner.study import metrics
from tuner.study.config import StudyConfig, load_config
from tuner.threads import limit_blas_threads, worker_threads
from tuner.tracking import StudyTracker

logger = logging.getLogger(__name__)


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


def _lost_trial(study: optuna.Study, objective: Objective, handled: set[int]) -> int | None:
    """The number of this process's last trial when another worker failed it first, else None.

    A worker whose heartbeats arrive late (a host too busy to send them within the grace period)
    looks dead to the others, and one of them fails its trial and queues the retry. When this
    process then tells the trial's result, Optuna raises (``Cannot tell a FAIL trial``, or
    ``UpdateFinishedTrialError`` in a race). Such a trial is FAIL without the summary this process
    stores before telling (the storage refused it): one of :func:`dead_worker_trials`. Each
    trial is forgiven once, so an error that repeats is not hidden.
    """
    ran = getattr(objective, "ran", None)
    if not ran or ran[-1] in handled:
        return None
    number = ran[-1]
    return number if any(t.number == number for t in dead_worker_trials(study)) else None


def _close_lost_run(objective: Objective, number: int) -> None:
    """The MLflow run of :func:`_lost_trial` ``number``, if it has one, closed FAILED."""
    tracker = getattr(objective, "tracker", None)
    run_id = getattr(objective, "run_ids", {}).get(number)
    if tracker is not None and run_id:
        tracker.close_lost_run(run_id)


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
    lost: set[int] = set()
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
                except Exception:
                    number = _lost_trial(study, objective, lost)
                    if number is None:
                        raise
                    lost.add(number)
                    _close_lost_run(objective, number)
                    logger.warning(
                        "trial %d was failed by another worker, which found its heartbeat late "
                        "(a busy host?): its retry runs it again",
                        number,
                    )
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
    shared: SharedSplits | None = None,
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
    ``notify``: see :func:`create_study`. ``shared``: the data prepared by the ``tuner run
    --jobs`` that started this worker (:mod:`tuner.data.sharing`; default: read and prepared here).
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
            shared=shared,
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
    config, storage_url, tracking_uri, parent_run_id, blas_threads, worker, started, shared
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
            shared=shared,
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
    shared: SharedSplits,
) -> None:
    """``jobs`` worker processes on this host, sharing the storage, the parent run and the
    prepared data (``shared``), each with ``threads`` BLAS threads (see :mod:`tuner.threads`)."""
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
                shared,
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
    with contextlib.ExitStack() as scratch:
        shared = None
        if jobs > 1:  # the workers map this process's prepared matrix, which it maps too
            sharing = shared_splits(run.splits, raw_rows=uses_raw_rows(run.config))
            run.splits, shared = scratch.enter_context(sharing)
        return _tune(run, jobs, storage_url, callbacks, threads, freeze_setup, shared)


def _tune(
    run: OpenRun,
    jobs: int,
    storage_url: str,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] | None,
    threads: int,
    freeze_setup: Callable[[], None],
    shared: SharedSplits | None,
) -> StudyResult:
    """The trials of an opened run (here, or in ``jobs`` worker processes given ``shared``), then
    its final model, scored once on the test split."""
    config, splits, study, tracker = run.config, run.splits, run.study, run.tracker
    settings = config.flat_settings() | {
        "storage": storage_url,
        "jobs": jobs,
        "blas_threads": threads,
    }
    with parent_run(run, settings) as summary:
        freeze_setup()
        objective = Objective(config, splits, tracker)
        if shared is not None:
            _run_workers(config, storage_url, tracker, study, jobs, callbacks, threads, shared)
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
