"""Retries: a trial whose run was lost is queued again with the same parameters.

Two things lose a trial's run: its worker dies (SIGKILL, lost host; another worker finds its
heartbeat stale, fails it and calls :class:`RetryStaleTrial`), or the user stops it (Ctrl-C,
SIGTERM; its own process fails it and calls :func:`queue_retry`). Either way the retry is a new
WAITING trial with the failed trial's parameters and user attributes, linked to it twice:

- the system attribute ``retry_history`` lists the trials it replaces, the last one latest
  (what Optuna's ``RetryHeartbeatStaleTrialCallback`` writes; Optuna refuses writes to a
  finished trial, so the link is kept on the retry), which the budget reads so that a failure
  and its retry count once (:func:`tuner.storage.budget.counted_trials`);
- the user attribute ``retry_of``, the failed trial's number, which a trial's objective reads
  through Optuna's public ``trial.user_attrs`` to link the two MLflow runs. The copied
  ``mlflow_run_id`` is the failed trial's run until the retry's own run replaces it.
"""

from __future__ import annotations

import optuna

#: The system attribute on a retry that lists the trials it replaces, the last one latest.
RETRY_HISTORY = "retry_history"
#: The user attribute on a retry: the number of the failed trial it replaces.
RETRY_OF = "retry_of"
#: The user attribute naming a trial's MLflow run (copied to a retry from the failed trial).
RUN_ID_ATTR = "mlflow_run_id"


def last_retried(history: list | None) -> int | None:
    """The failed trial a retry replaces: the latest number in its ``retry_history`` system
    attribute; None for a trial that is no retry (no or empty history)."""
    return int(history[-1]) if history else None


def retry_links(trials: list[optuna.trial.FrozenTrial]) -> dict[int, int]:
    """``{failed trial number: number of the trial that retries it}``."""
    links: dict[int, int] = {}
    for t in trials:
        failed = last_retried(t.system_attrs.get(RETRY_HISTORY))
        if failed is not None:
            links[failed] = t.number
    return links


def queue_retry(
    study: optuna.Study,
    failed: optuna.trial.FrozenTrial,
    *,
    drop_user_attrs: tuple[str, ...] = (),
    inherit_system_attrs: bool = False,
) -> None:
    """Queue a WAITING retry of the finished trial ``failed`` (see the module docstring):
    ``drop_user_attrs`` are not copied to it; ``inherit_system_attrs`` copies the failed
    trial's system attributes too (a sampler's bookkeeping), as Optuna's retry callback does."""
    history = list(failed.system_attrs.get(RETRY_HISTORY, [])) + [failed.number]
    system_attrs = dict(failed.system_attrs) if inherit_system_attrs else {}
    system_attrs |= {
        "failed_trial": failed.system_attrs.get("failed_trial", failed.number),
        RETRY_HISTORY: history,
    }
    user_attrs = {k: v for k, v in failed.user_attrs.items() if k not in drop_user_attrs}
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=user_attrs | {RETRY_OF: failed.number},
            system_attrs=system_attrs,
        )
    )


class RetryStaleTrial:
    """The storage's ``heartbeat_stale_trial_callback``: queue a retry of a trial whose worker
    stopped sending heartbeats, unless it was retried ``max_retry`` times already (as Optuna's
    ``RetryHeartbeatStaleTrialCallback(max_retry)`` does, plus the ``retry_of`` link)."""

    def __init__(self, max_retry: int = 1) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(trial.system_attrs.get(RETRY_HISTORY, [])) >= self.max_retry:
            return
        queue_retry(study, trial, inherit_system_attrs=True)
