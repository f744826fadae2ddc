"""Optuna samplers built from a study's [sampler] table, seeded per worker and per run."""

from __future__ import annotations

import importlib.util
import warnings
import zlib

import optuna

from tuner.errors import ConfigError
from tuner.study.config import StudyConfig
from tuner.study.grid import grid_search_space


def worker_seed(seed: int, worker: str | None, started: int = 0) -> int:
    """The sampler seed of one process in one run of a study.

    A fresh study (``started`` 0) sampled by one process keeps the study seed, so that it is
    reproducible; workers get a seed of their own per worker name, since workers seeded alike
    would draw the same parameters (with ``--jobs 2`` the second worker's first trials would
    repeat the first worker's). A resumed study (``started`` trials already ran) gets a seed
    derived from the study seed, the worker and ``started``: reseeded with the study seed, it
    would replay the first run's random start-up draws and repeat its first trials. ``started``
    grows whenever a run samples a trial, so every run of a study draws trials of its own.
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


def make_sampler(
    config: StudyConfig, worker: str | None = None, started: int = 0
) -> optuna.samplers.BaseSampler:
    """The configured sampler (TPE by default), seeded with :func:`worker_seed`."""
    name, options, seed = (
        config.sampler.name,
        config.sampler.options(),
        worker_seed(config.seed, worker, started),
    )
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError(
            f"{config.path}: sampler.name: 'cmaes' needs the 'cmaes' package, "
            "which is not installed (pip install cmaes), or choose tpe, random, qmc or grid"
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
                return optuna.samplers.QMCSampler(
                    seed=seed, warn_independent_sampling=False, **options
                )
        n_points = options.get("n_points", 3)
        return optuna.samplers.GridSampler(grid_search_space(config.space, n_points), seed=seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{config.path}: sampler: {exc}") from None
