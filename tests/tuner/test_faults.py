"""Promises of the README's Faults list and `tuner run` options not checked elsewhere (issue 16):
SIGTERM to `tuner run --jobs 2` (no worker left behind, runs closed, a clean resume),
`--timeout`, and `--seed` drawing the same trials twice. SQLite storage: no PostgreSQL needed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, invoke, wait_until
from tests.e2e.test_scale import DONE, assert_one_to_one, load, run_cli, start_cli, stop_process, trial_runs
from tests.e2e.test_scale import write_study as write_fast_study
from tuner.storage.budget import counted_trials
from tuner.storage.retries import retry_links

State = optuna.trial.TrialState

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

# Trials of several seconds (digits, sigmoid units, small SGD steps, 1,500 epochs, no early
# stopping), so that SIGTERM finds both workers training: a running trial's reports reach the
# storage about once a second (tuner/storage/_internals.py), and with 300 epochs a worker could finish its
# trial between the test seeing both train and the signal. The final model is the best trial
# alone, not refit: the `tuner run --jobs` parent ran no trial itself, so a default ensemble would
# train its candidates again there (tests/e2e/test_tuner_parallel_http.py runs that path).
MEDIUM = """
name = "{name}"
seed = 2
[data]
source = "sklearn:digits"
[budget]
n_trials = {n_trials}
max_epochs = 1500
[pruner]
name = "none"
[space]
n_layers = 1
units = 64
activation = "sigmoid"
batch_size = 16
optimizer = "sgd"
lr_schedule = "constant"
learning_rate = {{low = 2e-4, high = 4e-4, log = true}}
dropout = 0.0
patience = false
[result]
ensemble = 1
refit = false
"""


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(c) for c in fh.read().split()]


def _is_worker(pid: int) -> bool:
    """A `--jobs` worker: a process started by multiprocessing's spawn (not its resource tracker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"spawn_main" in fh.read()
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _training(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The RUNNING trials that have reported an epoch."""
    try:
        trials = load(storage, name).get_trials(deepcopy=False, states=(State.RUNNING,))
    except KeyError:  # no study yet
        return []
    return [t for t in trials if t.intermediate_values]


def test_sigterm_to_run_with_two_jobs_stops_both_workers_and_resumes_cleanly(tmp_path, tracking_server):
    name = "jobs_sigterm"
    # two trials, one per worker: the resume re-runs both and nothing else
    (tmp_path / f"{name}.toml").write_text(MEDIUM.format(name=name, n_trials=2))
    storage = f"sqlite:///{tmp_path}/optuna.db"
    args = ("run", str(tmp_path / f"{name}.toml"), "--jobs", "2", "--storage", storage, "--tracking-uri", tracking_server)
    proc = start_cli(*args, cwd=tmp_path, log=tmp_path / "run.log")
    try:
        wait_until(lambda: len(_training(storage, name)) == 2, 180, "both workers training", proc)
        workers = [pid for pid in _children(proc.pid) if _is_worker(pid)]
        assert len(workers) == 2
        proc.send_signal(signal.SIGTERM)  # to `tuner run` alone, as `kill PID` does
        code = proc.wait(timeout=120)
    finally:
        stop_process(proc)
    output = (tmp_path / "run.log").read_text()
    assert code == 130, output
    assert "Traceback" not in output and "run the same command to resume" in output
    assert [pid for pid in workers if _alive(pid)] == []  # no orphaned worker

    study = load(storage, name)
    assert not [t for t in study.trials if t.state == State.RUNNING]
    interrupted = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 2 and {t.state for t in interrupted} == {State.FAIL}  # one per worker
    parents, children = trial_runs(tracking_server, name)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert not [r for runs in children.values() for r in runs if r.info.status == "RUNNING"]
    for trial in interrupted:
        assert [r.info.status for r in children[trial.number]] == ["KILLED"]

    again = run_cli(*args, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    study = load(storage, name)
    assert len(counted_trials(study.trials)) == 2
    assert not [t for t in study.trials if t.state in (State.RUNNING, State.WAITING)]
    links = retry_links(study.trials)
    assert set(links) == {t.number for t in interrupted}  # each interrupted trial re-run once
    assert all(study.trials[links[t.number]].params == t.params for t in interrupted)
    assert_no_failed_trials(study, expected=[t.number for t in interrupted])
    assert_one_to_one(study, tracking_server)
    parents, _ = trial_runs(tracking_server, name)
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]


def test_timeout_stops_starting_trials_and_the_run_ends_normally(tmp_path, tracking_server):
    """`--timeout 1` on a study of 10,000 short trials: it stops long before the budget (no bound
    on how long it took), every trial it started ran to its end, and the run finishes as usual."""
    study_file = write_fast_study(tmp_path, "timed", n_trials=10_000, epochs=20)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    result = invoke("run", str(study_file), "--timeout", "1", "--storage", storage, "--tracking-uri", tracking_server)
    assert result.exit_code == 0, result.output
    study = load(storage, "timed")
    assert 1 <= len(study.trials) < 10_000
    assert all(t.state in DONE for t in study.trials), [t.state for t in study.trials]
    assert "test_scores" in study.user_attrs  # the final model was built and scored
    parents, children = trial_runs(tracking_server, "timed")
    assert [p.info.status for p in parents] == ["FINISHED"] and len(children) == len(study.trials)


def _params_and_values(folder: Path, seed: str, tracking: str) -> list[tuple]:
    folder.mkdir()
    study_file = write_fast_study(folder, "seeded", n_trials=4, epochs=3)
    storage = f"sqlite:///{folder}/optuna.db"
    result = invoke("run", str(study_file), "--seed", seed, "--storage", storage, "--tracking-uri", tracking)
    assert result.exit_code == 0, result.output
    study = load(storage, "seeded")
    assert_no_failed_trials(study)
    return [(sorted(t.params.items()), t.value) for t in study.trials]


def test_the_same_seed_draws_and_trains_the_same_trials(tmp_path, tracking_server):
    first = _params_and_values(tmp_path / "a", "5", tracking_server)
    second = _params_and_values(tmp_path / "b", "5", tracking_server)
    other = _params_and_values(tmp_path / "c", "6", tracking_server)
    assert len(first) == 4 and first == second  # same parameters and same validation scores
    # the seed is what made them equal: another seed draws other trials (trial 0 is the defaults)
    assert first[0][0] == other[0][0] and [p for p, _ in first[1:]] != [p for p, _ in other[1:]]
