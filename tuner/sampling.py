"""Optuna samplers and pruners built from a study's [sampler] and [pruner] tables."""

from __future__ import annotations

import copy
import importlib.util
import time
import warnings
import zlib
from collections.abc import Container
from typing import Any

import optuna

from .config import StudyConfig
from .errors import ConfigError
from .space import grid_search_space


def worker_seed(seed: int, worker: str | None, started: int = 0) -> int:
    """The sampler seed of one process in one run of a study.

    A fresh study (``started`` 0) sampled by one process keeps the study seed, so that it is
    reproducible; workers get a seed of their own per worker name, since workers seeded alike
    draw the same parameters (with ``--jobs 2`` the second worker's first trials repeated the
    first worker's). A resumed study (``started`` trials already ran) gets a seed derived from
    the study seed, the worker and ``started``: reseeding with the study seed replayed the first
    run's random start-up draws, so a resumed study repeated its first trials. ``started`` grows
    whenever a run samples a trial, so every run of a study draws trials of its own.
    """
    if started == 0:
        return seed if worker is None else zlib.crc32(f"{seed}:{worker}".encode())
    return zlib.crc32(f"{seed}:{worker or ''}:resume-{started}".encode())


def trials_started(study: optuna.Study) -> int:
    """Trials of ``study`` that have run or are running (enqueued WAITING trials do not count: no
    sampler drew them), the ``started`` of :func:`worker_seed`."""
    return len(study.get_trials(deepcopy=False, states=_STARTED))


_STARTED = (
    optuna.trial.TrialState.RUNNING,
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def make_sampler(config: StudyConfig, worker: str | None = None, started: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler (TPE by default), seeded with :func:`worker_seed`."""
    name, options, seed = config.sampler.name, config.sampler.options(), worker_seed(config.seed, worker, started)
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError(
            f"{config.path}: sampler.name: 'cmaes' needs the 'cmaes' package, which is not installed "
            "(pip install cmaes), or choose tpe, random, qmc or grid"
        )
    try:
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, **options)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "cmaes":
            return optuna.samplers.CmaEsSampler(
                seed=seed,
                independent_sampler=optuna.samplers.TPESampler(seed=seed),
                warn_independent_sampling=False,
                **options,
            )
        if name == "qmc":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False, **options)
        n_points = options.get("n_points", 3)
        return optuna.samplers.GridSampler(grid_search_space(config.space, n_points), seed=seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: sampler: {exc}") from None


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
    (the read was a third of a digits study's time on SQLite).
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
        return self.pruner.prune(_TrialsSnapshot(study, self._trials), trial)


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
                    f"min_resource ({options['min_resource']}) must be below budget.max_epochs ({max_epochs})"
                )
            return optuna.pruners.HyperbandPruner(max_resource=max_epochs, **options)
        return optuna.pruners.NopPruner()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: pruner: {exc}") from None
