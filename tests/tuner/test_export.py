"""`tuner export`: a small CSV study (categorical column, missing values, string labels) exported
as an MLflow pyfunc model, loaded back, served over HTTP, refitted and registered.

The study runs once per module; the whole file takes about a minute (the model server alone
needs 10-30 s to start).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import Model
from typer.testing import CliRunner

import model
from model.serialization import ModelFileError, read_header
from tests.helpers import assert_no_failed_trials, http_status, post_json, wait_until
from tuner.cli.app import app
from tuner.study.config import load_config
from tuner.data.loading import load_splits
from tuner.data.loading import fingerprint
from tuner.result.export import check_no_pickle, export_study, resolve_config, write_model_folder
from tuner.search.trial_model import trial_epochs
from tuner.study import metrics
from tuner import runner
from tuner.result.final import DEFAULTS_MEMBER, member_name, member_number
from tuner.tracking import StudyTracker

# The module-scoped fixture runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("export")

REPO = Path(__file__).resolve().parents[2]
CSV = REPO / "data" / "wine_mixed.csv"
STUDY = """
name = "wine_export"
seed = 1

[data]
source = "{csv}"
target = "cultivar"
task = "classification"
missing = "impute"

[objective]
metric = "f1_macro"

[budget]
n_trials = 4
max_epochs = 10

[space]
n_layers = 1
units = {{low = 8, high = 24}}
batch_size = [16, 32]
"""
REGISTERED = "wine-export-test"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A finished four-trial study, its final model exported (logged) and two exports of its best
    trial: the model the trial trained (logged and registered, through the API) and a refit
    (logged, through the CLI)."""
    folder = tmp_path_factory.mktemp("export")
    study_file = folder / "wine_export.toml"
    study_file.write_text(STUDY.format(csv=CSV.as_posix()))
    storage = f"sqlite:///{folder}/optuna.db"
    tracking = f"sqlite:///{folder}/mlflow.db"
    result = runner.run_study(study_file, storage=storage, tracking_uri=tracking)
    assert_no_failed_trials(result.study)
    config = load_config(study_file)
    exported = export_study(
        study_file, out=folder / "exports" / "best", register_as=REGISTERED, best=True,
        storage=storage, tracking_uri=tracking,
    )
    final = export_study(study_file, out=folder / "exports" / "final", storage=storage, tracking_uri=tracking)
    refit_dir = folder / "exports" / "refit"
    cli = CliRunner().invoke(
        app,
        ["export", str(study_file), "--refit", "--out", str(refit_dir),
         "--storage", storage, "--tracking-uri", tracking],
        catch_exceptions=False,
    )
    assert cli.exit_code == 0, cli.output
    return {
        "folder": folder, "study": result.study, "config": config, "splits": load_splits(config),
        "exported": exported, "final": final, "result": result, "refit_dir": refit_dir, "refit_output": cli.output,
        "storage": storage, "tracking": tracking,
    }


def raw_test_rows(env) -> pd.DataFrame:
    X = env["splits"].X_test
    assert X.isna().any(axis=None), "the test rows should hold missing values"
    assert X["alcohol_level"].dtype.kind not in "fiu", "alcohol_level should be categorical"
    return X


def test_pyfunc_predicts_raw_rows_like_the_trial_model(env):
    exported, X = env["exported"], raw_test_rows(env)
    best = env["study"].best_trial
    assert exported.trial_number == best.number and exported.source == "trial"
    tracker = StudyTracker("wine_export", env["storage"], tracking_uri=env["tracking"])
    trained = tracker.load_model(best.user_attrs["mlflow_run_id"])  # what the trial trained

    pyfunc = mlflow.pyfunc.load_model(str(exported.path))
    labels = pyfunc.predict(X)
    assert set(labels) <= set(env["splits"].classes)
    np.testing.assert_array_equal(labels, trained.predict(X))
    np.testing.assert_array_equal(labels, model.load(exported.path).predict(X))  # no MLflow

    proba = pyfunc.predict(X, params={"predict_proba": True})
    assert isinstance(proba, pd.DataFrame)
    assert list(proba.columns) == list(env["splits"].classes)
    np.testing.assert_array_equal(proba.to_numpy(), trained.predict_proba(X))


