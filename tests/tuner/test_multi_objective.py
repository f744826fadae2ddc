"""Issue 14, multi-objective studies (tuner/search/pareto.py): ``[objective] metrics = [...]``, the
Pareto front on the MLflow parent run and tagged on its child runs, the final model and export.

The study trades accuracy against ``n_params``, which is deterministic, so that the front can be
checked exactly against the non-dominated set computed here from the trials' stored values."""

from __future__ import annotations

import csv

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

from tests.helpers import assert_no_failed_trials, child_runs, invoke
from tuner.study.config import StudyConfig, config_from_settings, load_config
from tuner.search.costs import trial_costs
from tuner.data.loading import load_splits
from tuner.errors import ConfigError
from tuner.study.definition import FINAL_ATTR
from tuner.search.objective import Objective
from tuner.tracking import TAG_TRIAL
from tuner.search.pareto import FRONT_CSV, FRONT_PNG, FRONT_TAG, primary_trial

# The module-scoped study runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("multi_objective")

#: Digits, one hidden layer of 2 to 48 units: the networks' sizes differ and so does their accuracy.
PARETO = """
name = "{name}"
seed = 0

[data]
source = "sklearn:digits"

[objective]
metrics = ["accuracy", "n_params"]
validation_splits = 1

[budget]
n_trials = 8
max_epochs = 6

[result]
start_from_defaults = false

[space]
n_layers = 1
units = {{low = 2, high = 48, log = true}}
activation = "relu"
optimizer = "adam"
learning_rate = 0.01
batch_size = 64
lr_schedule = "constant"
dropout = false
l2 = false
"""


def non_dominated(trials) -> set[int]:
    """The numbers of the trials no other trial beats on both accuracy (up) and n_params (down)."""
    def beats(u, t) -> bool:
        (au, nu), (at, nt) = u.values, t.values
        return au >= at and nu <= nt and (au > at or nu < nt)

    return {t.number for t in trials if not any(beats(u, t) for u in trials if u is not t)}


@pytest.fixture(scope="module")
def pareto(tmp_path_factory):
    """The multi-objective study run through `tuner run`."""
    folder = tmp_path_factory.mktemp("pareto")
    study_file = folder / "pareto.toml"
    study_file.write_text(PARETO.format(name="pareto"))
    stores = ["--storage", f"sqlite:///{folder}/o.db", "--tracking-uri", f"sqlite:///{folder}/m.db"]
    ran = invoke("run", str(study_file), *stores)
    assert ran.exit_code == 0, ran.output
    study = optuna.load_study(study_name="pareto", storage=stores[1])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    client = MlflowClient(stores[3])
    parents, children = child_runs(client, "pareto")
    return {"folder": folder, "file": study_file, "stores": stores, "study": study, "complete": complete,
            "output": ran.output, "client": client, "parent": parents, "children": children}


def test_the_study_is_multi_objective_and_its_front_is_the_non_dominated_set(pareto):
    study, complete = pareto["study"], pareto["complete"]
    assert_no_failed_trials(study)
    assert len(complete) == 8  # no pruning: every trial completes
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    for t in complete:
        assert t.values[1] == trial_costs(t)["n_params"]  # the second objective is the measured cost
    front = {t.number for t in study.best_trials}
    assert front == non_dominated(complete)
    assert len({t.values[1] for t in complete}) > 1  # sizes differ: the front is not trivially one trial

    primary = primary_trial(study)
    top = max(t.values[0] for t in complete)
    assert primary.values[0] == top and primary.number == min(t.number for t in study.best_trials if t.values[0] == top)
    output = " ".join(pareto["output"].split())
    assert f"Pareto front: {len(front)} trials" in output
    assert f"primary trial (the front's best on its metric) {primary.number}:" in output


