"""The study's trial budget, shared by every worker: which trials count, and an exact guard.

Workers decide "is there budget left?" and then create a trial; two workers deciding at the
same moment would both create one. The guard makes the two steps one: a storage creates a new
trial only while holding a lock shared by every process (a PostgreSQL advisory lock, or a lock
file beside an SQLite or journal file), and refuses with :class:`BudgetReached` once the trials
that count, plus those running or queued, reach the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

import optuna

from tuner.storage.retries import retry_links

TrialState = optuna.trial.TrialState
T = TypeVar("T")
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class BudgetReached(Exception):
    """No new trial: the study's budget is taken by finished, running and queued trials."""


#: Trials pruned before training that are free of the budget, per trial of the budget: a study
#: creates at most this many more trials than ``n_trials``, so that one whose space holds no
#: feasible network still ends (see :func:`counted_trials`).
UNTRAINED_FREE_PER_TRIAL = 4


def counted_trials(
    trials: list[optuna.trial.FrozenTrial], n_trials: int | None = None
) -> list[optuna.trial.FrozenTrial]:
    """The trials that count against the budget: every trial that ran to an end, except these.

    - failed trials that were retried (their retry counts instead, so none is counted twice);
    - trials of a constrained study pruned before training, their untrained network over a bound
      (:mod:`tuner.search.objective`): they trained nothing and cost a measurement, so that
      ``n_trials`` counts the trials that train. The first :data:`UNTRAINED_FREE_PER_TRIAL` times
      ``n_trials`` of them are free; those beyond count, so a study whose space holds few or no
      feasible networks still ends. Without ``n_trials`` (a count shown, not a budget), all are
      free.
    """
    from tuner.search.constraints import pruned_untrained

    retried = retry_links(trials)
    ended = [
        t
        for t in trials
        if t.state in FINISHED_STATES and not (t.state == TrialState.FAIL and t.number in retried)
    ]
    untrained = [t.number for t in ended if pruned_untrained(t)]
    free = set(untrained[: free_untrained(len(untrained), n_trials)])
    return [t for t in ended if t.number not in free]


def free_untrained(n_untrained: int, n_trials: int | None) -> int:
    """How many of ``n_untrained`` trials pruned before training are free of a budget of
    ``n_trials`` (all of them without a budget; :func:`counted_trials`)."""
    if n_trials is None:
        return n_untrained
    return min(n_untrained, UNTRAINED_FREE_PER_TRIAL * n_trials)


def taken_slots(trials: list[optuna.trial.FrozenTrial], n_trials: int | None = None) -> int:
    """Counted trials plus those running or waiting to run."""
    pending = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    return len(counted_trials(trials, n_trials)) + pending


class BudgetGuard:
    """Holds a study's budget, the lock that serialises trial creation across processes, and
    ``count(study_id)``, which returns the study's :func:`taken_slots`."""

    def __init__(
        self,
        n_trials: int,
        lock: Callable[[int], AbstractContextManager[None]],
        count: Callable[[int], int],
    ) -> None:
        self.n_trials = n_trials
        self._lock = lock
        self._count = count

    def held(self, study_id: int) -> AbstractContextManager[None]:
        """The lock alone, for a block that must run in one process at a time across workers.

        A new study's warm start enqueues its trials once (:mod:`tuner.search.warm_start`). Not
        reentrant: the block must not create a trial through the guard (enqueued trials pass
        through).
        """
        return self._lock(study_id)

    def create(self, study_id: int, create: Callable[[], T]) -> T:
        """Run ``create()`` (which makes one new trial) only while budget is left."""
        with self._lock(study_id):
            if self._count(study_id) >= self.n_trials:
                raise BudgetReached(f"the study's {self.n_trials} trials are all taken")
            return create()
