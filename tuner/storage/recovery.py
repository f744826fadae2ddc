"""What stopped processes leave behind, put right at every start of a study and by ``tuner sync``.

- A trial stopped by Ctrl-C / SIGTERM is failed by Optuna; its own process then queues it again
  with the same parameters (:func:`requeue_interrupted`), as a heartbeat retry is queued for a
  killed worker's trial, so an interrupted trial is re-run on resume and, being retried, does
  not use the budget (:func:`tuner.storage.budget.counted_trials`).
- A killed worker (SIGKILL, lost host) leaves its trial RUNNING until its heartbeat is stale;
  then the trial is failed and retried (see :func:`tuner.storage.storages.open_storage`), and
  :func:`close_dead_runs` closes the MLflow runs that worker left RUNNING: the trial's run as
  FAILED and the process's parent run as KILLED, each tagged :data:`TAG_CLOSED` with the reason.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from typing import TYPE_CHECKING

import optuna

from tuner.storage.retries import RUN_ID_ATTR, queue_retry, retry_links
from tuner.storage.storages import fail_stale_trials, heartbeat_settings

if TYPE_CHECKING:  # pragma: no cover
    from tuner.tracking import StudyTracker

logger = logging.getLogger(__name__)

State = optuna.trial.TrialState

#: User attribute of a trial stopped by Ctrl-C / SIGTERM (not copied to its retry).
INTERRUPTED = "interrupted"
#: Tag on an MLflow run that another process closed because its own process died: why.
TAG_CLOSED = "tuner.closed_because"


def requeue_interrupted(study: optuna.Study, numbers: list[int]) -> list[int]:
    """Queue again, with the same parameters, the trials ``numbers`` that this process's
    interrupt failed (each with the ``retry_history`` of a heartbeat retry, so that the failed
    trial does not count against the budget); returns the numbers queued. Only the process
    that ran a trial queues it, so two interrupted workers never queue one trial twice."""
    if not numbers:
        return []
    trials = study.get_trials(deepcopy=False)
    retried = retry_links(trials)
    queued = []
    for number in numbers:
        trial = trials[number] if number < len(trials) and trials[number].number == number else None
        if trial is None or trial.state != State.FAIL or number in retried:
            continue
        queue_retry(study, trial, drop_user_attrs=(INTERRUPTED,))
        queued.append(number)
    return queued


def dead_worker_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Failed trials whose process never recorded their end: failed by another worker when
    their heartbeat went stale. (A trial's own process stores its summary, the ``history``
    user attribute, before Optuna changes its state; an interrupted one is marked instead.)"""
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(State.FAIL,))
        if "history" not in t.user_attrs and not t.user_attrs.get(INTERRUPTED)
    ]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def close_dead_runs(study: optuna.Study, tracker: StudyTracker, closer: str) -> list[str]:
    """Close the MLflow runs that dead processes left RUNNING in the study's experiment.

    Returns their ids. ``closer`` says who closes them (for the tag), e.g. ``"tuner sync"``.
    A trial run is closed FAILED when its trial is one of :func:`dead_worker_trials`. A parent
    run is closed KILLED when its process is gone: on this host, when its process id is not
    alive; on another host, when it ran trials in its own process (``tuner worker``, or
    ``tuner run`` without ``--jobs``) and one of them is a dead worker's trial. The current
    process's own runs are never closed.
    """
    closed, dead_parents = _close_dead_trial_runs(study, tracker, closer)
    return closed + _close_dead_parent_runs(study, tracker, closer, dead_parents)


def _close_dead_trial_runs(
    study: optuna.Study, tracker: StudyTracker, closer: str
) -> tuple[list[str], set[str]]:
    """Close the RUNNING runs of :func:`dead_worker_trials` FAILED.

    Returns the runs closed and the parent runs of every dead worker's trial run.
    """
    from tuner.tracking import TAG_PARENT, TAG_REASON, TAG_STATE

    client, closed = tracker.client, []
    grace = heartbeat_settings()[1]
    dead_parents: set[str] = set()
    for trial in dead_worker_trials(study):
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if not run_id:
            continue
        run = client.get_run(run_id)
        if run.data.tags.get(TAG_PARENT):
            dead_parents.add(run.data.tags[TAG_PARENT])
        if run.info.status != "RUNNING":
            continue
        why = (
            f"its worker stopped sending heartbeats (for over {grace} s): killed or lost; "
            f"closed by {closer}"
        )
        for key, value in (
            (TAG_STATE, "FAIL"),
            (TAG_REASON, "worker lost (no heartbeat)"),
            (TAG_CLOSED, why),
        ):
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, status="FAILED")
        closed.append(run_id)
    return closed, dead_parents