def test_the_parent_run_holds_the_front_as_a_plot_and_a_table(pareto, tmp_path):
    study, client = pareto["study"], pareto["client"]
    [parent] = pareto["parent"]
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {FRONT_PNG, FRONT_CSV, "trials.csv"} <= names
    path = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path=FRONT_CSV,
                                               dst_path=str(tmp_path), tracking_uri=pareto["stores"][3])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["trial", "accuracy", "n_params", "run_id"]
    by_number = {t.number: t for t in study.best_trials}
    assert sorted(int(r["trial"]) for r in rows) == sorted(by_number)
    runs = {int(r.data.tags[TAG_TRIAL]): r.info.run_id for r in pareto["children"]}
    for row in rows:
        trial = by_number[int(row["trial"])]
        assert [float(row["accuracy"]), float(row["n_params"])] == pytest.approx(trial.values)
        assert row["run_id"] == runs[trial.number]
    assert parent.data.metrics["study/n_pareto_front"] == len(by_number)
    assert parent.data.tags["best_trial_number"] == str(primary_trial(study).number)


def test_child_runs_on_the_front_are_tagged_and_the_others_not(pareto):
    front = {t.number for t in pareto["study"].best_trials}
    tagged = {int(r.data.tags[TAG_TRIAL]) for r in pareto["children"] if r.data.tags.get(FRONT_TAG) == "true"}
    assert tagged == front
    assert all(FRONT_TAG not in r.data.tags for r in pareto["children"] if int(r.data.tags[TAG_TRIAL]) not in front)
    # The filter a user types in the UI finds the same runs.
    experiment = pareto["client"].get_experiment_by_name("pareto").experiment_id
    found = pareto["client"].search_runs([experiment], filter_string=f"tags.{FRONT_TAG} = 'true'")
    assert {int(r.data.tags[TAG_TRIAL]) for r in found} == front


def test_sync_puts_the_front_tags_right_again(pareto):
    client, children = pareto["client"], pareto["children"]
    front = {t.number for t in pareto["study"].best_trials}
    runs = {int(r.data.tags[TAG_TRIAL]): r.info.run_id for r in children}
    on, off = min(front), min(set(runs) - front)
    client.delete_tag(runs[on], FRONT_TAG)
    client.set_tag(runs[off], FRONT_TAG, "true")
    synced = invoke("sync", "pareto", *pareto["stores"])
    assert synced.exit_code == 0, synced.output
    assert client.get_run(runs[on]).data.tags.get(FRONT_TAG) == "true"
    assert FRONT_TAG not in client.get_run(runs[off]).data.tags

    # A front trial whose run was lost is logged again by sync, from Optuna, and tagged.
    lost = max(front)
    client.delete_run(runs[lost])
    synced = invoke("sync", "pareto", *pareto["stores"])
    assert synced.exit_code == 0, synced.output
    assert "logged 1 missing" in synced.output
    experiment = client.get_experiment_by_name("pareto").experiment_id
    again = client.search_runs([experiment], filter_string=f"tags.`{TAG_TRIAL}` = '{lost}'")
    assert [r.data.tags.get(FRONT_TAG) for r in again] == ["true"] and again[0].info.run_id != runs[lost]


def test_the_final_model_is_the_primary_trial_alone_with_one_seed(pareto):
    final = pareto["study"].user_attrs[FINAL_ATTR]
    assert final["members"] == {str(primary_trial(pareto["study"]).number): 1}
    assert final["seeds"] == 1  # the study file leaves [result] seeds and ensemble at 3 and 5


def test_status_shows_the_front(pareto):
    status = invoke("status", "pareto", "--storage", pareto["stores"][1])
    assert status.exit_code == 0, status.output
    assert f"Pareto front: {len(pareto['study'].best_trials)} trials" in status.output


