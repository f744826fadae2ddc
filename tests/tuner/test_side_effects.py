"""Calling the library leaves the process as it found it (issue 13): only the ``tuner`` command,
which owns its process, changes process-wide settings (tuner/process.py)."""

from __future__ import annotations

import gc
import logging
import os
import signal
import warnings

TINY = """
name = "tiny"
seed = 0
[data]
source = "sklearn:iris"
[budget]
n_trials = 2
max_epochs = 3
[result]
ensemble = 1
[space]
n_layers = 1
units = 8
"""


def process_state() -> dict:
    """What a library must not change: environment, warning filters, the garbage collector,
    the filters, handlers and levels of every logger, the signal handlers."""
    loggers = {"": logging.getLogger()} | {
        name: logger for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    return {
        "environ": dict(os.environ),
        "warning filters": list(warnings.filters),
        "warning display": (warnings.formatwarning, warnings.showwarning),
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
        "loggers": {
            name: (logger.level, list(logger.filters), [(h, list(h.filters)) for h in logger.handlers])
            for name, logger in loggers.items()
        },
        "signals": (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
    }


def test_run_study_in_process_changes_no_process_wide_setting(tmp_path):
    from tuner.runner import run_study

    study_file = tmp_path / "tiny.toml"
    study_file.write_text(TINY)
    # What the libraries set up on first use (their loggers, say) is no change of the tuner's.
    run_study(study_file, storage=f"sqlite:///{tmp_path}/warm.db", tracking_uri=f"sqlite:///{tmp_path}/warm.mlflow.db")
    before = process_state()
    result = run_study(study_file, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db")
    after = process_state()
    assert len(result.study.trials) == 2
    for key in before:
        if key == "loggers":  # loggers made during the run (first use of a module) may be new
            after[key] = {name: state for name, state in after[key].items() if name in before[key]}
        assert after[key] == before[key], key


def test_the_command_sets_them_for_its_own_process(monkeypatch):
    """What the library leaves alone, the command sets (the check above would see it)."""
    from tuner.process import MLFLOW_ENV_DEFAULTS, NoInterruptTraceback, frozen_heap, one_line_warning, own_process

    for key in MLFLOW_ENV_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    handlers = logging.getLogger("optuna").handlers
    saved = [list(h.filters) for h in handlers]
    try:
        own_process()
        assert all(os.environ[k] == v for k, v in MLFLOW_ENV_DEFAULTS.items())
        assert warnings.formatwarning is one_line_warning
        assert handlers and all(any(isinstance(f, NoInterruptTraceback) for f in h.filters) for h in handlers)
    finally:
        for handler, filters in zip(handlers, saved):
            handler.filters[:] = filters
    frozen_before = gc.get_freeze_count()
    with frozen_heap(True) as freeze_setup:
        assert gc.get_freeze_count() >= frozen_before
        freeze_setup()
    assert gc.get_freeze_count() == 0
    with frozen_heap(False) as freeze_setup:
        freeze_setup()
        assert gc.get_freeze_count() == 0
