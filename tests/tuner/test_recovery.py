"""What stopped processes leave behind (issue 12 cases 5 and 6): an interrupted trial is re-run
on resume without using the budget, as a killed worker's trial is; after a SIGKILL, `tuner sync`
fails the dead worker's trial, queues its retry and closes its MLflow run and its parent run,
saying why; a retry that is itself killed is not retried again (issue 16)."""

from __future__ import annotations

import signal
import subprocess
import sys

import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, cli_env, wait_until, write_study
from tests.e2e.test_scale import write_study as write_slow_study
from tuner import interrupts
from tuner.storage.budget import counted_trials
from tuner.result.final import member_name
from tuner.storage.recovery import TAG_CLOSED, recover
from tuner.storage.retries import retry_links
from tuner.storage.storages import open_storage

State = optuna.trial.TrialState
DONE = (State.COMPLETE, State.PRUNED)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_an_interrupted_trial_is_rerun_on_resume_and_does_not_use_the_budget(tmp_path, monkeypatch):
    from tuner.runner import run_study

    study_file = write_study(tmp_path, "interrupted", n_trials=3)
    url, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    real_check, calls = interrupts.check, []

    def ctrl_c_at_the_third_epoch() -> None:  # checked before each trial and after each epoch
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(interrupts, "check", ctrl_c_at_the_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_study(study_file, storage=url, tracking_uri=tracking)
    monkeypatch.setattr(interrupts, "check", real_check)
    result = run_study(study_file, storage=url, tracking_uri=tracking)

    trials = result.study.trials
    assert trials[0].state == State.FAIL and trials[0].intermediate_values  # stopped mid-trial
    assert_no_failed_trials(result.study, expected=[0])
    retry = trials[retry_links(trials)[0]]
    assert retry.params == trials[0].params and retry.state in DONE
    assert len(counted_trials(trials)) == 3 and sum(t.state in DONE for t in trials) == 3
    client = MlflowClient(tracking)
    assert client.get_run(trials[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).data.tags["tuner.retry_of"] == "0"


def test_sync_after_sigkill_fails_the_trial_and_closes_its_runs(tmp_path, monkeypatch):
    from tuner.tracking.sync import sync_study

    # tuner sync closes nothing until the trial's heartbeat is stale (for 3 s here).
    monkeypatch.setenv("TUNER_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("TUNER_GRACE_PERIOD", "3")
    write_slow_study(tmp_path, "killed", n_trials=2, slow=True)  # trials of seconds: killed mid-trial
    url, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner.cli.app", "worker", "killed.toml", "--storage", url, "--tracking-uri", tracking],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path, env=cli_env(),
    )
    try:
        def running_trial():
            try:
                trials = optuna.load_study(study_name="killed", storage=url).get_trials(states=(State.RUNNING,))
            except KeyError:
                return None
            return next((t for t in trials if t.intermediate_values and "mlflow_run_id" in t.user_attrs), None)

        victim = wait_until(running_trial, 120, "a running trial", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    closed: list[str] = []

    def sync_fails_the_trial() -> bool:
        closed.extend(sync_study("killed", storage=url, tracking_uri=tracking).dead_runs)
        return optuna.load_study(study_name="killed", storage=url).trials[victim.number].state == State.FAIL

    wait_until(sync_fails_the_trial, 60, "sync to find the dead worker's trial", poll=0.5)
    study = optuna.load_study(study_name="killed", storage=url)
    assert study.trials[victim.number].state == State.FAIL
    client = MlflowClient(tracking)
    trial_run = client.get_run(victim.user_attrs["mlflow_run_id"])
    assert trial_run.info.status == "FAILED" and "heartbeat" in trial_run.data.tags[TAG_CLOSED]
    parent = client.get_run(trial_run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED" and f"process {proc.pid}" in parent.data.tags[TAG_CLOSED]
    assert sorted(closed) == sorted([trial_run.info.run_id, parent.info.run_id])
    # the heartbeat retry on SQLite: the same parameters queued once, linked to the dead trial
    waiting = study.get_trials(states=(State.WAITING,))
    assert [retry_links(study.trials)[victim.number]] == [t.number for t in waiting]
    assert waiting[0].params == victim.params
    # and nothing is left to close: a second sync closes no run
    assert sync_study("killed", storage=url, tracking_uri=tracking).dead_runs == []


def test_a_retry_that_is_itself_killed_is_not_retried_again(tmp_path, monkeypatch):
    """The README: a dead worker's trial is re-run once. Here each trial's worker "dies" after one
    heartbeat (nothing beats for it again); once the grace period has passed, recovery fails the
    trial. The first one is queued again with its parameters, its retry is not: it stays FAILED
    and counts against the budget, so the study still ends after n_trials."""
    monkeypatch.setenv("TUNER_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("TUNER_GRACE_PERIOD", "2")
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    storage.set_budget(3)
    study = optuna.create_study(study_name="retried", storage=storage)

    def started_then_killed() -> optuna.trial.FrozenTrial:
        trial = study.ask()  # a new trial, or the retry waiting in the queue
        trial.suggest_float("x", 0.0, 1.0)
        storage.record_heartbeat(trial._trial_id)  # its only heartbeat: the worker dies here

        def failed_by_recovery():
            recover(study, None, "the test")
            frozen = study.trials[trial.number]
            return frozen if frozen.state == State.FAIL else None

        return wait_until(failed_by_recovery, 60, f"trial {trial.number} failed by its stale heartbeat", poll=0.5)

    first = started_then_killed()
    trials = study.trials
    assert [t.state for t in trials] == [State.FAIL, State.WAITING] and retry_links(trials) == {0: 1}
    retry = started_then_killed()
    assert retry.number == 1 and retry.params == first.params  # the queued retry ran
    trials = study.trials
    assert [t.state for t in trials] == [State.FAIL, State.FAIL]  # not queued a second time
    assert retry_links(trials) == {0: 1}
    assert [t.number for t in counted_trials(trials)] == [1]  # the retry's failure uses a slot
    assert storage.taken_slots(study._study_id) == 1


def test_a_run_that_ended_while_mlflow_was_down_is_finished_with_its_scores(tmp_path, monkeypatch):
    """The tracking store is unreachable when a run ends: it prints its final model's scores but
    cannot log them, and its parent run stays RUNNING. Once its process is gone, `tuner sync`
    finishes that run with the scores and the final model's tags the study stored, instead of
    closing it KILLED with no result."""
    from tuner.runner import run_study
    from tuner.tracking import summary
    from tuner.tracking.sync import sync_study

    study_file = write_study(tmp_path, "down", n_trials=3)
    url, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    with monkeypatch.context() as patched:  # the store is gone at the end of the run
        patched.setattr(summary, "parent_to_finish", lambda tracker, run_id=None: None)
        result = run_study(study_file, storage=url, tracking_uri=tracking)
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("down").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.`tuner.role` = 'parent'")
    assert parent.info.status == "RUNNING" and "final/test_accuracy" not in parent.data.metrics
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client.set_tag(parent.info.run_id, "tuner.pid", gone.stdout.strip())  # its process has ended

    report = sync_study("down", storage=url, tracking_uri=tracking)

    run = client.get_run(parent.info.run_id)
    assert parent.info.run_id in report.dead_runs
    assert run.info.status == "FINISHED"
    assert run.data.metrics["final/test_accuracy"] == pytest.approx(result.test_scores["accuracy"])
    members = result.final.members
    assert run.data.tags["final_members"] == ", ".join(
        member_name(k) + (f" x{v}" if v > 1 else "") for k, v in members.items()
    )
    assert "MLflow was unreachable" in run.data.tags[TAG_CLOSED]


@pytest.mark.parametrize("run_created_late", [False, True])
def test_a_worker_whose_trial_another_worker_failed_runs_on(tmp_path, monkeypatch, caplog, run_created_late):
    """A worker's heartbeat arrives late (a busy host) and another worker fails its trial as
    stale while it trains. When the worker tells the trial's result, Optuna refuses (the trial is
    FAIL): the worker says so in one line and runs on, the retry runs the trial again, and the
    study ends with its budget instead of the worker dying with a traceback. Its MLflow run is
    closed FAILED, also when the run was created too late for the storage to take its id (a slow
    tracking store: the trial was failed before the run existed)."""
    import logging
    import time

    from tuner.tracking import StudyTracker

    if run_created_late:
        real_start = StudyTracker.start_trial

        def slow_start(self, trial_number, **kwargs):
            if trial_number == 0:
                time.sleep(4)  # past the epoch at which trial 0 is failed below
            return real_start(self, trial_number, **kwargs)

        monkeypatch.setattr(StudyTracker, "start_trial", slow_start)

    from tuner.runner import run_study
    from tuner.search.objective import Objective

    monkeypatch.setenv("TUNER_HEARTBEAT_INTERVAL", "1")
    monkeypatch.setenv("TUNER_GRACE_PERIOD", "2")
    study_file = write_study(tmp_path, "late", n_trials=3)
    url = f"sqlite:///{tmp_path}/optuna.db"
    real_reporter, real_beat = Objective._reporter, optuna.storages.RDBStorage.record_heartbeat
    busy = []  # while true, this worker's heartbeats do not arrive

    def late_beat(storage, trial_id):
        return None if busy else real_beat(storage, trial_id)

    def fail_stale(trial) -> None:  # as another worker does, once trial 0 looks dead
        other_storage = open_storage(url)
        real_beat(other_storage, trial._trial_id)  # one beat, then none in time
        busy.append(True)
        other = optuna.load_study(study_name=trial.study.study_name, storage=other_storage)

        def failed() -> bool:
            recover(other, None, "another worker")
            return other.trials[0].state == State.FAIL

        wait_until(failed, 30, "trial 0 failed as stale by another worker", poll=0.3)
        busy.clear()

    def reporter(self, trial, estimator, run):  # trial 0 is failed after its second epoch
        report = real_reporter(self, trial, estimator, run)

        def late(epoch, logs):
            if trial.number == 0 and epoch == 2:
                fail_stale(trial)
            return report(epoch, logs)

        return late

    monkeypatch.setattr(Objective, "_reporter", reporter)
    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat", late_beat)
    with caplog.at_level(logging.WARNING, logger="tuner.runner"):
        result = run_study(study_file, storage=url, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")

    trials = result.study.trials
    assert trials[0].state == State.FAIL and "history" not in trials[0].user_attrs
    if run_created_late:  # its run's id came after the failure: the storage refused it
        assert "mlflow_run_id" not in trials[0].user_attrs
    assert_no_failed_trials(result.study, expected=[0])
    retry = trials[retry_links(trials)[0]]
    assert retry.params == trials[0].params and retry.state in DONE
    assert len(counted_trials(trials)) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "tuner.runner"]
    assert lines == ["trial 0 was failed by another worker, which found its heartbeat late "
                     "(a busy host?): its retry runs it again"]
    assert result.test_scores  # the study went on to its final model
    # MLflow agrees with Optuna: trial 0's run is FAILED with the reason, its retry has its own run
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("late").experiment_id])
    (lost_run,) = [r for r in runs if r.data.tags.get("optuna.trial_number") == "0"]
    assert lost_run.info.status == "FAILED" and lost_run.data.tags["optuna.state"] == "FAIL"
    assert "heartbeat arrived late" in lost_run.data.tags["optuna.reason"]
    assert retry.user_attrs["mlflow_run_id"] != lost_run.info.run_id
