"""Failed trials, said in one line each (issue 12, case 10): a diverging study prints
``trial N failed: <reason>`` per trial with no traceback, and ``tuner run`` (or a ``tuner
worker`` whose trials all failed) exits 1 with one summary line instead of 0."""

from __future__ import annotations

import logging

import optuna
import pytest

from tests.helpers import invoke

#: Every trial diverges: SGD with a learning rate of 1e4 on iris makes the loss NaN at once.
DIVERGING = """
name = "{name}"
seed = 0
[data]
source = "sklearn:iris"
[budget]
n_trials = {n_trials}
max_epochs = 3
[pruner]
name = "none"
[result]
ensemble = 1
[space]
n_layers = 1
units = 8
activation = "relu"
optimizer = "sgd"
lr_schedule = "constant"
batch_size = 16
learning_rate = {learning_rate}
"""
ALWAYS = "{low = 1e4, high = 1e5, log = true}"
#: The defaults trial takes the first choice and completes; the drawn ones may diverge.
SOMETIMES = "[0.01, 100000.0]"


class Collected(logging.Handler):
    """A handler on Optuna's logger for one test: what a user's terminal would get from it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [self.format(r) for r in self.records]


@pytest.fixture
def optuna_log():
    handler = Collected()
    logger = logging.getLogger("optuna")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    # The run's filter went with the run (the command's own, for Ctrl-C, stays with its process).
    assert [type(f).__name__ for f in handler.filters if type(f).__name__ != "NoInterruptTraceback"] == []


def write(folder, name="div", n_trials=3, learning_rate=ALWAYS):
    path = folder / f"{name}.toml"
    path.write_text(DIVERGING.format(name=name, n_trials=n_trials, learning_rate=learning_rate))
    return path


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> str:
    """One MLflow store for the module (creating one costs seconds); each study has its own name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/m.db"


def stores(folder, tracking) -> list[str]:
    return ["--storage", f"sqlite:///{folder}/o.db", "--tracking-uri", tracking]


def test_a_run_whose_trials_all_diverge_says_so_in_one_line_each_and_exits_1(tmp_path, tracking, optuna_log):
    result = invoke("run", str(write(tmp_path)), *stores(tmp_path, tracking))
    assert result.exit_code == 1, result.output
    lines = optuna_log.lines()
    assert [line.split(":")[0] for line in lines] == ["trial 0 failed", "trial 1 failed", "trial 2 failed"], lines
    assert all("diverged" in line and "\n" not in line for line in lines), lines
    assert all(r.exc_info is None for r in optuna_log.records)  # no traceback to print
    summary = [line for line in result.output.splitlines() if "no trial completed" in line]
    assert summary == [
        f"error: no trial completed: 3 failed, first reason (trial 0): {lines[0].removeprefix('trial 0 failed: ')}"
    ], result.output
    assert "Traceback" not in result.output

    again = invoke("run", str(write(tmp_path)), *stores(tmp_path, tracking))  # nothing left to run: still 1
    assert again.exit_code == 1 and "no trial completed: 3 failed" in again.output, again.output


def test_a_run_with_one_completed_trial_among_failures_exits_0(tmp_path, tracking, optuna_log):
    result = invoke("run", str(write(tmp_path, "mixed", 4, SOMETIMES)), *stores(tmp_path, tracking))
    study = optuna.load_study(study_name="mixed", storage=f"sqlite:///{tmp_path}/o.db")
    states = {t.state for t in study.trials}
    assert {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL} <= states  # the case this test is for
    assert result.exit_code == 0, result.output
    failed = [t.number for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert [line.split(":")[0] for line in optuna_log.lines()] == [f"trial {n} failed" for n in failed]


def test_a_worker_whose_trials_all_failed_exits_1_and_one_that_ran_none_exits_0(tmp_path, tracking, optuna_log):
    path = write(tmp_path, "wdiv", 2)
    first = invoke("worker", str(path), *stores(tmp_path, tracking))
    assert first.exit_code == 1, first.output
    assert "none of the 2 trials this worker ran completed: 2 failed, first reason (trial 0): diverged" in first.output
    assert "Traceback" not in first.output
    assert len(optuna_log.records) == 2
    # The budget is spent: a second worker runs no trial, so none of its trials failed.
    second = invoke("worker", str(path), *stores(tmp_path, tracking))
    assert second.exit_code == 0, second.output
    assert "2 of 2 trials finished" in second.output
