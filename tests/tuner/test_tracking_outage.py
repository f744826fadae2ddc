"""A tracking store that stops answering during a study and is back for `tuner sync` (issue 27,
item 5): every metric point reaches MLflow exactly once, whichever call the store died at.

The store "dies" at one call: that call lands (the store wrote it) but its answer is lost, and
every later call fails, as when a tracking server is killed between writing a request and
answering it. The run then ends with its parent RUNNING; `tuner sync`, with the store back,
closes what was left open and logs what is missing."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, write_study
from tuner.tracking.keys import mlflow_key

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore::UserWarning")

#: MlflowClient methods that reach the store.
CALLS = (
    "create_run", "log_batch", "set_terminated", "set_tag", "delete_tag", "log_artifact",
    "log_artifacts", "get_run", "search_runs", "get_metric_history", "get_experiment",
    "get_experiment_by_name", "search_experiments", "set_experiment_tag",
)


def _batch_of_second_trial(method: str, run_id, kwargs, seen: Counter) -> bool:
    """The batch of a trial's curves (points at steps >= 1), the second one logged."""
    if method == "log_batch" and any(m.step >= 1 for m in kwargs.get("metrics") or ()):
        seen["trial batches"] += 1
        return seen["trial batches"] == 2
    return False


def _study_summary(method: str, run_id, kwargs, seen: Counter) -> bool:
    """The parent run's summary (its study counts)."""
    return method == "log_batch" and any(m.key == "study/n_complete" for m in kwargs.get("metrics") or ())


def _store_dies_at(monkeypatch, moment) -> list[str]:
    """Patch MlflowClient so that the first call ``moment`` picks lands, then raises, and every
    later call raises; returns the names of the calls that landed last (empty until it died)."""
    died: list[str] = []
    seen: Counter = Counter()
    for method in CALLS:
        real = getattr(MlflowClient, method)

        def call(self, *args, _real=real, _method=method, **kwargs):
            if died:
                raise ConnectionError("Connection refused: the tracking server is down")
            result = _real(self, *args, **kwargs)
            if moment(_method, args[0] if args else None, kwargs, seen):
                died.append(_method)
                raise ConnectionError("Connection reset by peer: the server died before answering")
            return result

        monkeypatch.setattr(MlflowClient, method, call)
    return died


@pytest.mark.parametrize("moment", [_batch_of_second_trial, _study_summary], ids=["trial-batch", "summary"])
def test_every_point_lands_once_when_the_store_dies_and_sync_runs(tmp_path, monkeypatch, moment):
    from tuner.runner import run_study
    from tuner.tracking.sync import sync_study

    study_file = write_study(tmp_path, "outage", n_trials=4)
    url, tracking = f"sqlite:///{tmp_path}/optuna.db", f"sqlite:///{tmp_path}/mlflow.db"
    with monkeypatch.context() as patched:
        died = _store_dies_at(patched, moment)
        result = run_study(study_file, storage=url, tracking_uri=tracking)
    assert died, "the store never died: the moment picked no call"
    assert_no_failed_trials(result.study)
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("outage").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.`tuner.role` = 'parent'")
    assert parent.info.status == "RUNNING"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client.set_tag(parent.info.run_id, "tuner.pid", gone.stdout.strip())  # its process has ended

    sync_study("outage", storage=url, tracking_uri=tracking)

    runs = client.search_runs([experiment], max_results=1000)
    for run in runs:
        assert run.info.status != "RUNNING", run.info.run_name
        for key in run.data.metrics:
            steps = Counter(p.step for p in client.get_metric_history(run.info.run_id, key))
            twice = {step: n for step, n in steps.items() if n > 1}
            assert not twice, f"{run.info.run_name}: {key} logged more than once at steps {twice}"
    trial_runs = {int(r.data.tags["optuna.trial_number"]): r for r in runs if r.data.tags.get("tuner.role") == "trial"}
    for trial in result.study.trials:  # nothing lost either: every curve has all its points
        run = trial_runs[trial.number]
        for name, values in trial.user_attrs["history"].items():
            points = client.get_metric_history(run.info.run_id, mlflow_key(name))
            assert sorted(p.step for p in points) == list(range(1, len(values) + 1))
    scored = client.get_run(parent.info.run_id)
    assert scored.info.status == "FINISHED"
    assert scored.data.metrics["final/test_accuracy"] == pytest.approx(result.test_scores["accuracy"])