def test_export_picks_the_primary_trial_and_where_the_most_accurate_meeting_it(pareto):
    study, complete = pareto["study"], pareto["complete"]
    primary = primary_trial(study)
    out = pareto["folder"] / "export"
    result = invoke("export", "pareto", "--out", str(out), *pareto["stores"])
    assert result.exit_code == 0, result.output
    meta = mlflow.models.Model.load(str(out)).metadata
    assert meta["trial"] == primary.number and meta["members"] == {str(primary.number): 1}
    assert meta["objective"]["metrics"] == pytest.approx({"accuracy": primary.values[0], "n_params": primary.values[1]})

    # A bound below the primary trial's size: the most accurate trial that meets it.
    bound = primary.values[1] - 1
    meeting = [t for t in complete if t.values[1] <= bound]
    assert meeting, "the smallest network is the most accurate: widen the space"
    expected = min(meeting, key=lambda t: (-t.values[0], t.number))
    out = pareto["folder"] / "where"
    result = invoke("export", "pareto", "--out", str(out), "--where", f"n_params <= {bound:g}", *pareto["stores"])
    assert result.exit_code == 0, result.output
    assert mlflow.models.Model.load(str(out)).metadata["trial"] == expected.number


def test_a_validation_metric_as_second_objective_is_scored_and_nothing_is_pruned():
    raw = {"name": "o", "data": {"source": "sklearn:iris"},
           "objective": {"metrics": ["accuracy", "log_loss"], "validation_splits": 1},
           "budget": {"n_trials": 2, "max_epochs": 3}, "space": {"n_layers": 1, "units": 8}}
    config = StudyConfig.model_validate(raw)
    splits = load_splits(config)
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    study = optuna.create_study(directions=config.directions)
    study.optimize(Objective(config, splits, None), n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.directions[1] == optuna.study.StudyDirection.MINIMIZE
    for t in study.trials:
        assert 0 < t.values[1] < 5 and t.values[1] != t.values[0] and not t.intermediate_values


@pytest.mark.parametrize(
    ("objective", "pruner", "message"),
    [
        ('metrics = ["accuracy", "latency"]', "", "objective.metrics: unknown 'latency'"),
        ('metrics = ["accuracy", "size_kb", "size_kb"]', "", "'size_kb' named twice"),
        ('metrics = ["size_kb", "accuracy"]', "", "the first must be a validation metric, not the cost 'size_kb'"),
        ('metrics = ["accuracy", "size_kb", "n_params", "log_loss"]', "", "give 2 to 3 names (got 4)"),
        ('metrics = ["accuracy"]', "", "give 2 to 3 names (got 1)"),
        ('metrics = ["accuracy", "rmse"]', "", "'rmse' do(es) not fit a classification task"),
        ('metric = "accuracy"\nmetrics = ["accuracy", "n_params"]', "", "give either metric or metrics"),
        ('metrics = ["accuracy", "n_params"]', '[pruner]\nname = "median"\n',
         "pruner.name: 'median': Optuna's pruners do not support a multi-objective study"),
    ],
)
def test_bad_metrics_get_one_line_naming_the_key(tmp_path, objective, pruner, message):
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\n{objective}\n{pruner}')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_multi_objective_config_round_trips_and_leaves_pruning_off(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\nmetrics = ["accuracy", "latency_ms_row"]\n')
    config = load_config(path)
    assert (config.metric, config.objectives, config.directions) == (
        "accuracy", ["accuracy", "latency_ms_row"], ["maximize", "minimize"])
    assert config.pruner.name == "none" and config.multi_objective
    again = config.with_overrides(n_trials=3)
    assert again.objectives == config.objectives and again.budget.n_trials == 3
    stored = config_from_settings(config.file_settings(), "stored")  # as `tuner export NAME` reads it
    assert stored.objectives == config.objectives and stored.pruner.name == "none"


def test_the_same_study_with_one_metric_is_refused(pareto, tmp_path):
    """The objectives define the study (tuner/study/definition.py): resuming it with `metric` alone
    would rank its trials by another rule."""
    single = tmp_path / "pareto.toml"
    single.write_text(pareto["file"].read_text().replace('metrics = ["accuracy", "n_params"]', 'metric = "accuracy"'))
    result = invoke("run", str(single), *pareto["stores"])
    assert result.exit_code == 1
    assert "objective.metrics was ['accuracy', 'n_params'], now None" in " ".join(result.output.split())
    assert len(optuna.load_study(study_name="pareto", storage=pareto["stores"][1]).trials) == 8
