"""The MLflow record tells the truth: the parent run describes the final model the run printed,
a worker's run carries the study's test scores once they exist, studies of one name in two
storages keep their runs apart, experiments open in model-training mode, and a pruned trial is
told apart from a failed one."""

import json
import time
import warnings

import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, child_runs
from tuner import runner
from tuner.study.config import StudyConfig
from tuner.tracking import ExperimentWarning, StudyTracker, TrialRecord, experiment_url
from tuner.result.final import member_name
from tuner.tracking.keys import members_text

# The module-scoped fixture runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("mlflow_record")


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")


def _config(n_trials: int) -> StudyConfig:
    return StudyConfig.model_validate({
        "name": "record", "seed": 2, "data": {"source": "sklearn:iris"},
        "budget": {"n_trials": n_trials, "max_epochs": 15},
        "space": {"n_layers": 1, "units": {"low": 8, "high": 32}, "optimizer": ["adam"], "activation": ["relu", "tanh"]},
        "pruner": {"name": "none"}, "result": {"ensemble": 3, "seeds": 2},
    })


@pytest.fixture(scope="module")
def worker_then_run(tmp_path_factory):
    """A `tuner worker` runs 3 trials of a study, then `tuner run` finishes it to 6 and scores it."""
    folder = tmp_path_factory.mktemp("record")
    storage, tracking = f"sqlite:///{folder}/optuna.db", f"sqlite:///{folder}/mlflow.db"
    runner.run_worker(_config(3), storage, tracking)
    client = MlflowClient(tracking)
    worker_before = child_runs(client, "record")[0][0]
    result = runner.run_study(_config(6), storage=storage, tracking_uri=tracking)
    assert_no_failed_trials(result.study)
    parents, _ = child_runs(client, "record")
    by_role = {r.data.params.get("role"): r for r in parents}
    return {"result": result, "client": client, "worker_before": worker_before,
            "worker": by_role["worker"], "run": max(parents, key=lambda r: r.info.start_time)}


def test_the_parent_run_is_tagged_with_the_final_model_the_run_printed(worker_then_run):
    result, run = worker_then_run["result"], worker_then_run["run"]
    final, tags = result.final, run.data.tags
    assert run.data.params.get("role") != "worker"
    assert tags["final_members"] == members_text({member_name(k): v for k, v in final.members.items()})
    assert tags["final_members"] != ""
    assert tags["final_refit"] == "true" and final.refit
    assert tags["final_seeds"] == "2" == str(final.seeds)
    assert tags["final_model"].endswith(", each trained with 2 seeds, trained on training + validation rows")
    assert tags["final_model"] in tags["mlflow.note.content"]


def test_the_parent_metrics_are_the_final_model_and_best_trial_grouped_apart(worker_then_run):
    result, run = worker_then_run["result"], worker_then_run["run"]
    metrics = run.data.metrics
    assert {k[len("final/test_"):]: v for k, v in metrics.items() if k.startswith("final/test_")} == pytest.approx(result.test_scores)
    assert {k[len("best_trial/test_"):]: v for k, v in metrics.items() if k.startswith("best_trial/test_")} == pytest.approx(
        result.best_trial_scores)
    assert metrics["study/best_value"] == pytest.approx(result.study.best_value)
    assert metrics["study/n_complete"] == 6
    assert metrics["best_trial/val_accuracy"] == pytest.approx(result.study.best_value)
    assert run.data.params["best_trial/units_l0"] == str(result.study.best_trial.params["units_l0"])
    # nothing of the parent's own looks like a trial's metric in the column picker
    assert all("/" in key for key in metrics), sorted(metrics)
    assert run.data.tags["best_trial_number"] == str(result.study.best_trial.number)


def test_a_worker_run_says_where_the_test_scores_are_then_carries_them(worker_then_run):
    before, worker, run = worker_then_run["worker_before"], worker_then_run["worker"], worker_then_run["run"]
    assert before.info.run_id == worker.info.run_id
    assert not any(k.startswith("final/") for k in before.data.metrics)
    assert "not scored by tuner worker" in before.data.tags["tuner.test_scores"]
    assert "does not score the test split" in before.data.tags["mlflow.note.content"]
    # once `tuner run` scores the study, the worker's run carries the scores and names that run
    result = worker_then_run["result"]
    assert {k[len("final/test_"):]: v for k, v in worker.data.metrics.items() if k.startswith("final/test_")} == pytest.approx(
        result.test_scores)
    assert worker.data.tags["tuner.final_run_id"] == run.info.run_id
    assert run.info.run_id in worker.data.tags["tuner.test_scores"]
    assert worker.data.tags["final_members"] == run.data.tags["final_members"]
    note = worker.data.tags["mlflow.note.content"]
    assert "does not score the test split" not in note and run.info.run_id in note


def test_trial_runs_are_named_with_their_state_and_score(worker_then_run):
    client, study = worker_then_run["client"], worker_then_run["result"].study
    for trial in study.trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.run_name == f"trial-{trial.number} {trial.value:.4g}"


