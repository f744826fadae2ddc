"""The whole flow through the CLI: a small study, read back from Optuna and from MLflow."""

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, child_runs, invoke, write_study
from tuner.tracking import MODEL_ARTIFACT_DIR

# The module-scoped fixture runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("e2e")

REPO = Path(__file__).resolve().parents[2]

@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """One small study run through `tuner run`, then continued by running it again."""
    folder = tmp_path_factory.mktemp("study")
    study_file = write_study(folder)
    storage = f"sqlite:///{folder}/optuna.db"
    tracking = f"sqlite:///{folder}/mlflow.db"
    first = invoke("run", str(study_file), "--storage", storage, "--tracking-uri", tracking)
    assert first.exit_code == 0, first.output
    after_first = len(optuna.load_study(study_name="small", storage=storage).trials)
    second = invoke("run", str(study_file), "--trials", "11", "--storage", storage, "--tracking-uri", tracking)
    assert second.exit_code == 0, second.output
    study = optuna.load_study(study_name="small", storage=storage)
    assert_no_failed_trials(study)
    return {"study": study, "tracking": tracking, "first": first.output, "second": second.output,
            "after_first": after_first, "storage": storage}


def test_running_again_continues_the_same_study(finished_study):
    assert finished_study["after_first"] == 8
    assert len(finished_study["study"].trials) == 11
    # the second run draws trials of its own (issue 18: it replayed trials 0-2 as 8-10)
    params = [repr(sorted(t.params.items())) for t in finished_study["study"].trials]
    assert len(set(params)) == len(params)
    assert "best trial" in finished_study["first"] and "test split" in finished_study["first"]


def test_the_printed_ui_hint_runs_as_printed(finished_study):
    """Issue 18: the summary said `tuner ui`, not found after `make tune` (the venv is not on
    PATH): the printed command runs in a shell with this process's PATH and folder."""
    import os
    import re

    from tests.tuner.test_hints import shell

    output = " ".join(finished_study["first"].split())  # rich wraps long lines
    command = re.search(r"browse it with `([^`]+)`", output).group(1)
    # the store the run used (not the one `tuner ui` opens by default), and the runs table's link
    assert command.endswith(f" ui --tracking-uri {finished_study['tracking']}")
    experiment = MlflowClient(finished_study["tracking"]).get_experiment_by_name("small").experiment_id
    assert f"then open http://127.0.0.1:5000/#/experiments/{experiment}/runs" in output
    done = shell(f"{command} --help", Path.cwd(), os.environ.get("PATH", ""))
    assert done.returncode == 0 and "MLflow UI" in done.stdout, (command, done.stderr)


def test_one_child_run_per_trial_with_params_curves_and_state(finished_study):
    study = finished_study["study"]
    client = MlflowClient(finished_study["tracking"])
    parents, children = child_runs(client, "small")
    assert len(parents) == 2  # one parent run per `tuner run`
    assert len(children) == len(study.trials)
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED"}  # pruned: told apart by its tag and name
    for trial in study.trials:
        run = by_number[trial.number]
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        assert run.info.run_name.split()[0] == f"trial-{trial.number}"
        assert run.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}
        assert run.data.tags["optuna.study_name"] == "small"
        assert run.info.status == status[trial.state.name]
        assert run.data.tags["optuna.state"] == trial.state.name
        for key, value in trial.params.items():
            assert run.data.params[key] == str(value)
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == sorted(trial.intermediate_values)
        assert [m.value for m in history] == pytest.approx([trial.intermediate_values[s] for s in sorted(trial.intermediate_values)])
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == len(history)
        assert run.data.metrics["n_params"] > 0 and run.data.metrics["train_seconds"] > 0


def test_models_are_logged_for_the_trials_that_improved_the_best(finished_study):
    study = finished_study["study"]
    client = MlflowClient(finished_study["tracking"])
    expected = set()
    for numbers in (range(0, 8), range(8, 11)):  # one `tuner run` each, each with its own best
        best = None
        for trial in (study.trials[n] for n in numbers):
            if trial.state == optuna.trial.TrialState.COMPLETE and (best is None or trial.value > best):
                best = trial.value
                expected.add(trial.number)
    logged = {
        t.number for t in study.trials
        if [a for a in client.list_artifacts(t.user_attrs["mlflow_run_id"]) if a.path == MODEL_ARTIFACT_DIR]
    }
    assert logged == expected and study.best_trial.number in logged


