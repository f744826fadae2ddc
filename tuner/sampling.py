"""Optuna samplers and pruners built from a study's [sampler] and [pruner] tables."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import optuna

from .config import StudyConfig
from .errors import ConfigError
from .space import grid_search_space


def make_sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded with the study seed (TPE by default)."""
    name, options, seed = config.sampler.name, config.sampler.options(), config.seed
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


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (median by default); epochs are the pruning steps."""
    name, max_epochs = config.pruner.name, config.budget.max_epochs
    options = _pruner_defaults(name, max_epochs) | config.pruner.options()
    try:
        if name == "median":
            return optuna.pruners.MedianPruner(**options)
        if name == "percentile":
            return optuna.pruners.PercentilePruner(**options)
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
