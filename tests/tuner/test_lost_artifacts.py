"""A run that lost its artifacts does not look complete (issue 12, case 7): with the artifact
location unwritable, tuning goes on, the improving trial's run is tagged ``tuner.missing =
model`` and the parent run ``plots, trials.csv``; ``tuner sync`` exits 1 with one line while the
store still refuses them, and logs them (the model trained again from the trial's parameters and
seed) and removes the tags once it takes them."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.helpers import child_runs, invoke

STUDY = """
name = "lost"
seed = 0
[data]
source = "sklearn:iris"
[budget]
n_trials = 3
max_epochs = 3
[pruner]
name = "none"
[result]
ensemble = 1
[space]
n_layers = 1
units = {low = 4, high = 16}
"""

pytestmark = pytest.mark.filterwarnings("ignore::tuner.tracking.TrackingWarning")


def test_lost_artifacts_are_tagged_and_sync_logs_them_once_the_store_takes_them(tmp_path):
    import optuna

    from tuner.study import metrics
    from tuner.study.config import load_config
    from tuner.data.loading import load_splits
    from tuner.tracking import StudyTracker

    study_file = tmp_path / "lost.toml"
    study_file.write_text(STUDY)
    # A SQLite store keeps artifacts in mlartifacts/ beside it: a file there, and no run can
    # store any (root ignores permission bits, so a file is what stops it).
    blocker = tmp_path / "mlartifacts"
    blocker.write_text("")
    storage, tracking = f"sqlite:///{tmp_path}/o.db", f"sqlite:///{tmp_path}/mlflow.db"
    stores = ("--storage", storage, "--tracking-uri", tracking)

    ran = invoke("run", str(study_file), *stores)
    assert ran.exit_code == 0, ran.output  # tuning went on
    client = MlflowClient(tracking)
    (parent,), children = child_runs(client, "lost")
    study = optuna.load_study(study_name="lost", storage=storage)
    first = min(t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    tagged = {int(r.data.tags["optuna.trial_number"]): r for r in children if "tuner.missing" in r.data.tags}
    assert first in tagged  # the first completed trial improves: its model was to be logged
    assert {r.data.tags["tuner.missing"] for r in tagged.values()} == {"model"}
    assert parent.data.tags.get("tuner.missing") == "plots, trials.csv"

    refused = invoke("sync", "lost", *stores)
    assert refused.exit_code == 1, refused.output
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"model of trial {first}" in errors[0] and "Not a directory" in errors[0], refused.output
    assert "Traceback" not in refused.output
    assert "tuner.missing" in client.get_run(parent.info.run_id).data.tags  # nothing cleared

    blocker.unlink()
    synced = invoke("sync", "lost", *stores)
    assert synced.exit_code == 0, synced.output
    assert f"logged missing artifacts: model of trial {first}" in synced.output
    assert f"plots, trials.csv of run {parent.info.run_name}" in synced.output
    for run in [parent, *tagged.values()]:
        assert "tuner.missing" not in client.get_run(run.info.run_id).data.tags
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "optimization_history.png", "learning_curves.png"} <= logged, logged
    # The model logged is the one the trial trained: trained again, it scores what the trial
    # scored on the study's validation split (the first of its splits: iris is small).
    config = load_config(study_file)
    splits = load_splits(config)
    tracker = StudyTracker("lost", storage, tracking_uri=tracking)
    for number, run in tagged.items():
        model = tracker.load_model(run.info.run_id)
        score = metrics.score_model(config.metric, model.steps[-1][1], splits.Xt_val, splits.y_val)
        trial = study.trials[number]
        assert score == trial.user_attrs.get("split_values", [trial.value])[0]

    again = invoke("sync", "lost", *stores)
    assert again.exit_code == 0 and "missing artifacts" not in again.output, again.output
