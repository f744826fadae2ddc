"""Deployment requirements on a trial's measured costs (:mod:`tuner.search.costs`): the study
file's ``[objective] constraints`` and ``tuner export --where``.

Constraints: each completed or pruned trial (pruned before training too, when its untrained network
already breaks a bound: :mod:`tuner.search.objective`) tells Optuna ``cost - bound`` for every bound
of the study file (``trial.set_constraint(name, value)``; a trial is feasible when every value is
``<= 0``). The sampler (TPE, NSGA-II, GP) learns the feasible region from them, and
``study.best_trial`` is the best feasible trial. The study keeps its one metric and its pruner.
Every place that picks "the best trial" goes through Optuna's ``best_trial`` or
:func:`ranked_trials` (feasible trials only), so an infeasible trial is never the best trial, never
a member of the final model and never exported as the best.

``--where``: clauses such as ``"latency_ms_row <= 0.2"`` filter the completed trials on their
stored costs after the fact, with any bounds (the study's constraints need not be set).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tuner.errors import TunerError
from tuner.search.costs import COSTS, trial_costs


@dataclass(frozen=True)
class Requirement:
    """``cost op bound``, op ``<=`` or ``<``."""

    cost: str
    op: str
    bound: float

    def met(self, costs: Mapping[str, float]) -> bool:
        """Whether ``costs`` (by name) meet this requirement; a cost not measured does not."""
        value = costs.get(self.cost)
        if value is None:
            return False
        return value <= self.bound if self.op == "<=" else value < self.bound

    def __str__(self) -> str:
        return f"{self.cost} {self.op} {self.bound:g}"


_CLAUSE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|<)\s*([^\s<>=]+)\s*$")


def parse_where(clauses: Iterable[str]) -> list[Requirement]:
    """The requirements of ``--where`` clauses (``"<cost> <= <number>"`` or ``<``, one clause per
    option); TunerError naming the first bad clause and what is allowed."""
    out = []
    allowed = ", ".join(COSTS)
    for clause in clauses:
        match = _CLAUSE.match(clause)
        if match is None:
            raise TunerError(
                f"--where {clause!r}: expected '<cost> <= <number>' or '<cost> < <number>' "
                f"(costs: {allowed})"
            )
        cost, op, text = match.groups()
        if cost not in COSTS:
            raise TunerError(f"--where {clause!r}: unknown cost {cost!r} (costs: {allowed})")
        try:
            bound = float(text)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound):
            raise TunerError(f"--where {clause!r}: {text!r} is not a finite number")
        out.append(Requirement(cost, op, bound))
    return out


def constraint_values(costs: Mapping[str, float], bounds: Mapping[str, float]) -> dict[str, float]:
    """``cost - bound`` for every bound (feasible when every value is <= 0), by cost name."""
    return {name: float(costs[name]) - float(bound) for name, bound in bounds.items()}


def set_constraints(trial, costs: Mapping[str, float], bounds: Mapping[str, float]) -> bool:
    """Tell Optuna the trial's constraint values (inside the objective, before it returns: the
    sampler reads them when the trial completes); whether the trial meets every bound."""
    values = constraint_values(costs, bounds)
    for name, value in values.items():
        trial.set_constraint(name, value)
    return all(value <= 0.0 for value in values.values())


def feasible(trial) -> bool:
    """Whether a trial meets the constraints Optuna stored for it (True when it has none)."""
    return all(value <= 0.0 for value in trial.constraints.values())


def n_feasible(trials: Sequence) -> int | None:
    """How many of the completed ``trials`` are feasible; None when no trial has constraints (an
    unconstrained study)."""
    import optuna

    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not any(t.constraints for t in complete):
        return None
    return sum(feasible(t) for t in complete)


#: How the reason stored with a trial pruned before training begins (:mod:`tuner.search.objective`).
UNTRAINED_PRUNE_REASON = "pruned before training"
#: The trial user attribute (True) that marks a trial pruned before training; the budget reads it
#: (:mod:`tuner.storage.budget`, and in SQL :mod:`tuner.storage._internals`), not the reason's
#: wording.
UNTRAINED_ATTR = "pruned_before_training"


def pruned_untrained(trial) -> bool:
    """Whether a constrained study pruned ``trial`` before training (its untrained network broke
    a bound)."""
    return trial.user_attrs.get(UNTRAINED_ATTR) is True


def feasible_line(trials: Sequence) -> str | None:
    """``N of M completed trials meet the constraints (objective.constraints)``, with the trials
    pruned before training when there are any, for a constrained study; None otherwise."""
    import optuna

    feasible_count = n_feasible(trials)
    untrained = sum(pruned_untrained(t) for t in trials)
    if feasible_count is None and not untrained:
        return None
    complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    line = (
        f"{feasible_count or 0} of {complete} completed trials meet the constraints "
        "(objective.constraints)"
    )
    if untrained:
        line += f"; {untrained} more pruned before training, their untrained network over a bound"
    return line


def no_feasible_message(study_name: str, n_complete: int) -> str:
    """The one line for a constrained study whose completed trials all break a constraint."""
    return (
        f"none of the {n_complete} completed trials of study {study_name!r} meets its constraints "
        "(objective.constraints): loosen them, run more trials, or pick a trial with "
        "`tuner export --trial N` / `--where`"
    )


def ranked_trials(study, feasible_only: bool = True) -> list:
    """Completed trials, best first by the study's direction (ties: the earlier trial); with
    ``feasible_only``, only those meeting the study's constraints (:func:`feasible`). A
    multi-objective study's trials are ranked on its first objective, its metric
    (:mod:`tuner.search.pareto`)."""
    import optuna

    complete = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    if feasible_only:
        complete = [t for t in complete if feasible(t)]
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(complete, key=lambda t: (sign * float(t.values[0]), t.number))


def best_meeting(study, requirements: Sequence[Requirement]):
    """The most accurate completed trial (by the study's direction, or its first objective; ties:
    the earlier trial) whose stored costs meet every requirement; TunerError when none does."""
    ranked = ranked_trials(study, feasible_only=False)
    for trial in ranked:
        costs = trial_costs(trial)
        if all(r.met(costs) for r in requirements):
            return trial
    shown = " and ".join(str(r) for r in requirements)
    measured = sum(bool(trial_costs(t)) for t in ranked)
    raise TunerError(
        f"no completed trial of study {study.study_name!r} has {shown} "
        f"({len(ranked)} completed, {measured} with measured costs)"
    )
