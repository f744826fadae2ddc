"""Process-wide settings of the ``tuner`` command: its libraries' logging and warnings, MLflow's
HTTP client settings, the garbage collector.

The CLI owns its process and calls :func:`own_process` in every command that tunes or reads a
study (so do the worker processes ``tuner run --jobs`` starts); library code never changes such
settings, so that a notebook calling :func:`tuner.runner.run_study` keeps its own logging,
warning filters, environment and collector (``tests/test_side_effects.py``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator

#: MLflow's HTTP client settings the command uses unless the user sets them (MLflow reads them
#: from the environment): a tracking server going down costs a few seconds once instead of
#: minutes per call (MLflow's defaults: 7 retries, backoff factor 2, a 120 s timeout), and
#: ``set_terminated`` does not print a "View run" link per trial.
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


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


def own_process() -> None:
    """Everything the command sets for its process: :func:`quiet_libraries` and
    :data:`MLFLOW_ENV_DEFAULTS` (where the environment has no value of its own). The command
    also asks the runner to freeze the heap for the collector (``freeze_heap``)."""
    quiet_libraries()
    for key, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def frozen_heap(enabled: bool) -> Iterator[Callable[[], None]]:
    """With ``enabled``, keep the objects that exist before a study starts (the loaded libraries)
    out of the garbage collector's full passes while it runs (``gc.freeze``), and yield a function
    that freezes what the study's set-up made too (database engines, table metadata: they live as
    long as the study); everything is handed back at the end (``gc.unfreeze``).

    MLflow, SQLAlchemy, Optuna and scikit-learn make a heap of hundreds of thousands of objects,
    and every full collection walks all of them. But freezing is process-wide, and ``gc.unfreeze``
    hands back every frozen object, also those someone else froze: only a caller that owns its
    process (the ``tuner`` command, its worker processes) enables it. Without ``enabled`` nothing
    changes and the yielded function does nothing.
    """
    if not enabled:
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()
