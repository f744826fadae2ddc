"""What the ``tuner`` command shows of its libraries' logging and warnings.

Process-wide settings: the CLI, which owns its process, calls :func:`quiet_libraries` (so do the
worker processes it starts); library code never does, so that a notebook calling
:func:`tuner.run_study` keeps its own logging and warning filters.
"""

from __future__ import annotations


def quiet_libraries() -> None:
    """Optuna's per-trial lines and MLflow's and Alembic's notices off; experimental and future
    warnings ignored (they concern the libraries, not the user's study)."""
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