def test_the_experiment_opens_in_model_training_mode(worker_then_run):
    experiment = worker_then_run["client"].get_experiment_by_name("record")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_study_link_opens_a_view_of_the_trials_sorted_by_validation_score(worker_then_run):
    """The link the tuner prints opens, in model-training mode, the view stored on the
    experiment; each of its columns names a key that the runs have (else the UI shows "-")."""
    client = worker_then_run["client"]
    experiment = client.get_experiment_by_name("record")
    link = experiment_url("http://127.0.0.1:5000", experiment.experiment_id)
    assert link.endswith("/runs?viewStateShareKey=tuner&workflowType=machine_learning")
    state = json.loads(experiment.tags["mlflow.sharedViewState.tuner"])
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`final_val_accuracy`", False)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    keys = {kind: set().union(*(getattr(r.data, kind) for r in runs)) for kind in ("metrics", "params", "tags")}
    for column in state["selectedColumns"]:
        kind, name = column.split(".", 1)
        assert name.strip("`") in keys[kind], column
    assert "metrics.`final/test_accuracy`" in state["selectedColumns"]
    assert {"params.`learning_rate`", "params.`activation`", "tags.`optuna.state`"} <= set(state["selectedColumns"])


def _tracker(uri, storage, name="digits"):
    tracker = StudyTracker(name, storage, tracking_uri=uri)
    tracker.check_connection()
    return tracker


def test_a_pruned_trial_is_finished_and_told_apart_from_a_failed_one(tmp_path):
    tracker = _tracker(f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/optuna.db")
    tracker.start_parent({})
    now = time.time()
    runs = {}
    for number, state, extra in ((0, "PRUNED", {"pruned_epoch": 3.0}), (1, "FAIL", {}), (2, "COMPLETE", {"val_loss": 0.25})):
        history = {"val_loss": [0.5, 0.4, 0.3], "train_loss": [1.0, 0.8, 0.6]}
        runs[number] = tracker.start_trial(number)
        reason = {"PRUNED": "pruned by MedianPruner at epoch 3", "FAIL": "ValueError: NaN loss"}.get(state)
        tracker.end_trial(runs[number], TrialRecord(number, {"units": 8}, history, extra, state, reason, now - 1, now))
    got = {n: tracker.client.get_run(r) for n, r in runs.items()}
    assert [got[n].info.status for n in range(3)] == ["FINISHED", "FAILED", "FINISHED"]
    assert [got[n].data.tags["optuna.state"] for n in range(3)] == ["PRUNED", "FAIL", "COMPLETE"]
    assert [got[n].info.run_name for n in range(3)] == ["trial-0 pruned@3", "trial-1 failed", "trial-2 0.25"]
    assert got[0].data.tags["mlflow.note.content"] == "pruned by MedianPruner at epoch 3"


def test_an_interrupted_trial_stays_killed_and_says_so(tmp_path):
    tracker = _tracker(f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/optuna.db")
    run_id = tracker.start_trial(4)
    tracker.end_trial(run_id, TrialRecord(4, {}, {}, {}, "FAIL", "KeyboardInterrupt", interrupted=True))
    run = tracker.client.get_run(run_id)
    assert (run.info.status, run.info.run_name) == ("KILLED", "trial-4 interrupted")


def test_one_study_name_in_two_storages_gets_two_experiments_and_one_line(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    local = _tracker(uri, f"sqlite:///{tmp_path}/optuna.db")
    with pytest.warns(ExperimentWarning) as caught:
        shared = _tracker(uri, "postgresql+psycopg://me:secret@db:5432/optuna")
    assert shared.experiment_id != local.experiment_id
    name = "digits (postgresql+psycopg://me:***@db:5432/optuna)"
    assert shared.experiment_name == name
    client = MlflowClient(uri)
    assert client.get_experiment(shared.experiment_id).name == name
    assert client.get_experiment(shared.experiment_id).tags["optuna.storage"] == "postgresql+psycopg://me:***@db:5432/optuna"
    assert client.get_experiment(local.experiment_id).tags["optuna.storage"] == f"sqlite:///{tmp_path}/optuna.db"
    message = str(caught[0].message)
    assert "\n" not in message and "secret" not in message and name in message and str(tmp_path) in message
    assert shared.notice == message
    # the same storage again (another worker, another password) finds its experiment, said
    # once already: the line stays on the tracker for whoever prints where the runs are
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExperimentWarning)
        again = _tracker(uri, "postgresql+psycopg://me:other@db:5432/optuna")
        assert again.experiment_id == shared.experiment_id and again.notice == message
        assert _tracker(uri, f"sqlite:///{tmp_path}/optuna.db").experiment_id == local.experiment_id


def test_a_relative_sqlite_storage_is_the_same_file_spelled_absolutely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    relative = _tracker(uri, "sqlite:///optuna.db")
    assert relative.storage_url == f"sqlite:///{tmp_path}/optuna.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExperimentWarning)
        assert _tracker(uri, f"sqlite:///{tmp_path}/optuna.db").experiment_id == relative.experiment_id
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # another working directory: another file
    with pytest.warns(ExperimentWarning):
        assert _tracker(uri, "sqlite:///optuna.db").experiment_id != relative.experiment_id


def test_an_existing_experiment_is_claimed_and_a_users_kind_is_kept(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    plain = client.create_experiment("plain")
    genai = client.create_experiment("chat", tags={"mlflow.experimentKind": "genai_development"})
    assert _tracker(uri, "sqlite:///o.db", name="plain").experiment_id == plain
    assert client.get_experiment(plain).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(plain).tags["optuna.storage"].endswith("/o.db")
    assert _tracker(uri, "sqlite:///o.db", name="chat").experiment_id == genai
    assert client.get_experiment(genai).tags["mlflow.experimentKind"] == "genai_development"
