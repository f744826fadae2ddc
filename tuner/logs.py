"""What the ``tuner`` command shows of its libraries' logging and warnings.

Process-wide settings: the CLI, which owns its process, calls :func:`quiet_libraries` (so do the
worker processes it starts); library code never does, so that a notebook calling
:func:`tuner.run_study` keeps its own logging and warning filters.
"""

from __future__ import annotations

import logging


class NoInterruptTraceback(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C / SIGTERM as failed *with* the KeyboardInterrupt's
    traceback; keep its one-line warning, drop the traceback (the user pressed Ctrl-C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_libraries() -> None:
    """Optuna's per-trial lines and MLflow's and Alembic's notices off, no traceback for a trial
    stopped by Ctrl-C (:class:`NoInterruptTraceback` on Optuna's handlers); experimental and
    future warnings ignored (they concern the libraries, not the user's study)."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(NoInterruptTraceback())
