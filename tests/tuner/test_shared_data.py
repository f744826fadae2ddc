"""A study prepares its data once: its preprocessing is fitted once, and every trial trains and is
scored on the study's own float32 arrays (slices of one array), not on copies."""

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from model import MLPClassifier
from model.preprocessing import TabularPreprocessor
from tuner.data.loading import load_splits
from tuner.runner import run_study

STUDY = """
name = "shared"
seed = 0
[data]
source = "sklearn:wine"
[budget]
n_trials = 3
max_epochs = 2
[pruner]
name = "none"
[objective]
validation_splits = 1
[space]
n_layers = 1
units = {low = 4, high = 16}
batch_size = 16
[result]
ensemble = 1
refit = false
seeds = 1
defaults_candidate = false
"""


def _spies(fits: list, trained: list, record):
    """Stand-ins for ``TabularPreprocessor.fit`` and ``MLPClassifier.fit`` that run the originals
    and append the rows of each preprocessing fit to ``fits`` and ``record(X, X_val)`` of each
    estimator fit to ``trained``."""
    preprocessor_fit, estimator_fit = TabularPreprocessor.fit, MLPClassifier.fit

    def counted_fit(self, X, y=None):
        fits.append(len(X))
        return preprocessor_fit(self, X, y)

    def recorded_fit(self, X, y, X_val=None, y_val=None, callbacks=None):
        trained.append(record(X, X_val))
        return estimator_fit(self, X, y, X_val=X_val, y_val=y_val, callbacks=callbacks)

    return counted_fit, recorded_fit


def test_trials_share_one_prepared_copy_of_the_data(tmp_path, monkeypatch):
    fits, received = [], []
    counted_fit, recorded_fit = _spies(fits, received, lambda X, X_val: (X, X_val))
    monkeypatch.setattr(TabularPreprocessor, "fit", counted_fit)
    monkeypatch.setattr(MLPClassifier, "fit", recorded_fit)
    path = tmp_path / "shared.toml"
    path.write_text(STUDY)
    result = run_study(path, storage=f"sqlite:///{tmp_path}/optuna.db", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert len(result.study.trials) == 3
    assert fits == [106]  # once per study, on the training rows (60% of wine's 178)
    assert len(received) == 3  # one fit per trial, and the final model is the best trial's own
    X_train, X_val = received[0]
    assert all(X is X_train and V is X_val for X, V in received)  # the same arrays, every trial
    # float32 (what the network trains on, so the estimator does not convert it) and consecutive
    # slices of one array: the prepared data exists once.
    assert X_train.dtype == X_val.dtype == np.float32 and X_train.base is not None
    assert X_train.base is X_val.base and np.shares_memory(X_train.base, X_val)


def _digest(X) -> str:
    return hashlib.sha256(np.ascontiguousarray(X).tobytes()).hexdigest()


def _spying_worker(log_dir, *args):
    """A `tuner run --jobs` worker process (runs in the spawned process) that records the
    preprocessing fits made there and what each trial's fit receives, then runs as usual."""
    from tuner import runner

    record = {"fits": [], "trained": []}
    TabularPreprocessor.fit, MLPClassifier.fit = _spies(record["fits"], record["trained"], _received)
    try:
        runner._worker_process(*args)
    finally:
        (Path(log_dir) / f"{os.getpid()}.json").write_text(json.dumps(record))


def _received(X, X_val) -> dict:
    return {
        "maps": [isinstance(A, np.memmap) and str(A.filename) for A in (X, X_val)],
        "writeable": [A.flags.writeable for A in (X, X_val)],
        "digests": [_digest(X), _digest(X_val)],
    }


def test_jobs_workers_map_one_matrix_written_once_and_removed_at_the_end(tmp_path, monkeypatch):
    """With --jobs 2 the data is read and preprocessed once, in the command's process; its
    workers train on read-only memory maps of one file, bit for bit the data one process
    prepares, and the file's scratch folder (outside the user's folder) is gone afterwards."""
    from tuner import runner

    fits, parent_trained = [], []
    counted_fit, recorded_fit = _spies(fits, parent_trained, _received)

    logs = tmp_path / "logs"
    logs.mkdir()
    monkeypatch.setattr(TabularPreprocessor, "fit", counted_fit)
    monkeypatch.setattr(MLPClassifier, "fit", recorded_fit)
    monkeypatch.setattr(runner, "_worker_process", functools.partial(_spying_worker, str(logs)))
    path = tmp_path / "shared.toml"
    path.write_text(STUDY)
    result = run_study(path, jobs=2, storage=f"sqlite:///{tmp_path}/optuna.db",
                       tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert len(result.study.trials) == 3 and result.test_scores
    assert fits == [106]  # the command's process fitted the preprocessing, once
    workers = [json.loads(p.read_text()) for p in logs.iterdir()]
    assert len(workers) == 2 and all(w["fits"] == [] for w in workers)
    trained = [t for w in workers for t in w["trained"]] + parent_trained
    assert sum(len(w["trained"]) for w in workers) == 3
    files = {f for t in trained for f in t["maps"]}
    assert len(files) == 1 and None not in files and False not in files  # one file, every fit
    matrix = Path(files.pop())
    assert matrix.parent.parent == Path(tempfile.gettempdir()) and not matrix.parent.exists()
    assert not any(t["writeable"][0] or t["writeable"][1] for t in trained)
    fresh = load_splits(result.config)
    expected = [_digest(fresh.Xt_train), _digest(fresh.Xt_val)]
    assert all(t["digests"] == expected for t in trained)