def test_metadata_signature_and_layout(env):
    exported, best = env["exported"], env["study"].best_trial
    path = exported.path
    mlmodel = Model.load(str(path))
    meta = mlmodel.metadata
    assert meta["study"] == "wine_export" and meta["trial"] == best.number
    assert meta["hyperparameters"] == best.params
    assert meta["validation_score"] == pytest.approx(best.value)
    assert set(meta["test_scores"]) == {"accuracy", "log_loss", "f1_macro"}
    splits = env["splits"]
    assert meta["data_fingerprint"] == splits.fingerprint == fingerprint(splits.X_train, splits.y_train)
    assert meta["seed"] == env["config"].seed + best.number
    assert {"numpy", "mlflow", "scikit-learn", "pandas"} <= set(meta["package_versions"])
    assert read_header(path)["metadata"]["trial"] == best.number  # also inside model.npz
    assert mlmodel.run_id == exported.run_id and mlmodel.model_id == exported.model_id

    inputs = {c.name: repr(c.type) for c in mlmodel.signature.inputs.inputs}
    assert list(inputs) == list(env["splits"].X_train.columns) and set(inputs.values()) == {"Any"}
    assert [p.name for p in mlmodel.signature.params.params] == ["predict_proba"]
    assert (path / "input_example.json").is_file()
    pyfunc_conf = mlmodel.flavors["python_function"]
    assert pyfunc_conf["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert pyfunc_conf["artifacts"]["model"]["path"] == "model.npz"
    assert (path / "model.npz").is_file() and (path / "pyfunc_model.py").is_file()
    assert not (path / "artifacts").exists()


def test_no_pickle_in_the_exported_folder(env, tmp_path):
    path = env["exported"].path
    files = [p for p in path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle") or p.name == "python_model.pkl"]
    for file in files:
        data = file.read_bytes()
        assert not data.startswith((b"\x80\x04", b"\x80\x05")), file
        if file.suffix != ".npz":  # npz: float bytes may contain anything; members checked below
            assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data, file
    with np.load(path / "model.npz", allow_pickle=False) as npz:  # raises for object arrays
        assert all(npz[name].dtype != object for name in npz.files)
    assert check_no_pickle(path) == []
    # the checker does see a pickle
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    import pickle

    (copy / "python_model.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=5))
    assert check_no_pickle(copy)


def test_missing_column_and_wrong_type_name_the_column(env):
    pyfunc = mlflow.pyfunc.load_model(str(env["exported"].path))
    X = raw_test_rows(env).head(4)
    with pytest.raises(mlflow.exceptions.MlflowException, match="missing column.*'hue'"):
        pyfunc.predict(X.drop(columns=["hue"]))
    with pytest.raises(mlflow.exceptions.MlflowException, match="alcohol_level"):
        pyfunc.predict(X.drop(columns=["alcohol_level"]))
    bad = X.astype({"ash": object})
    bad.loc[bad.index[0], "ash"] = "lots"
    with pytest.raises(mlflow.exceptions.MlflowException, match="column 'ash' should be numeric but holds 'lots'"):
        pyfunc.predict(bad)


def test_tampered_weights_are_refused(env, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(env["exported"].path, copy)
    with np.load(copy / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["coef_0"] = arrays["coef_0"] + np.float32(0.01)
    with open(copy / "model.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(ModelFileError, match="changed after saving"):
        model.load(copy)
    with pytest.raises(Exception, match="'coef_0' was changed after saving"):
        mlflow.pyfunc.load_model(str(copy))


def test_refit_records_a_test_score_that_is_measured(env):
    path, config, splits = env["refit_dir"], env["config"], env["splits"]
    assert "refitted" in env["refit_output"]
    meta = Model.load(str(path)).metadata
    assert meta["source"] == "refit" and meta["trained_on"] == "train+validation"
    refitted = model.load(path)
    recomputed = metrics.test_scores(splits, refitted)
    assert meta["test_scores"] == pytest.approx(recomputed, abs=1e-12)
    best = env["study"].best_trial
    tracker = StudyTracker("wine_export", env["storage"], tracking_uri=env["tracking"])
    epochs = trial_epochs(tracker.load_model(best.user_attrs["mlflow_run_id"]).steps[-1][1])
    assert meta["epochs"] == epochs == refitted.steps[-1][1].n_iter_
    X_all = pd.concat([splits.X_train, splits.X_val])
    y_all = np.concatenate([splits.y_train, splits.y_val])
    assert meta["data_fingerprint"] == fingerprint(X_all, y_all)  # train + validation
    X = raw_test_rows(env)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(str(path)).predict(X), refitted.predict(X))


def test_register_creates_a_tagged_version_with_alias_champion(env, monkeypatch):
    exported = env["exported"]
    client = MlflowClient(tracking_uri=env["tracking"])
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert str(version.version) == exported.registered_version
    assert version.tags["tuner.study"] == "wine_export"
    assert version.tags["tuner.trial"] == str(exported.trial_number)
    assert version.tags["tuner.model_id"] == exported.model_id
    logged = client.get_logged_model(exported.model_id)
    assert version.source == logged.artifact_location and version.run_id == exported.run_id
    assert logged.source_run_id == exported.run_id and logged.status == "READY"
    parent = client.get_run(exported.run_id)
    assert parent.data.tags["tuner.role"] == "parent"
    assert parent.info.status == "FINISHED"
    # the alias resolves to a loadable model (through the environment: no global MLflow state)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["tracking"])
    champion = mlflow.pyfunc.load_model(f"models:/{REGISTERED}@champion")
    X = raw_test_rows(env)
    np.testing.assert_array_equal(champion.predict(X), model.load(exported.path).predict(X))


def test_cli_exports_and_registers_the_trial_it_is_given(env, tmp_path):
    """`tuner export STUDY --trial N --register NAME` through the command line: the folder holds
    trial N's model, a new registered version tagged with trial N carries the alias champion."""
    study = env["study"]
    others = [t.number for t in study.trials if t.state.name == "COMPLETE" and t.number != study.best_trial.number]
    number = min(others or [study.best_trial.number])  # another trial than the fixture's, if there is one
    out, name = tmp_path / "trial", "wine-export-cli"
    cli = CliRunner().invoke(
        app, ["export", str(env["folder"] / "wine_export.toml"), "--trial", str(number), "--register", name,
              "--out", str(out), "--storage", env["storage"], "--tracking-uri", env["tracking"]],
        catch_exceptions=False,
    )
    assert cli.exit_code == 0, cli.output
    output = " ".join(cli.output.split())
    assert f"registered '{name}' version 1, alias champion: models:/{name}@champion" in output
    header = read_header(out)["metadata"]
    assert header["trial"] == number and header["source"] in ("trial", "retrained")
    assert Model.load(str(out)).metadata["hyperparameters"] == study.trials[number].params
    version = MlflowClient(tracking_uri=env["tracking"]).get_model_version_by_alias(name, "champion")
    assert version.tags["tuner.trial"] == str(number) and version.tags["tuner.study"] == "wine_export"
    X = raw_test_rows(env)
    if header["source"] == "trial":  # the model the trial trained and logged (else retrained alike)
        tracker = StudyTracker("wine_export", env["storage"], tracking_uri=env["tracking"])
        trained = tracker.load_model(study.trials[number].user_attrs["mlflow_run_id"])
        np.testing.assert_array_equal(model.load(out).predict_proba(X), trained.predict_proba(X))
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(str(out)).predict(X), model.load(out).predict(X))


def test_study_name_resolves_to_its_file(monkeypatch):
    monkeypatch.chdir(REPO)
    assert resolve_config("wine_mixed").name == "wine_mixed"
    with pytest.raises(Exception, match="no study file"):
        resolve_config("no_such_study")


def _start_serving(path: Path, log_path: Path, environment: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """`tuner serve PATH --port P` up and answering, and P. `tuner serve` binds the port itself,
    so the port cannot be held for it: P is one the system had free, and the server counts as
    up only when its own log says uvicorn listens on P (so no other process's server is taken
    for it). If P was taken in between, uvicorn cannot bind it and exits: another port is tried."""
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "tuner.cli.app", "serve", str(path), "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
            )
        listening = f"Uvicorn running on http://127.0.0.1:{port}"
        wait_until(lambda: server.poll() is not None or listening in log_path.read_text(errors="replace"), 180,
                   "tuner serve to listen or exit")
        if server.poll() is None:
            return server, port
        assert "address already in use" in log_path.read_text(errors="replace"), log_path.read_text()[-2000:]
    pytest.fail("three ports in a row were taken")


def test_final_export_is_the_model_the_run_scored(env):
    """The default export is the run's final model (members refit on training + validation rows,
    averaged when several): same members, same test scores, the same answers from model.load,
    the pyfunc and the run's own pipeline."""
    final, result, X = env["final"], env["result"], raw_test_rows(env)
    assert final.source == "final"
    assert final.metadata["members"] == {member_name(k): v for k, v in result.final.members.items()}
    assert final.metadata["trained_on"] == "train+validation"
    assert final.test_scores == pytest.approx(result.test_scores, abs=1e-12)
    loaded = model.load(final.path)
    expected = result.final.pipeline.predict_proba(X)
    np.testing.assert_allclose(loaded.predict_proba(X), expected, rtol=0, atol=1e-12)
    pyfunc = mlflow.pyfunc.load_model(str(final.path))
    np.testing.assert_array_equal(pyfunc.predict(X), loaded.predict(X))
    assert check_no_pickle(final.path) == []


def test_exported_models_are_named_and_tagged_as_what_they_are(env):
    """The final model is logged as `<study>-final`, tagged with its members, seeds and refit,
    and with `tuner.trial` only when it is one trial's; a trial's own model as
    `<study>-trial-N`, its refit as `<study>-trial-N-refit`. The folder's metadata agrees."""
    client = MlflowClient(tracking_uri=env["tracking"])
    final, run_final = env["final"], env["result"].final
    logged = client.get_logged_model(final.model_id)
    meta = Model.load(str(final.path)).metadata
    members = ", ".join(member_name(k) + (f" x{v}" if v > 1 else "") for k, v in run_final.members.items())
    assert logged.name == meta["name"] == "wine_export-final"
    assert logged.tags["tuner.source"] == meta["source"] == "final"
    assert logged.tags["tuner.members"] == members and meta["members"] == {member_name(k): v for k, v in run_final.members.items()}
    assert logged.tags["tuner.seeds"] == str(run_final.seeds) == str(meta["seeds"])
    assert logged.tags["tuner.refit"] == "true" and meta["trained_on"] == "train+validation"
    assert set(meta["member_trials"]) == set(meta["members"])
    for name, fields in meta["member_trials"].items():
        number = member_number(name)
        assert fields["epochs"] == run_final.epochs[number] and fields["weight"] == run_final.members[number]
        if number == DEFAULTS_MEMBER:  # the estimator's defaults: their parameters, no trial's score
            assert fields["hyperparameters"]["hidden_layer_sizes"] == list(model.MLPClassifier().hidden_layer_sizes)
            assert fields["validation_score"] is None and fields["trial_run_id"] is None
            continue
        trial = env["study"].trials[number]
        assert fields["hyperparameters"] == trial.params and fields["validation_score"] == pytest.approx(trial.value)
    if len(run_final.members) > 1:  # an ensemble of trials: no one trial's figures at the top
        assert "tuner.trial" not in logged.tags and meta["trial"] is None
        assert meta["hyperparameters"] is None and meta["validation_score"] is None
        assert all(k.startswith("trial_") for k in logged.params)
    else:
        (number,) = run_final.members
        assert logged.tags["tuner.trial"] == str(number) == str(meta["trial"])

    best = env["exported"]
    logged = client.get_logged_model(best.model_id)
    assert logged.name == f"wine_export-trial-{best.trial_number}" == Model.load(str(best.path)).metadata["name"]
    assert logged.tags["tuner.trial"] == str(best.trial_number) and logged.tags["tuner.members"] == str(best.trial_number)
    assert logged.tags["tuner.seeds"] == "1" and logged.tags["tuner.refit"] == "false"
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert {k: version.tags[k] for k in logged.tags} == logged.tags  # the registered version: the same tags

    refit = Model.load(str(env["refit_dir"])).metadata
    logged = client.get_logged_model(Model.load(str(env["refit_dir"])).model_id)
    assert logged.name == refit["name"] == f"wine_export-trial-{refit['trial']}-refit"
    assert logged.tags["tuner.refit"] == "true" and logged.tags["tuner.source"] == "refit"


def test_an_ensemble_of_trials_is_described_by_its_members(env):
    """A final model of several trials: named `<study>-final`, tagged with its members and no
    `tuner.trial`, its metadata without one member's figures at the top level."""
    from tuner.result.metadata import BuiltModel, ExportResult, export_tags, logged_params, provenance

    study, splits = env["study"], env["splits"]
    complete = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) >= 2, "the study should complete two trials"
    first, second = complete[:2]
    pipeline = model.load(env["final"].path)
    built = BuiltModel(pipeline, "fp", "final", {first: 1, second: 2}, {first: 5, second: 7}, seeds=3, refit=True)
    trials = {t.number: t for t in study.trials}
    meta = provenance(env["config"], splits, built, trials, {"accuracy": 0.5})
    assert meta["name"] == "wine_export-final" and meta["trial"] is None and meta["seeds"] == 3
    assert meta["members"] == {str(first): 1, str(second): 2}
    for key in ("hyperparameters", "validation_score", "epochs", "seed", "trial_run_id"):
        assert meta[key] is None, key
    assert meta["member_trials"][str(second)]["epochs"] == 7 and meta["member_trials"][str(second)]["weight"] == 2
    assert meta["member_trials"][str(first)]["hyperparameters"] == trials[first].params
    result = ExportResult(
        path=env["final"].path, study_name="wine_export", trial_number=second, source="final",
        validation_score=0.0, test_scores={"accuracy": 0.5}, metadata=meta,
    )
    assert result.model_name == "wine_export-final"
    assert export_tags(result) == {
        "tuner.study": "wine_export", "tuner.source": "final", "tuner.members": f"{first}, {second} x2",
        "tuner.seeds": "3", "tuner.refit": "true", "tuner.data_fingerprint": "fp",
    }
    params = logged_params(meta)
    assert params and all(k.startswith((f"trial_{first}.", f"trial_{second}.")) for k in params)


def test_tuner_serve_answers_like_in_process(env, tmp_path):
    """Served over HTTP by `tuner serve`: the final model (an ensemble when the run chose several
    trials) answers as it does in process; the server stops on SIGTERM."""
    path = env["final"].path
    X = raw_test_rows(env)
    expected = mlflow.pyfunc.load_model(str(path)).predict(X)
    expected_proba = model.load(path).predict_proba(X)
    # `tuner serve` (issue 15) with the venv's bin NOT on PATH: it must find uvicorn itself.
    bin_dir = os.path.realpath(Path(sys.executable).parent)
    search = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and os.path.realpath(p) != bin_dir)
    environment = os.environ | {"PATH": search or "/usr/bin:/bin"}
    server, port = _start_serving(env["final"].path, tmp_path / "serve.log", environment)
    base = f"http://127.0.0.1:{port}"
    try:
        assert http_status(port, "/ping") == 200
        split = json.loads(X.to_json(orient="split", index=False))
        records = json.loads(X.to_json(orient="records"))
        for body in ({"dataframe_split": split}, {"dataframe_records": records}):
            status, answer = post_json(f"{base}/invocations", body)
            assert status == 200, answer
            assert answer["predictions"] == list(expected)
        status, answer = post_json(f"{base}/invocations", {"dataframe_split": split, "params": {"predict_proba": True}})
        assert status == 200, answer
        served = pd.DataFrame(answer["predictions"])
        assert list(served.columns) == list(env["splits"].classes)
        np.testing.assert_array_equal(served.to_numpy(), expected_proba)
        status, answer = post_json(
            f"{base}/invocations", {"dataframe_records": json.loads(X.drop(columns=["hue"]).to_json(orient="records"))}
        )
        assert status == 400 and answer["message"] == "invalid input: missing column(s): 'hue'"  # no dump
        status, answer = post_json(f"{base}/invocations", {"dataframe_records": []})
        assert status == 400 and answer["message"] == "no rows to predict: the request holds no rows"
        status, answer = post_json(f"{base}/invocations", {})
        assert status == 400 and answer["message"].startswith("not a scoring request (keys: none): expected a JSON")
        example = (path / "serving_input_example.json").read_bytes()
        request = urllib.request.Request(f"{base}/invocations", data=example, headers={"Content-Type": "application/json"})
        split = json.loads(example)["dataframe_split"]
        with urllib.request.urlopen(request, timeout=60) as response:  # the example, as curl -d @file sends it
            predictions = json.loads(response.read())["predictions"]
        assert predictions == list(model.load(path).predict(pd.DataFrame(split["data"], columns=split["columns"])))
        printed = (tmp_path / "serve.log").read_text()
        assert f"serving {env['final'].path} at http://127.0.0.1:{port}/invocations" in printed
        assert f"curl -s -X POST http://127.0.0.1:{port}/invocations" in printed
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_missing_trial_model_is_retrained_deterministically(env, tmp_path, monkeypatch):
    from tuner.errors import TunerError

    def no_model(self, run_id):
        raise TunerError(f"no stored model for MLflow run {run_id}: gone")

    monkeypatch.setattr(StudyTracker, "load_model", no_model)
    result = export_study(
        env["folder"] / "wine_export.toml", out=tmp_path / "retrained", log=False, best=True,
        storage=env["storage"], tracking_uri=env["tracking"],
    )
    assert result.source == "retrained" and "trained trial" in result.notes[0]
    X = raw_test_rows(env)
    np.testing.assert_array_equal(
        mlflow.pyfunc.load_model(str(result.path)).predict(X), model.load(env["exported"].path).predict(X)
    )


def test_an_export_folder_holding_another_model_is_replaced_only_with_force(env, tmp_path):
    """Issue 18 item 3: `tuner export --refit` (no --out) silently replaced the export of the
    model the best trial trained. Another model is now refused without --force; the same
    export again replaces it."""
    from tuner.errors import TunerError

    folder = tmp_path / "digits"
    shutil.copytree(env["exported"].path, folder)  # the best trial's own model
    kw = {"out": folder, "storage": env["storage"], "tracking_uri": env["tracking"], "log": False}
    with pytest.raises(TunerError, match="holds trial .* as trained in its trial, not the final model .*--force"):
        export_study(env["folder"] / "wine_export.toml", **kw)
    assert read_header(folder)["metadata"]["source"] in ("trial", "retrained")  # untouched
    export_study(env["folder"] / "wine_export.toml", best=True, **kw)  # the same model: replaced
    cli = CliRunner().invoke(
        app, ["export", str(env["folder"] / "wine_export.toml"), "--refit", "--out", str(folder),
              "--storage", env["storage"], "--tracking-uri", env["tracking"]],
    )
    assert cli.exit_code == 1 and "--force" in cli.output
    forced = export_study(env["folder"] / "wine_export.toml", force=True, **kw)
    assert forced.source == "final" and read_header(folder)["metadata"]["source"] == "final"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # two epochs suffice here
def test_an_integer_column_takes_integers_and_missing_values(tmp_path):
    """A column of integers in training takes int64 rows (what pd.read_csv gives) and rows with
    a missing value there (float64 with NaN), which the model imputes: the signature declares
    its columns Any, and the model's preprocessing checks them."""
    from sklearn.pipeline import Pipeline

    from tuner.study.config import StudyConfig

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"count": rng.integers(0, 9, 60), "b": rng.choice(["p", "q"], 60), "y": rng.integers(0, 2, 60)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = {"source": str(tmp_path / "d.csv"), "target": "y", "task": "classification"}
    splits = load_splits(StudyConfig.model_validate({"name": "t", "data": data, "space": {"batch_size": [8]}}))
    assert splits.X_train["count"].dtype == np.int64
    estimator = model.MLPClassifier(max_epochs=2, random_state=0).fit(splits.Xt_train, splits.y_train)
    pipeline = Pipeline([("preprocess", splits.preprocessor), ("mlp", estimator)])
    path = write_model_folder(tmp_path / "m", pipeline, splits, {"study": "t"})
    inputs = {c.name: repr(c.type) for c in Model.load(str(path)).signature.inputs.inputs}
    assert inputs == {"count": "Any", "b": "Any"}
    pyfunc = mlflow.pyfunc.load_model(str(path))
    rows = splits.X_test.head(3)
    np.testing.assert_array_equal(pyfunc.predict(rows), pipeline.predict(rows))
    rows = rows.astype({"count": "float64"})
    rows.loc[rows.index[0], "count"] = np.nan
    np.testing.assert_array_equal(pyfunc.predict(rows), pipeline.predict(rows))


def test_served_errors_are_short():
    """What `tuner serve` answers a bad request: MLflow's scoring errors without the request's
    DataFrame and the schema they repeat (texts as MLflow 3.17 writes them)."""
    from tuner.result.serving import short_message

    frame = str(pd.DataFrame({"count": ["lots", 4], "b": ["p", "q"]}))
    wrapped = f"Failed to predict data '{frame}'. \nError: invalid input: missing column(s): 'hue'"
    assert short_message(wrapped) == "invalid input: missing column(s): 'hue'"
    enforced = (
        f"Failed to predict data '{frame}'. \nError: Failed to enforce schema of data '{frame}' with schema "
        "'['count': long (optional), 'b': string (optional)]'. Error: Incompatible input types for column count. "
        "Can not safely convert float64 to int64. Hint: the type mismatch is likely caused by missing values."
    )
    assert short_message(enforced) == "Incompatible input types for column count. Can not safely convert float64 to int64."
    parsed = "Invalid input. Failed to convert column count to type 'float64'. Error: 'ValueError(\"lots\")'"
    assert short_message(parsed) == parsed