def _close_dead_parent_runs(
    study: optuna.Study, tracker: StudyTracker, closer: str, dead_parents: set[str]
) -> list[str]:
    """Close KILLED the study's RUNNING parent runs whose process is gone; returns their ids."""
    from tuner.tracking import TAG_HOST, TAG_PID, TAG_ROLE, TAG_STUDY

    client, closed = tracker.client, []
    host = socket.gethostname()
    quoted = study.study_name.replace("'", "\\'")
    parents = client.search_runs(
        [tracker.experiment_id],
        filter_string=(
            f"tags.`{TAG_ROLE}` = 'parent' AND tags.`{TAG_STUDY}` = '{quoted}' "
            "AND attributes.status = 'RUNNING'"
        ),
        max_results=1000,
    )
    for run in parents:
        tags, params = run.data.tags, run.data.params
        if run.info.run_id == tracker.parent_run_id:
            continue
        try:
            pid = int(tags.get(TAG_PID, ""))
        except ValueError:
            continue
        if tags.get(TAG_HOST) == host:
            if pid == os.getpid() or _pid_alive(pid):
                continue
            if _finished_from_study(study, tracker, run.info.run_id, closer):
                closed.append(run.info.run_id)
                continue
            why = (
                f"its process {pid} on {host} ended without closing it (killed?); "
                f"closed by {closer}"
            )
        else:
            own_trials = params.get("role") == "worker" or params.get("jobs", "1") == "1"
            if not (own_trials and run.info.run_id in dead_parents):
                continue
            why = (
                f"its process {pid} on {tags.get(TAG_HOST)} lost a trial's heartbeat "
                f"(killed or lost); closed by {closer}"
            )
        client.set_tag(run.info.run_id, TAG_CLOSED, why)
        client.set_terminated(run.info.run_id, status="KILLED")
        closed.append(run.info.run_id)
    return closed


def _finished_from_study(
    study: optuna.Study, tracker: StudyTracker, run_id: str, closer: str
) -> bool:
    """Whether ``run_id`` is the run that scored the study's final model (its process ended while
    the tracking store was unreachable, after printing the scores); if so it is finished with its
    summary from what the study stored when that run scored it, not closed KILLED."""
    from tuner.study.definition import (
        BEST_TEST_SCORES_ATTR,
        FINAL_ATTR,
        SCORED_BY_ATTR,
        TEST_SCORES_ATTR,
    )
    from tuner.tracking.summary import finish_parent

    attrs = study.user_attrs
    if attrs.get(SCORED_BY_ATTR) != run_id:
        return False
    why = f"its process ended while MLflow was unreachable; its summary logged by {closer}"
    tracker.client.set_tag(run_id, TAG_CLOSED, why)
    finish_parent(
        tracker,
        study,
        test_scores=attrs.get(TEST_SCORES_ATTR) or None,
        best_trial_test_scores=attrs.get(BEST_TEST_SCORES_ATTR) or None,
        final=attrs.get(FINAL_ATTR),
        run_id=run_id,
    )
    return True


def recover(study: optuna.Study, tracker: StudyTracker | None, closer: str) -> list[str]:
    """Fail the trials of dead workers (stale heartbeats; they are retried) and close the runs
    dead processes left RUNNING; returns the runs closed. Tracking errors warn and never stop
    a study."""
    fail_stale_trials(study)
    if tracker is None:
        return []
    try:
        return close_dead_runs(study, tracker, closer)
    except Exception as exc:  # tracking never stops tuning; `tuner sync` retries
        from tuner.tracking import TrackingWarning

        warnings.warn(
            f"could not close the MLflow runs of dead processes: {exc}",
            TrackingWarning,
            stacklevel=2,
        )
        return []
