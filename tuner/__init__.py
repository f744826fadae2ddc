"""Hyperparameter tuning of the NumPy MLP with Optuna, tracked in MLflow.

The public API, what the ``tuner`` command does, from Python::

    import tuner

    config = tuner.load_config("studies/digits.toml")
    result = tuner.run_study(config, n_trials=20)   # a StudyResult
    result.test_scores                              # the final model's held-out scores
    tuner.export_study("digits", out="exports/digits")

Errors a user can cause (a bad study file, unreadable data, a storage that cannot be opened) are
:class:`TunerError` with a one-line message. The packages hold the rest: ``tuner.study`` (study
files, the search space, metrics), ``tuner.data``, ``tuner.search`` (objective, samplers,
pruners), ``tuner.storage``, ``tuner.tracking`` (MLflow), ``tuner.result`` (final model, export,
serving) and ``tuner.cli``.

Names are imported on first use, so that ``import tuner`` (and ``tuner --help``) stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ConfigError",
    "DataError",
    "ExportResult",
    "StudyConfig",
    "StudyResult",
    "TunerError",
    "export_study",
    "load_config",
    "run_study",
]

#: Where each public name is defined.
_HOMES = {
    "ConfigError": "tuner.errors",
    "DataError": "tuner.errors",
    "TunerError": "tuner.errors",
    "StudyConfig": "tuner.study.config",
    "load_config": "tuner.study.config",
    "StudyResult": "tuner.runner",
    "run_study": "tuner.runner",
    "ExportResult": "tuner.result.metadata",
    "export_study": "tuner.result.export",
}

if TYPE_CHECKING:  # pragma: no cover
    from tuner.errors import ConfigError, DataError, TunerError
    from tuner.result.export import export_study
    from tuner.result.metadata import ExportResult
    from tuner.runner import StudyResult, run_study
    from tuner.study.config import StudyConfig, load_config


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'tuner' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