def test_pruned_trials_exist_and_stopped_early(finished_study):
    study = finished_study["study"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the median pruner should stop some trials of this study"
    client = MlflowClient(finished_study["tracking"])
    for trial in pruned:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert max(trial.intermediate_values) < 12
        assert run.data.metrics["pruned_epoch"] == max(trial.intermediate_values)
        assert "pruned" in run.data.tags["optuna.reason"]


def test_parent_run_holds_summary_and_artifacts(finished_study):
    study = finished_study["study"]
    client = MlflowClient(finished_study["tracking"])
    parents, _ = child_runs(client, "small")
    last = max(parents, key=lambda r: r.info.start_time)
    assert last.info.status == "FINISHED"
    assert last.data.metrics["study/best_value"] == pytest.approx(study.best_value)
    assert 0.5 < last.data.metrics["final/test_accuracy"] <= 1.0
    names = {a.path for a in client.list_artifacts(last.info.run_id)}
    assert {"optimization_history.png", "parallel_coordinate.png", "learning_curves.png", "trials.csv"} <= names


def test_status_lists_studies_and_trials(finished_study):
    listing = invoke("status", "--storage", finished_study["storage"])
    assert listing.exit_code == 0 and "small" in listing.output
    one = invoke("status", "small", "--storage", finished_study["storage"])
    assert one.exit_code == 0 and "complete" in one.output
    missing = invoke("status", "nope", "--storage", finished_study["storage"])
    assert missing.exit_code == 1 and "no study named 'nope'" in missing.output


@pytest.mark.parametrize(
    "text, expected",
    [
        ('name = "x"\n[data]\nsource = "sklearn:digits"\ncolour = "red"\n', "data.colour"),
        ('name = "x"\n[data]\nsource = "sklearn:digits"\n[space]\nlearning_rate = {low = 0.1, high = 0.01, log = true}\n', "space.learning_rate"),
        ('name = "x"\n[data]\nsource = "sklearn:digits"\n[objective]\nmetric = "rmse"\n', "objective.metric"),
        ('name = "x"\n[data]\nsource = "nowhere.csv"\ntarget = "y"\ntask = "classification"\n', "nowhere.csv"),
        ('name = "x"\n[data]\nsource = "sklearn:iris"\n[space]\nbatch_size = [32, 512]\n', "space.batch_size"),
    ],
    ids=["unknown-key", "low-above-high", "metric-task", "missing-data", "batch-too-large"],
)
def test_bad_study_files_get_one_clear_line(tmp_path, text, expected):
    """In this process: the error line on stderr and exit 1 (an unexpected exception would fail
    the test here); the test below runs one of them in a process of its own."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    result = invoke("run", str(path), "--storage", f"sqlite:///{tmp_path}/o.db",
                    "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert not (tmp_path / "o.db").exists() or optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/o.db") == []


def test_a_bad_study_file_gets_one_clear_line_from_the_command(tmp_path):
    """The same in a process of its own: its whole output, no traceback."""
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[data]\nsource = "sklearn:digits"\ncolour = "red"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.cli.app", "run", str(path), "--storage", f"sqlite:///{tmp_path}/o.db",
         "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 1
    assert "data.colour" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "o.db").exists() or optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/o.db") == []


@pytest.mark.parametrize("source", ["sklearn:iris", "small.csv"])
def test_a_default_study_runs_on_small_data(tmp_path, source):
    """Issue 11: a study file that sets only its data, on iris (150 rows) and on a 150-row CSV
    with a text column and missing values, runs with the default space (fitted to the data: no
    batch size larger than the training rows) and ends with a final model and its test scores.
    Four trials instead of the default 40, to keep the suite short: the space is the default."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    data = ""
    if source.endswith(".csv"):
        X, y = make_classification(n_samples=150, n_features=5, n_informative=3, n_classes=3, random_state=0)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
        frame["colour"] = np.array(["red", "green", "blue"])[np.arange(150) % 3]
        frame.loc[::7, "x1"] = np.nan
        frame["label"] = y
        frame.to_csv(tmp_path / source, index=False)
        data = 'target = "label"\ntask = "classification"\n'
    (tmp_path / "s.toml").write_text(f'name = "small_default"\n[data]\nsource = "{source}"\n{data}')
    storage = f"sqlite:///{tmp_path}/o.db"
    ran = invoke("run", str(tmp_path / "s.toml"), "--trials", "4", "--storage", storage,
                 "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert ran.exit_code == 0, ran.output
    study = optuna.load_study(study_name="small_default", storage=storage)
    assert_no_failed_trials(study)
    assert len(study.trials) == 4
    # 150 rows, 90 of them training rows: no batch larger (a value the fitted space fixes is a
    # trial user attribute, a drawn one a parameter)
    sizes = [t.params.get("batch_size", t.user_attrs.get("batch_size")) for t in study.trials]
    assert all(size is not None and size <= 90 for size in sizes), sizes
    assert 0 < study.user_attrs["test_scores"]["accuracy"] <= 1
    assert "test split (scored once): final model accuracy" in " ".join(ran.output.split())
