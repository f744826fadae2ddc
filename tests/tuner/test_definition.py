"""Issue 12, case 1: a study file changed in what defines the study is refused on resume (and on
export), with one line naming what changed; budget, sampler, pruner and [result] may change."""

from __future__ import annotations

import pytest

from tests.helpers import assert_no_failed_trials
from tuner import runner
from tuner.study.config import StudyConfig
from tuner.study.definition import DEFINITION_ATTR
from tuner.errors import TunerError
from tuner.result.export import export_study
from tuner.storage.storages import open_storage

BASE = {"name": "d", "data": {"source": "sklearn:iris"}, "budget": {"n_trials": 2, "max_epochs": 4},
        "pruner": {"name": "none"}, "result": {"ensemble": 1, "refit": False}}


def _config(**changes) -> StudyConfig:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[section] = value
    return StudyConfig.model_validate(raw)


# One study for the module, on one test worker: the refused runs leave it untouched, the last two
# tests change it.
pytestmark = pytest.mark.xdist_group("definition")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("definition")
    storage, tracking = f"sqlite:///{tmp_path}/o.db", f"sqlite:///{tmp_path}/m.db"
    assert_no_failed_trials(runner.run_study(_config(), storage=storage, tracking_uri=tracking).study)
    return storage, tracking


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"objective": {"metric": "log_loss"}}, "objective.metric was 'accuracy', now 'log_loss'"),
        ({"space": {"activation": ["tanh"]}}, "space.activation was"),
        ({"seed": 1}, "seed was 0, now 1"),
        ({"data__test_fraction": 0.3}, "data.test_fraction was 0.2, now 0.3"),
        ({"budget__max_epochs": 9}, "budget.max_epochs was 4, now 9"),
        ({"budget__epoch_rows": 30}, "budget.epoch_rows was None, now 30"),
        ({"objective": {"validation_splits": 2}}, "objective.validation_splits was 5, now 2"),
    ],
)
def test_a_changed_definition_is_refused_and_the_study_is_untouched(stores, changes, named):
    storage, tracking = stores
    before = [(t.number, t.state, t.value) for t in open_storage(storage).get_all_trials(1)]
    with pytest.raises(TunerError, match="already exists in this storage with other settings") as err:
        runner.run_study(_config(**changes), storage=storage, tracking_uri=tracking, n_trials=4)
    assert named in str(err.value) and "\n" not in str(err.value)
    assert [(t.number, t.state, t.value) for t in open_storage(storage).get_all_trials(1)] == before


def test_export_refuses_a_changed_study_file(stores, tmp_path):
    storage, tracking = stores
    with pytest.raises(TunerError, match="space.units was"):
        export_study(_config(space={"units": {"low": 4, "high": 8}}), out=tmp_path / "x", log=False,
                     storage=storage, tracking_uri=tracking)


def test_export_by_name_from_another_folder_uses_the_settings_stored_with_the_study(stores, tmp_path, monkeypatch):
    """Issue 15: `tuner export NAME --storage URL` where no study file is at hand."""
    import optuna

    from tuner.study.config import config_from_settings
    from tuner.study.definition import STUDY_FILE_ATTR

    storage, tracking = stores
    stored = optuna.load_study(study_name="d", storage=storage).user_attrs[STUDY_FILE_ATTR]
    assert config_from_settings(stored, "stored").model_dump() == _config().model_dump()
    monkeypatch.chdir(tmp_path)  # no d.toml here, no studies/ folder
    result = export_study("d", out=tmp_path / "by-name", log=False, storage=storage, tracking_uri=tracking)
    assert result.study_name == "d" and (tmp_path / "by-name" / "MLmodel").is_file()
    assert set(result.test_scores) >= {"accuracy"}
    with pytest.raises(TunerError, match="no study named 'other'"):
        export_study("other", out=tmp_path / "x", log=False, storage=storage, tracking_uri=tracking)
    from tests.helpers import invoke

    shown = invoke("status", "d", "--storage", storage)  # status by name, from the same folder
    assert shown.exit_code == 0, shown.output
    assert f"best trial {optuna.load_study(study_name='d', storage=storage).best_trial.number}:" in shown.output


def test_budget_sampler_pruner_and_result_may_change(stores):
    storage, tracking = stores
    changed = _config(budget={"n_trials": 3, "max_epochs": 4}, sampler={"name": "random"},
                      pruner={"name": "median"}, result={"ensemble": 2})
    result = runner.run_study(changed, storage=storage, tracking_uri=tracking)
    assert len(result.study.trials) == 3
    assert_no_failed_trials(result.study)


def test_a_study_from_before_definitions_is_checked_on_its_metric(stores):
    storage, tracking = stores
    import optuna

    study = optuna.load_study(study_name="d", storage=storage)
    study._storage.set_study_user_attr(study._study_id, DEFINITION_ATTR, None)  # as an old study
    study = optuna.load_study(study_name="d", storage=storage)
    assert study.user_attrs.get(DEFINITION_ATTR) is None and study.user_attrs["metric"] == "accuracy"
    with pytest.raises(TunerError, match="objective.metric was 'accuracy', now 'f1_macro'"):
        runner.run_study(_config(objective={"metric": "f1_macro"}), storage=storage, tracking_uri=tracking)
    runner.run_study(_config(), storage=storage, tracking_uri=tracking, n_trials=3)  # same metric: adopted
    assert optuna.load_study(study_name="d", storage=storage).user_attrs[DEFINITION_ATTR]["seed"] == 0


