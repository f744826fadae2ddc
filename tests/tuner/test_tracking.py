"""MLflow tracking of studies: nesting, per-epoch history, statuses, summary, failure handling.

Real MLflow against a temporary SQLite store; in-memory Optuna studies.
"""

import subprocess
import sys
import time
import warnings

import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import closed_port
from tuner.errors import TunerError
from tuner.tracking import (
    StudyTracker,
    TrackingWarning,
    TrialRecord,
    experiment_url,
    find_trial_run,
    trial_runs,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

# The module-scoped fixture runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("tracking")

HISTORY = {
    "loss": [1.0, 0.6, 0.4, 0.3],
    "val_accuracy": [0.5, 0.7, 0.8, 0.85],
}


@pytest.fixture
def closed_url():
    """An http URL on which nothing listens (a port held bound, not listening: refused)."""
    with closed_port() as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def retry_waits(monkeypatch):
    """The waits urllib3 makes before each HTTP retry (``Retry.sleep``), recorded, not slept."""
    import urllib3

    waits: list[int] = []
    monkeypatch.setattr(urllib3.util.retry.Retry, "sleep", lambda self, response=None: waits.append(1))
    return waits


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    # One store for the module (creating an MLflow database takes seconds); one study per test.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # A stray active-run id in the environment must not change where runs go.
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")


@pytest.fixture
def tracker(uri, request):
    t = StudyTracker(request.node.name, "postgresql://me:secret@db/optuna", tracking_uri=uri)
    t.check_connection()
    return t


def _record(number, state="COMPLETE", reason=None, history=HISTORY):
    now = time.time()
    return TrialRecord(
        number=number,
        params={"learning_rate": 0.01 * (number + 1), "hidden_layer_sizes": (64, 32), "max_epochs": 4},
        history=history,
        metrics={"val_accuracy": history["val_accuracy"][-1], "train_seconds": 1.5, "n_params": 4810},
        state=state,
        reason=reason,
        start_time=now - 2.0,
        end_time=now,
    )


def test_import_does_not_load_mlflow():
    code = "import sys, tuner.tracking; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trial_runs_nested_with_history_and_statuses(tracker):
    parent = tracker.start_parent({"search": {"n_trials": 3, "sampler": "tpe"}, "storage": "postgresql://me:secret@db/optuna"})
    cases = [(0, "COMPLETE", None, "FINISHED"), (1, "PRUNED", "pruned at epoch 4", "FINISHED"),
             (2, "FAIL", "ValueError: NaN loss", "FAILED")]
    names = {0: "trial-0 0.85", 1: "trial-1 pruned", 2: "trial-2 failed"}
    ids = {}
    for number, state, reason, _ in cases:
        run_id = tracker.start_trial(number)
        assert tracker.client.get_run(run_id).info.status == "RUNNING"
        tracker.end_trial(run_id, _record(number, state, reason))
        ids[number] = run_id
    assert tracker.unlogged_trials == set()

    client = MlflowClient(tracker.tracking_uri)
    p = client.get_run(parent)
    assert p.info.status == "RUNNING"
    assert p.info.experiment_id == tracker.experiment_id
    assert client.get_experiment(tracker.experiment_id).name == tracker.study_name
    assert p.data.params["search.n_trials"] == "3"
    assert p.data.params["storage"] == "postgresql://me:***@db/optuna"  # password hidden
    assert p.data.tags["optuna.storage"] == "postgresql://me:***@db/optuna"

    for number, state, reason, status in cases:
        run = client.get_run(ids[number])
        tags = run.data.tags
        assert run.info.run_name == names[number]
        assert run.info.status == status
        assert run.info.experiment_id == tracker.experiment_id
        assert tags["mlflow.parentRunId"] == parent
        assert tags["optuna.study_name"] == tracker.study_name
        assert tags["optuna.trial_number"] == str(number)
        assert tags["optuna.state"] == state
        assert tags.get("optuna.reason") == reason
        assert tags.get("mlflow.note.content") == reason  # the run's description
        assert run.data.params["learning_rate"] == repr(0.01 * (number + 1))
        assert run.data.params["hidden_layer_sizes"] == "[64, 32]"
        for name, values in HISTORY.items():
            points = sorted(client.get_metric_history(ids[number], name), key=lambda m: m.step)
            assert [m.step for m in points] == [1, 2, 3, 4]
            assert [m.value for m in points] == values
            assert points[0].timestamp <= points[-1].timestamp
        # final metric named like a curve is kept apart from the curve
        assert run.data.metrics["final_val_accuracy"] == 0.85
        assert run.data.metrics["n_params"] == 4810
        assert run.info.end_time >= run.info.start_time

    name, exp = tracker.study_name, tracker.experiment_id
    assert find_trial_run(client, exp, name, 1).info.run_id == ids[1]
    assert find_trial_run(client, exp, name, 7) is None
    assert {n: r.info.run_id for n, r in trial_runs(client, exp, name).items()} == ids


def test_sqlite_store_is_in_wal_mode(tmp_path):
    import sqlite3

    StudyTracker("s", "sqlite:///optuna.db", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").check_connection()
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_batch_limits_are_respected(tracker):
    history = {f"m{k}": [float(i) for i in range(300)] for k in range(4)}  # 1200 points > 1000
    record = TrialRecord(0, {f"p{i}": i for i in range(150)}, history, {"score": 1.0}, "COMPLETE")  # > 100 params
    run_id = tracker.start_trial(0)
    tracker.end_trial(run_id, record)
    assert tracker.unlogged_trials == set()
    run = tracker.client.get_run(run_id)
    assert len(run.data.params) == 150
    assert len(tracker.client.get_metric_history(run_id, "m3")) == 300


def test_tracking_uri_from_environment(uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert StudyTracker("demo", "sqlite:///o.db").tracking_uri == uri


def test_second_worker_reuses_experiment(tracker, uri):
    other = StudyTracker(tracker.study_name, "postgresql://me:other-secret@db/optuna", tracking_uri=uri)
    assert other.experiment_id == tracker.experiment_id  # same storage, whatever the password


def test_finish_parent_summary_and_artifacts(tracker):
    parent = tracker.start_parent({"n_trials": 6})
    study = optuna.create_study(study_name=tracker.study_name, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        run_id = tracker.start_trial(trial.number)
        x = trial.suggest_float("x", -2.0, 2.0)
        units = trial.suggest_int("units", 8, 64)
        curve = [1.0 - (x - 0.5) ** 2 - 0.1 / (e + 1) for e in range(5)]
        history = {"val_score": curve, "loss": [1.0 / (e + 1) for e in range(5)]}
        state, reason, error = "COMPLETE", None, None
        if trial.number == 4:
            state, reason, error = "PRUNED", "pruned at epoch 2", optuna.TrialPruned()
        elif trial.number == 5:
            state, reason, error = "FAIL", "ValueError: boom", ValueError("boom")
        tracker.end_trial(run_id, TrialRecord(trial.number, {"x": x, "units": units, "epochs": 5},
                                              history, {"val_score_final": curve[-1]}, state, reason))
        if error is not None:
            raise error
        return curve[-1]

    study.optimize(objective, n_trials=6, catch=(ValueError,))
    import matplotlib

    style = {k: v for k, v in matplotlib.rcParams.items() if not k.startswith("backend")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # optuna's experimental warnings are silenced
        tracker.finish_parent(study, test_scores={"accuracy": 0.93})

    client = tracker.client
    assert {k: v for k, v in matplotlib.rcParams.items() if not k.startswith("backend")} == style  # the plots leave the global style alone
    run = client.get_run(parent)
    best = study.best_trial
    assert run.info.status == "FINISHED"
    assert run.data.params["best_trial/x"] == repr(best.params["x"])
    assert run.data.params["best_trial/units"] == str(best.params["units"])
    assert run.data.metrics["study/best_value"] == pytest.approx(best.value)
    assert run.data.metrics["best_trial/val_score_final"] == pytest.approx(best.value)
    assert "best_trial/loss" not in run.data.metrics  # curves are artifacts, not best_trial/ metrics
    assert run.data.metrics["final/test_accuracy"] == 0.93
    assert run.data.metrics["study/n_complete"] == 4
    assert run.data.metrics["study/n_pruned"] == 1
    assert run.data.metrics["study/n_failed"] == 1
    assert run.data.tags["best_trial_number"] == str(best.number)
    assert run.data.tags["best_run_id"] == find_trial_run(client, tracker.experiment_id, study.study_name, best.number).info.run_id
    artifacts = {f.path for f in client.list_artifacts(parent)}
    assert {"optimization_history.png", "param_importances.png", "parallel_coordinate.png",
            "learning_curves.png", "trials.csv"} <= artifacts
    csv = client.download_artifacts(parent, "trials.csv")
    with open(csv) as f:
        assert len(f.read().strip().splitlines()) == 7  # header + 6 trials


def test_finish_parent_with_one_trial_skips_importances(tracker):
    parent = tracker.start_parent({})
    study = optuna.create_study(study_name=tracker.study_name)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    tracker.finish_parent(study, best_history={"loss": [3.0, 2.0, 1.0]}, status="KILLED")
    run = tracker.client.get_run(parent)
    assert run.info.status == "KILLED"
    artifacts = {f.path for f in tracker.client.list_artifacts(parent)}
    assert "param_importances.png" not in artifacts
    assert {"optimization_history.png", "learning_curves.png", "trials.csv"} <= artifacts


def test_unreachable_server_fails_fast(monkeypatch, closed_url, retry_waits):
    """No retries (MLflow's would wait minutes): one refused connection is the answer."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")  # check_connection overrides these
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    tracker = StudyTracker("demo", "sqlite:///o.db", tracking_uri=closed_url)
    with pytest.raises(TunerError) as info:
        tracker.check_connection()
    assert retry_waits == []
    message = str(info.value)
    assert "\n" not in message and "unreachable" in message and "127.0.0.1" in message


def test_broken_store_never_raises_during_tuning(monkeypatch, closed_url, retry_waits):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    tracker = StudyTracker("demo", "sqlite:///o.db", tracking_uri=closed_url)
    with pytest.warns(TrackingWarning) as caught:
        tracker.end_trial("0123456789abcdef0123456789abcdef", _record(0))  # server went away mid-trial
        run_id = tracker.start_trial(1)
        tracker.end_trial(run_id, _record(1))
        tracker.start_trial(2)
    assert run_id is None
    assert len([w for w in caught if w.category is TrackingWarning]) == 1  # one warning, not one per trial
    assert tracker.unlogged_trials == {0, 1, 2}
    assert retry_waits == []  # the user's "no retries" is kept


def test_record_from_frozen_trial():
    study = optuna.create_study(study_name="demo", direction="maximize")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        for epoch in (1, 2, 3):
            trial.report(x * epoch, epoch)
        trial.set_user_attr("train_seconds", 0.5)
        return 3 * x

    study.optimize(objective, n_trials=1)
    record = TrialRecord.from_frozen_trial(study.trials[0], fixed_params={"epochs": 3},
                                           objective_name="val_accuracy")
    x = study.trials[0].params["x"]
    assert record.params == {"epochs": 3, "x": x}
    assert record.metrics == {"train_seconds": 0.5, "val_accuracy": 3 * x}
    assert record.history == {"val_accuracy": [x, 2 * x, 3 * x]}
    assert record.state == "COMPLETE" and record.start_time <= record.end_time


def test_experiment_url():
    assert experiment_url("http://127.0.0.1:5000/", "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?viewStateShareKey=tuner&workflowType=machine_learning")
    assert experiment_url("sqlite:///mlflow.db", "3") is None
