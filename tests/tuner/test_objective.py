"""Trials that go wrong end with a recorded reason, and the study goes on."""

import gc
import signal
import threading

import optuna
import pytest
from mlflow import MlflowClient

from tuner import interrupts
from tuner.runner import run_study

DIVERGING = """
name = "diverging"
seed = 0
[data]
source = "sklearn:iris"
[budget]
n_trials = 3
max_epochs = 5
[pruner]
name = "none"
[space]
n_layers = 1
units = 16
activation = "relu"
optimizer = "sgd"
lr_schedule = "constant"
batch_size = 16
learning_rate = {low = 1e4, high = 1e5, log = true}
"""


def test_diverging_trials_fail_with_their_reason_and_the_study_goes_on(tmp_path):
    path = tmp_path / "diverging.toml"
    path.write_text(DIVERGING)
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_study(path, storage=f"sqlite:///{tmp_path}/optuna.db", tracking_uri=tracking)
    assert gc.get_freeze_count() == 0  # the heap frozen during the study is handed back
    trials = result.study.trials
    assert len(trials) == 3  # the study went on after the first failure
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials)
    assert all("diverged" in t.user_attrs["fail_reason"] for t in trials)
    assert result.test_scores == {}
    client = MlflowClient(tracking)
    for t in trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FAILED"
        assert "diverged" in run.data.tags["optuna.reason"]


@pytest.fixture
def signal_handlers():
    """Our SIGINT/SIGTERM handlers for one test, pytest's own restored afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    interrupts._requested.clear()


class SignalledWhileFinalized:
    """Sends this process SIGTERM from inside ``__del__``: the handler's KeyboardInterrupt is
    raised there (``signal.raise_signal`` runs the handler before it returns), printed as
    "Exception ignored in ..." and lost, as when a signal lands in a library's destructor."""

    def __del__(self):
        signal.raise_signal(signal.SIGTERM)


def test_an_interrupt_swallowed_by_a_destructor_still_stops_the_study(tmp_path, signal_handlers):
    """A KeyboardInterrupt raised inside ``__del__`` is printed and lost; the flag is not, and the
    worker loop checks it before the first trial."""
    SignalledWhileFinalized()
    assert interrupts._requested.is_set()
    path = tmp_path / "iris.toml"
    path.write_text(DIVERGING.replace("1e4, high = 1e5", "1e-3, high = 1e-2"))
    storage, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(KeyboardInterrupt):
        run_study(path, storage=storage, tracking_uri=tracking)
    trials = optuna.load_study(study_name="diverging", storage=storage).trials
    # stopped, none ran on (the defaults trial enqueued at creation waits for the resume)
    waiting_or_failed = (optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING)
    assert not [t for t in trials if t.state not in waiting_or_failed]
    client = MlflowClient(tracking)
    (parent,) = client.search_runs([client.get_experiment_by_name("diverging").experiment_id])
    assert parent.info.status == "KILLED"


def test_a_signal_lost_during_training_stops_the_trial_at_the_next_epoch(tmp_path, signal_handlers, monkeypatch):
    """Issue 16: the per-epoch check. The signal lands while the first trial trains (between its
    first and second epoch) and its KeyboardInterrupt is lost in a destructor; the check at the
    next epoch stops the trial there, as interrupted: failed, queued again, its run KILLED."""
    real_check, calls = interrupts.check, []

    def check_with_a_signal_lost_in_epoch_two() -> None:  # called before each trial and each epoch
        calls.append(1)
        if len(calls) == 3:  # the check of the first trial's second epoch
            SignalledWhileFinalized()
            assert interrupts._requested.is_set()
        real_check()

    monkeypatch.setattr(interrupts, "check", check_with_a_signal_lost_in_epoch_two)
    path = tmp_path / "iris.toml"
    path.write_text(DIVERGING.replace("1e4, high = 1e5", "1e-3, high = 1e-2"))
    storage, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(KeyboardInterrupt):
        run_study(path, storage=storage, tracking_uri=tracking)
    first, *others = optuna.load_study(study_name="diverging", storage=storage).trials
    assert first.state == optuna.trial.TrialState.FAIL and first.user_attrs["interrupted"] is True
    assert len(first.intermediate_values) == 1  # stopped at the epoch after the signal, not at the end
    assert [t.state for t in others] == [optuna.trial.TrialState.WAITING]  # its retry, queued
    assert others[0].params == first.params
    run = MlflowClient(tracking).get_run(first.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED"


def test_handlers_are_left_alone_off_the_main_thread():
    before = signal.getsignal(signal.SIGTERM)
    errors = []
    thread = threading.Thread(target=lambda: _call(interrupts.install, errors))
    thread.start()
    thread.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is before


def _call(fn, errors):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test reports it
        errors.append(exc)