@pytest.mark.parametrize("form", ["userinfo", "query", "environment"])
def test_no_command_prints_or_records_a_database_password(make_postgres_db, tmp_path, form, capfd, caplog):
    """The storage URL's password never reaches the output nor the MLflow record, whether it is
    in the URL's user part, in a query parameter, or the URL comes from $TUNER_STORAGE
    (PostgreSQL here trusts local connections, so any password connects). With the password in
    the user part, each command runs in a process of its own, whose every written byte is read
    (log handlers, warnings at exit); the other forms differ in how the URL is given and redacted,
    and run in this process: the command's output, this process's file descriptors and its log
    records are read."""
    import os
    import subprocess
    import sys

    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from tests.helpers import cli_env
    from tuner.cli.app import app

    url = make_postgres_db()
    url = url + "?password=s3cr3t" if form == "query" else url.replace("postgres@", "postgres:s3cr3t@", 1)
    shown = "postgresql+psycopg://postgres@" if form == "query" else "postgresql+psycopg://postgres:***@"
    study = tmp_path / "pw.toml"
    study.write_text('name = "pw"\n[data]\nsource = "sklearn:iris"\n[budget]\nn_trials = 1\nmax_epochs = 2\n'
                     '[result]\nensemble = 1\nrefit = false\n')
    tracking = f"sqlite:///{tmp_path}/m.db"
    missing_db = url.replace("/" + url.rsplit("/", 1)[1].split("?")[0], "/no_such_db")
    outputs = []
    for args, storage in ((["status"], url), (["worker", str(study)], url), (["status"], url), (["status"], missing_db)):
        env = {"MLFLOW_TRACKING_URI": tracking, "TUNER_STORAGE": None, "MLFLOW_RUN_ID": None}
        if form == "environment":
            env["TUNER_STORAGE"] = storage
        else:
            args = [*args, "--storage", storage]
        if form == "userinfo":
            proc = subprocess.run([sys.executable, "-m", "tuner.cli.app", *args], capture_output=True, text=True,
                                  env=cli_env(MLFLOW_TRACKING_URI=tracking), cwd=tmp_path, timeout=300)
            outputs.append(proc.stdout + proc.stderr)
        else:
            result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
            written = capfd.readouterr()
            outputs.append(result.output + written.out + written.err + caplog.text)
            caplog.clear()
    assert f"no studies in {shown}" in outputs[0]
    assert f"worker joining study 'pw' on {shown}" in outputs[1]
    assert "pw" in outputs[2] and "cannot open the study storage" in outputs[3]
    assert not [o for o in outputs if "s3cr3t" in o], outputs
    assert os.environ.get("PGPASSWORD") != "s3cr3t" and "s3cr3t" not in os.environ.get("TUNER_STORAGE", "")
    client = MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs and not [r for r in runs if "s3cr3t" in repr((r.data.params, r.data.tags))]
    experiments = client.search_experiments()
    assert not [e for e in experiments if "s3cr3t" in repr((e.name, e.tags))]


def test_a_study_whose_every_trial_failed_starts_again_with_the_changed_file(tmp_path):
    """Bad data fails every trial; the corrected study file (another data fingerprint, here
    another seed's split) is not refused for differing from it: the study starts again. A study
    with a trial that did not fail is still refused."""
    import optuna

    from tuner.data.loading import load_splits
    from tuner.study.definition import study_definition

    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    first, fixed = _config(), _config(seed=1)
    study = runner.create_study(first, storage, definition=study_definition(first, load_splits(first)))
    for trial in study.get_trials(deepcopy=False):
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    lines = []
    definition = study_definition(fixed, load_splits(fixed))
    again = runner.create_study(fixed, storage, definition=definition, notify=lines.append)
    assert again.user_attrs[DEFINITION_ATTR] == definition
    assert [t.state for t in again.get_trials(deepcopy=False)] == [optuna.trial.TrialState.WAITING]
    assert len(lines) == 1 and "started again: its 1 trial(s) all failed" in lines[0]

    again.tell(again.ask(), 0.5)
    with pytest.raises(TunerError, match="already exists in this storage with other settings"):
        runner.create_study(first, storage, definition=study_definition(first, load_splits(first)))


def test_a_study_stored_before_epoch_rows_was_defined_counts_as_one_pass_an_epoch():
    """A definition stored without ``budget.epoch_rows`` is read as None (one pass an epoch): the
    same study file resumes, one that sets epoch_rows is refused."""
    import optuna

    from tuner.study.definition import check_definition

    study = optuna.create_study()
    study.set_user_attr(DEFINITION_ATTR, {"seed": 0, "budget.max_epochs": 4})
    study.enqueue_trial({})
    check_definition(study, {"seed": 0, "budget.max_epochs": 4, "budget.epoch_rows": None}, "d.toml")
    with pytest.raises(TunerError, match=r"\(budget.epoch_rows was None, now 30\)"):
        check_definition(study, {"seed": 0, "budget.max_epochs": 4, "budget.epoch_rows": 30}, "d.toml")
