"""Optuna pruners built from a study's [pruner] table; epochs are the pruning steps.

The median and percentile pruners run inside a :class:`SnapshotPruner`, which reads the study's
trials once per trial instead of at every epoch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Container
from typing import Any, cast

import optuna

from tuner.errors import ConfigError
from tuner.study.config import StudyConfig


def _pruner_defaults(name: str, max_epochs: int) -> dict[str, Any]:
    warmup = {"n_startup_trials": 5, "n_warmup_steps": max(1, max_epochs // 10)}
    if name == "median":
        return warmup
    if name == "percentile":
        return warmup | {"percentile": 25.0}
    if name == "successive_halving":
        return {"min_resource": max(1, max_epochs // 27), "reduction_factor": 3}
    if name == "hyperband":
        return {"min_resource": max(1, max_epochs // 27), "reduction_factor": 3}
    return {}


class _TrialsSnapshot:
    """A study whose ``get_trials`` answers from a list read once, for the pruner's call."""

    def __init__(self, study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[optuna.trial.TrialState] | None = None
    ) -> list[optuna.trial.FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class SnapshotPruner(optuna.pruners.BasePruner):
    """Delegates to a median or percentile pruner, reading the study's trials once per trial
    (and again after ``max_age`` seconds) instead of at every epoch.

    These pruners compare a trial with *completed* trials only, and while a trial trains only
    other workers can complete one: a snapshot at most ``max_age`` old gives the same decisions
    as a fresh read in one process, and nearly the same with several, for a fraction of the cost
    (reading every trial at every epoch is a large part of a short study's time on SQLite).
    """

    def __init__(self, pruner: optuna.pruners.BasePruner, max_age: float = 5.0) -> None:
        self.pruner = pruner
        self.max_age = max_age
        self._key: tuple[int, float] | None = None
        self._trials: list[optuna.trial.FrozenTrial] = []

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        now = time.monotonic()
        if self._key is None or self._key[0] != trial.number or now - self._key[1] > self.max_age:
            self._trials = study.get_trials(deepcopy=False)
            self._key = (trial.number, now)
        # The snapshot stands in for the study: the wrapped pruners read its trials, direction
        # and attributes, which it answers as the study does.
        snapshot = cast(optuna.Study, _TrialsSnapshot(study, self._trials))
        return self.pruner.prune(snapshot, trial)


def unwrap_pruner(pruner: optuna.pruners.BasePruner) -> optuna.pruners.BasePruner:
    """The Optuna pruner that decides (inside a :class:`SnapshotPruner`, or ``pruner`` itself)."""
    return pruner.pruner if isinstance(pruner, SnapshotPruner) else pruner


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (median by default); epochs are the pruning steps."""
    name, max_epochs = config.pruner.name, config.budget.max_epochs
    options = _pruner_defaults(name, max_epochs) | config.pruner.options()
    try:
        if name == "median":
            return SnapshotPruner(optuna.pruners.MedianPruner(**options))
        if name == "percentile":
            return SnapshotPruner(optuna.pruners.PercentilePruner(**options))
        if name == "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(**options)
        if name == "hyperband":
            if options["min_resource"] >= max_epochs:
                raise ValueError(
                    f"min_resource ({options['min_resource']}) must be below "
                    f"budget.max_epochs ({max_epochs})"
                )
            return optuna.pruners.HyperbandPruner(max_resource=max_epochs, **options)
        return optuna.pruners.NopPruner()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: pruner: {exc}") from None
