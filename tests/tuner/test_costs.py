"""Issue 14, tuning for deployment: every completed trial's measured costs (tuner/search/costs.py), the
study file's ``[objective] constraints`` (tuner/search/constraints.py) and ``tuner export --where``.

No test here asserts that anything is fast: costs are checked to be positive, finite, stored
where they belong and ordered as the networks' sizes order them."""

from __future__ import annotations

import math
import warnings

import mlflow
import numpy as np
import optuna
import pytest
from mlflow import MlflowClient

import model
from tests.helpers import assert_no_failed_trials, child_runs, invoke
from tuner.study.config import StudyConfig, load_config
from tuner.search.costs import BATCH_REPEATS, COSTS, ROW_REPEATS, attr_name, measure_costs, saved_size_kb, trial_costs
from tuner.data.loading import load_splits
from tuner.study.definition import check_definition, study_definition
from tuner.errors import ConfigError, TunerError
from tuner.study.definition import FINAL_ATTR
from tuner.search.objective import Objective
from tuner.search.constraints import best_meeting, feasible, parse_where

# The module-scoped study runs once: keep this file on one test worker.
pytestmark = pytest.mark.xdist_group("costs")

#: Digits, one hidden layer of 2 or 256 units and nothing else drawn: a 2-unit network (about
#: 8 kB saved) meets ``size_kb = 20``, a 256-unit one (about 80 kB) does not and is far more
#: accurate, so that a rule ignoring the constraint would pick a 256-unit trial every time.
CONSTRAINED = """
name = "{name}"
seed = 0

[data]
source = "sklearn:digits"

[objective]
constraints = {{ size_kb = 20 }}

[budget]
n_trials = 8
max_epochs = 8

[pruner]
name = "none"

[result]
start_from_defaults = false
refit = false

[space]
n_layers = 1
units = [2, 256]
activation = "relu"
optimizer = "adam"
learning_rate = 0.01
batch_size = 64
lr_schedule = "constant"
dropout = false
l2 = false
"""


def _fit(units: int, epochs: int = 2):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = model.MLPClassifier(hidden_layer_sizes=(units,), max_epochs=epochs, random_state=0).fit(X[:600] / 16, y[:600])
    return est, X[600:700] / 16


# --------------------------------------------------------------------------------- measuring


def test_costs_are_positive_finite_and_ordered_like_the_networks(tmp_path):
    small, rows = _fit(4)
    big, _ = _fit(128)
    costs = {units: measure_costs(est, rows) for units, est in ((4, small), (128, big))}
    for measured in costs.values():
        assert list(measured) == list(COSTS)
        assert all(math.isfinite(v) and v > 0 for v in measured.values()), measured
    assert costs[4]["n_params"] == 64 * 4 + 4 + 4 * 10 + 10
    assert costs[128]["n_params"] == 64 * 128 + 128 + 128 * 10 + 10
    assert costs[128]["size_kb"] > costs[4]["size_kb"]
    # 1,000 rows (100 validation rows repeated) through 64-128-10 cost more than one row.
    assert costs[128]["latency_ms_batch1000"] > costs[128]["latency_ms_row"]
    # The size is that of the file model.save writes for the network without its training curves
    # (the estimator keeps them), which the full file holds beside it.
    curves = (list(big.loss_curve_), list(big.validation_scores_))
    full = model.save(big, tmp_path / "m.npz").stat().st_size / 1000
    assert (list(big.loss_curve_), list(big.validation_scores_)) == curves and curves[0]
    big.loss_curve_, big.validation_scores_ = [], []
    assert saved_size_kb(big) == model.save(big, tmp_path / "bare.npz").stat().st_size / 1000 < full
    # so one architecture has one size, however long it trained
    longer, _ = _fit(128, epochs=6)
    assert saved_size_kb(longer) == saved_size_kb(big)


def test_costs_are_measured_with_one_blas_thread_whatever_the_process_uses():
    """So that a trial run with ``--threads 2`` and an export (no thread limit) measure like a
    trial run with the default policy."""
    from tuner.threads import current_blas_threads, limit_blas_threads

    est, rows = _fit(4)
    seen, predict = [], est.predict
    est.predict = lambda X: (seen.append(current_blas_threads()), predict(X))[1]
    with limit_blas_threads(2):
        measure_costs(est, rows)
        assert current_blas_threads() in (1, 2)  # the caller's setting is back afterwards
    assert len(seen) == 1 + ROW_REPEATS + BATCH_REPEATS and set(seen) == {1}


def _objective_study(pruner, constraints: dict | None = None) -> tuple[optuna.Study, Objective]:
    raw = {"name": "o", "data": {"source": "sklearn:iris"}, "objective": {"validation_splits": 1},
           "budget": {"n_trials": 1, "max_epochs": 3}, "space": {"n_layers": 1, "units": 8}}
    if constraints:
        raw["objective"]["constraints"] = constraints
    config = StudyConfig.model_validate(raw)
    splits = load_splits(config)
    config = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    return study, Objective(config, splits, None)


def test_completed_trials_get_costs_and_pruned_trials_none():
    study, objective = _objective_study(optuna.pruners.NopPruner())
    study.optimize(objective, n_trials=1)
    done = study.trials[0]
    assert done.state == optuna.trial.TrialState.COMPLETE
    assert set(trial_costs(done)) == set(COSTS)
    assert done.user_attrs[attr_name("n_params")] == done.user_attrs["n_params"]
    assert done.constraints == {}  # no bounds in the study file: nothing to tell Optuna

    # Accuracy is always above -1: this pruner stops every trial at its first report.
    study, objective = _objective_study(optuna.pruners.ThresholdPruner(upper=-1.0, n_warmup_steps=0))
    study.optimize(objective, n_trials=1)
    pruned = study.trials[0]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert "history" in pruned.user_attrs  # its summary was stored ...
    assert not any(k.startswith("cost_") for k in pruned.user_attrs)  # ... without costs


def test_a_pruned_trial_of_a_constrained_study_tells_its_constraints():
    """Optuna's TPE counts a pruned trial without constraint values as feasible: in a constrained
    study a pruned trial's network is measured and its constraints are told too."""
    always = optuna.pruners.ThresholdPruner(upper=-1.0, n_warmup_steps=0)  # prunes at the first report
    study, objective = _objective_study(always, constraints={"n_params": 10.0, "size_kb": 1000.0})
    study.optimize(objective, n_trials=1)
    pruned = study.trials[0]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    costs = trial_costs(pruned)
    assert set(costs) == set(COSTS) and costs["n_params"] == 4 * 8 + 8 + 8 * 3 + 3  # iris: 4 -> 8 -> 3
    assert pruned.constraints == pytest.approx({"n_params": costs["n_params"] - 10.0, "size_kb": costs["size_kb"] - 1000.0})
    assert not feasible(pruned)  # too many parameters for the bound of 10


def test_the_untrained_network_costs_what_the_trained_one_does_in_parameters_and_size():
    from sklearn.datasets import load_digits

    from tuner.search.costs import measure_untrained

    X, y = load_digits(return_X_y=True)
    X = X / 16
    unfitted = model.MLPClassifier(hidden_layer_sizes=(32, 16), max_epochs=5, random_state=0)
    before = measure_untrained(unfitted, X[:600], y[:600], X[600:700])
    assert not hasattr(unfitted, "classes_")  # the estimator itself is left untrained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trained = unfitted.fit(X[:600], y[:600])
    after = measure_costs(trained, X[600:700])
    assert set(before) == set(COSTS)
    assert before["n_params"] == after["n_params"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert 0 < before["size_kb"] == pytest.approx(after["size_kb"], abs=0.002)  # n_iter's digits
    # The probe saw only 32 rows, with 10 classes among them or not: its output layer has 10.
    few = measure_untrained(model.MLPClassifier(hidden_layer_sizes=(8,)), X[:600], np.sort(y[:600]), X[:5])
    assert few["n_params"] == 64 * 8 + 8 + 8 * 10 + 10
    reg = measure_untrained(model.MLPRegressor(hidden_layer_sizes=(8,)), X[:600], y[:600].astype(float), X[:5])
    assert reg["n_params"] == 64 * 8 + 8 + 8 + 1


def test_a_constrained_trial_whose_untrained_network_breaks_a_bound_is_pruned_before_training():
    """Iris, one layer of 8 units: 67 parameters. With n_params <= 10 it is pruned before any
    epoch, says why, keeps its measured costs and tells Optuna its constraint values; with a bound
    it meets, the same trial trains and completes."""
    study, objective = _objective_study(optuna.pruners.NopPruner(), constraints={"n_params": 10.0})
    study.optimize(objective, n_trials=1)
    skipped = study.trials[0]
    assert skipped.state == optuna.trial.TrialState.PRUNED
    assert skipped.intermediate_values == {}  # no epoch was trained
    assert skipped.user_attrs["history"] == {}
    assert "pruned before training: its untrained network has n_params 67 > 10" in skipped.user_attrs["reason"]
    assert skipped.user_attrs["pruned_before_training"] is True  # what the budget reads
    assert trial_costs(skipped)["n_params"] == 67
    assert skipped.constraints == pytest.approx({"n_params": 57.0}) and not feasible(skipped)

    study, objective = _objective_study(optuna.pruners.NopPruner(), constraints={"n_params": 67.0})
    study.optimize(objective, n_trials=1)
    done = study.trials[0]
    assert done.state == optuna.trial.TrialState.COMPLETE and done.intermediate_values
    assert done.constraints == pytest.approx({"n_params": 0.0}) and feasible(done)


# --------------------------------------------------------------------------------- study files


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{ latency = 0.2 }", "objective.constraints: unknown cost 'latency'"),
        ("{ size_kb = 0 }", "size_kb = 0 is not a positive number"),
        ("{ size_kb = -5, n_params = 100 }", "size_kb = -5 is not a positive number"),
        ('{ latency_ms_row = "fast" }', "latency_ms_row = 'fast' is not a positive number"),
        ("0.2", "must be a table of cost = upper bound"),
    ],
)
def test_bad_constraints_get_one_line_naming_the_key(tmp_path, entry, message):
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\nconstraints = {entry}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "costs: latency_ms_row, latency_ms_batch1000, size_kb, n_params" in str(err.value)


@pytest.mark.parametrize("key", ["ensemble", "seeds"])
def test_constraints_make_the_final_model_one_network(tmp_path, key):
    path = tmp_path / "s.toml"
    head = 'name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\nconstraints = { size_kb = 50 }\n'
    path.write_text(head)
    result = load_config(path).result
    assert (result.ensemble, result.seeds) == (1, 1)  # the defaults there
    assert "result" not in load_config(path).file_settings()  # still the file's defaults
    path.write_text(head + f"[result]\n{key} = 1\n")
    assert getattr(load_config(path).result, key) == 1
    path.write_text(head + f"[result]\n{key} = 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"result.{key}: 2 with objective.constraints: the final model would average 2 networks" in str(err.value)
    assert "\n" not in str(err.value)
    # without constraints, the usual defaults
    path.write_text('name = "s"\n[data]\nsource = "sklearn:iris"\n')
    assert (load_config(path).result.ensemble, load_config(path).result.seeds) == (5, 3)


def test_constraints_load_as_floats(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[data]\nsource = "sklearn:iris"\n[objective]\n'
                    "constraints = { latency_ms_row = 0.2, size_kb = 50 }\n")
    config = load_config(path)
    assert config.objective.constraints == {"latency_ms_row": 0.2, "size_kb": 50.0}
    assert config.flat_settings()["objective.constraints"] == "latency_ms_row <= 0.2, size_kb <= 50"


# --------------------------------------------------------------------------------- --where


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("latency <= 1", "unknown cost 'latency'"),
        ("size_kb >= 1", "expected '<cost> <= <number>'"),
        ("size_kb == 1", "expected '<cost> <= <number>'"),
        ("size_kb <= fast", "'fast' is not a finite number"),
        ("size_kb <= inf", "'inf' is not a finite number"),
        ("size_kb", "expected '<cost> <= <number>'"),
    ],
)
def test_bad_where_clauses_are_named(clause, message):
    with pytest.raises(TunerError) as err:
        parse_where(["n_params < 10", clause])
    assert f"--where {clause!r}" in str(err.value) and message in str(err.value)


def _trial(value: float, **costs: float):
    return optuna.trial.create_trial(value=value, user_attrs={attr_name(k): v for k, v in costs.items()})


def test_where_picks_the_most_accurate_trial_meeting_every_clause():
    study = optuna.create_study(direction="maximize")
    study.add_trials([
        _trial(0.99, size_kb=80.0, latency_ms_row=0.1),   # 0: too big
        _trial(0.95, size_kb=10.0, latency_ms_row=0.3),   # 1: too slow
        _trial(0.90, size_kb=10.0, latency_ms_row=0.2),   # 2: meets both (<= 0.2)
        _trial(0.90, size_kb=5.0, latency_ms_row=0.1),    # 3: meets both, same value, later
        _trial(0.97),                                     # 4: no costs measured
    ])
    assert best_meeting(study, parse_where(["size_kb <= 50", "latency_ms_row <= 0.2"])).number == 2
    assert best_meeting(study, parse_where(["size_kb <= 50", "latency_ms_row < 0.2"])).number == 3
    assert best_meeting(study, parse_where(["size_kb < 100"])).number == 0
    with pytest.raises(TunerError, match=r"no completed trial .* has size_kb <= 1 \(5 completed, 4 with"):
        best_meeting(study, parse_where(["size_kb <= 1"]))
    minimizing = optuna.create_study(direction="minimize")
    minimizing.add_trials([_trial(0.3, n_params=10.0), _trial(0.1, n_params=99.0), _trial(0.2, n_params=50.0)])
    assert best_meeting(minimizing, parse_where(["n_params <= 50"])).number == 2


def test_where_and_trial_together_are_refused():
    result = invoke("export", "nowhere", "--trial", "1", "--where", "size_kb <= 1")
    assert result.exit_code == 1 and "give --trial or --where, not both" in result.output


def test_a_bad_where_clause_is_one_line_from_the_command():
    result = invoke("export", "nowhere", "--where", "size_kb <= 1", "--where", "speed < 2")
    assert result.exit_code == 1
    assert "--where 'speed < 2': unknown cost 'speed'" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------- a constrained study


@pytest.fixture(scope="module")
def constrained(tmp_path_factory):
    """The constrained study run through `tuner run`."""
    folder = tmp_path_factory.mktemp("costs")
    study_file = folder / "deploy.toml"
    study_file.write_text(CONSTRAINED.format(name="deploy"))
    stores = ["--storage", f"sqlite:///{folder}/o.db", "--tracking-uri", f"sqlite:///{folder}/m.db"]
    # The check before training (tested below) would prune every 256-unit trial untrained; these
    # tests need infeasible trials that complete, as they do when a network breaks a bound only
    # once trained (a latency at the timing's edge, a size grown by the saved curves).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Objective, "_prune_if_infeasible_untrained", lambda self, trial, estimator, run: None)
        ran = invoke("run", str(study_file), *stores)
    assert ran.exit_code == 0, ran.output
    study = optuna.load_study(study_name="deploy", storage=stores[1])
    return {"folder": folder, "file": study_file, "stores": stores, "study": study, "output": ran.output}


def test_costs_are_stored_and_logged_for_every_completed_trial(constrained):
    study = constrained["study"]
    assert_no_failed_trials(study)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8
    client = MlflowClient(constrained["stores"][3])
    runs = {r.info.run_id: r for r in child_runs(client, "deploy")[1]}
    for t in complete:
        costs = trial_costs(t)
        assert set(costs) == set(COSTS) and all(v > 0 for v in costs.values())
        logged = runs[t.user_attrs["mlflow_run_id"]].data.metrics
        assert {name: logged[attr_name(name)] for name in COSTS} == pytest.approx(costs)
        # Optuna was told cost - bound, and feasibility follows the size alone.
        assert t.constraints == pytest.approx({"size_kb": costs["size_kb"] - 20.0})
        assert feasible(t) == (t.params["units_l0"] == 2)


def test_infeasible_trials_are_never_the_best_nor_in_the_final_model(constrained):
    study = constrained["study"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    good = [t for t in complete if feasible(t)]
    # The case is built so that ignoring the constraint would pick another trial.
    assert good and len(good) < len(complete)
    top = max(complete, key=lambda t: t.value)
    assert not feasible(top) and top.value > max(t.value for t in good)

    best = study.best_trial
    assert feasible(best) and best.value == max(t.value for t in good)
    # Under constraints the final model is one network: the best trial meeting them.
    final = study.user_attrs[FINAL_ATTR]
    assert final["members"] == {str(best.number): 1} and final["seeds"] == 1

    output = " ".join(constrained["output"].split())
    assert f"{len(good)} of 8 completed trials meet the constraints" in output
    assert f"best trial {best.number}:" in output
    parent = [r for r in child_runs(MlflowClient(constrained["stores"][3]), "deploy")[0]]
    assert [r.data.metrics["study/n_feasible"] for r in parent] == [len(good)]
    assert parent[0].data.tags["best_trial_number"] == str(best.number)

    status = invoke("status", "deploy", "--storage", constrained["stores"][1])
    assert f"{len(good)} of 8 completed trials meet the constraints" in " ".join(status.output.split())
    assert f"best trial {best.number}:" in status.output


def test_a_constrained_run_prunes_infeasible_architectures_untrained_and_says_how_many(tmp_path):
    """The same study with the check before training on: every 256-unit trial (about 80 kB,
    bound 20) is pruned before its first epoch and does not use the budget, every 2-unit one
    trains; the run's feasible line counts both."""
    study_file = tmp_path / "deploy.toml"
    study_file.write_text(CONSTRAINED.format(name="untrained"))
    storage = f"sqlite:///{tmp_path}/o.db"
    ran = invoke("run", str(study_file), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert ran.exit_code == 0, ran.output
    study = optuna.load_study(study_name="untrained", storage=storage)
    assert_no_failed_trials(study)
    big = [t for t in study.trials if t.params["units_l0"] == 256]
    small = [t for t in study.trials if t.params["units_l0"] == 2]
    assert big and len(small) == 8  # n_trials counts the trials that train
    for t in big:
        assert t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values == {}
        assert t.user_attrs["reason"].startswith("pruned before training: its untrained network has size_kb ")
        assert t.constraints["size_kb"] > 0 and trial_costs(t)["n_params"] == 64 * 256 + 256 + 256 * 10 + 10
    assert all(t.state == optuna.trial.TrialState.COMPLETE and feasible(t) for t in small)
    line = f"{len(small)} of {len(small)} completed trials meet the constraints (objective.constraints); " \
           f"{len(big)} more pruned before training, their untrained network over a bound"
    assert line in " ".join(ran.output.split())


def test_a_study_with_no_feasible_network_ends_and_says_why(tmp_path):
    """Iris, one layer of 8 units (67 parameters) against n_params <= 10: every trial is pruned
    before training; the first 8 are free of the budget (4 per trial of the budget of 2), the
    next 2 use it, and the run ends with one line giving the reason."""
    study_file = tmp_path / "none.toml"
    study_file.write_text(
        'name = "none"\n[data]\nsource = "sklearn:iris"\n[objective]\nconstraints = { n_params = 10 }\n'
        '[budget]\nn_trials = 2\nmax_epochs = 3\n[space]\nn_layers = 1\nunits = 8\n'
    )
    storage = f"sqlite:///{tmp_path}/o.db"
    ran = invoke("run", str(study_file), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    assert ran.exit_code == 1
    study = optuna.load_study(study_name="none", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 10
    line = " ".join(ran.output.split())
    assert "error: no trial completed: 10 pruned, first reason (trial 0): pruned before training: " \
           "its untrained network has n_params 67 > 10" in line
    assert "Traceback" not in ran.output


def test_other_constraints_on_resume_are_refused(constrained):
    config = load_config(constrained["file"])
    splits = load_splits(config)
    changed = config.model_copy(update={"objective": config.objective.model_copy(update={"constraints": {"size_kb": 30.0}})})
    definition = study_definition(changed.fitted_to_data(len(splits.y_train), len(splits.y_val)), splits)
    with pytest.raises(TunerError, match=r"objective.constraints was \{'size_kb': 20.0\}, now \{'size_kb': 30.0\}"):
        check_definition(constrained["study"], definition, "deploy.toml")


def test_a_study_stored_before_constraints_is_refused_constraints(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text(CONSTRAINED.format(name="old"))
    config = load_config(path)
    splits = load_splits(config)
    definition = study_definition(config.fitted_to_data(len(splits.y_train), len(splits.y_val)), splits)
    study = optuna.create_study()
    study.set_user_attr("definition", {k: v for k, v in definition.items() if k != "objective.constraints"})
    with pytest.raises(TunerError, match=r"objective.constraints was \{\}, now \{'size_kb': 20.0\}"):
        check_definition(study, definition, "old.toml")


def test_export_where_picks_the_right_trial_through_the_command_line(constrained):
    """``--where`` reads the trials' stored costs, whatever the study's constraints: here its
    bounds admit the big networks, and it exports the most accurate trial that meets them, one
    the study's own constraint rules out."""
    study = constrained["study"]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    sizes = sorted(trial_costs(t)["size_kb"] for t in complete)
    size_bound, params_bound = round(sizes[-1] + 1, 3), 100_000
    meets = [t for t in complete
             if trial_costs(t)["size_kb"] < size_bound and trial_costs(t)["n_params"] <= params_bound]
    expected = min(meets, key=lambda t: (-t.value, t.number))
    assert expected.number != study.best_trial.number  # not the study's (feasible) best again

    out = constrained["folder"] / "where"
    proc = invoke("export", str(constrained["file"]), "--out", str(out),
                  "--where", f"size_kb < {size_bound}", "--where", f"n_params<={params_bound}", *constrained["stores"])
    assert proc.exit_code == 0, proc.output[-3000:]
    meta = mlflow.models.Model.load(str(out)).metadata
    assert meta["trial"] == expected.number
    assert meta["members"] == {str(expected.number): 1}
    assert meta["source"] in ("trial", "retrained")
    assert meta["trial_costs"] == pytest.approx(trial_costs(expected))
    assert set(meta["costs"]) == set(COSTS) and all(v > 0 for v in meta["costs"].values())
    assert meta["costs"]["n_params"] == meta["trial_costs"]["n_params"]
    assert not any(k.startswith("cost_") for k in meta["fixed_parameters"])
    assert "costs measured here: latency_ms_row" in proc.stdout

    # A clause no trial meets: one line, exit 1, nothing written.
    proc = invoke("export", str(constrained["file"]), "--out", str(out) + "-none",
                  "--where", f"size_kb < {sizes[0] / 2}", *constrained["stores"])
    assert proc.exit_code == 1
    assert "no completed trial of study 'deploy' has size_kb <" in proc.stderr
    assert not (constrained["folder"] / "where-none").exists()


# --------------------------------------------------------------------------------- the budget


def _ended(number: int, state, untrained: bool = False):
    attrs = {"reason": "pruned before training: its untrained network has size_kb 80 > 20",
             "pruned_before_training": True} if untrained else {}
    trial = optuna.trial.create_trial(state=state, value=0.5 if state == optuna.trial.TrialState.COMPLETE else None,
                                      user_attrs=attrs)
    trial.number = number
    return trial


def test_trials_pruned_before_training_are_free_of_the_budget_up_to_four_per_trial_of_it():
    from tuner.storage.budget import UNTRAINED_FREE_PER_TRIAL, counted_trials

    State = optuna.trial.TrialState
    assert UNTRAINED_FREE_PER_TRIAL == 4
    trained = [_ended(0, State.COMPLETE), _ended(1, State.PRUNED)]  # a pruned trial that trained counts
    untrained = [_ended(n, State.PRUNED, untrained=True) for n in range(2, 20)]
    # a budget of 3: 4 * 3 = 12 untrained trials are free, the other 6 count
    counted = counted_trials(trained + untrained, n_trials=3)
    assert [t.number for t in counted] == [0, 1, *range(14, 20)]
    assert [t.number for t in counted_trials(trained + untrained[:12], n_trials=3)] == [0, 1]
    # none trained, a budget of 1: 4 are free, so a study of nothing but infeasible networks ends
    assert [t.number for t in counted_trials(untrained[:6], n_trials=1)] == [6, 7]
    # a count without a budget (shown, not enforced) leaves every untrained trial out
    assert [t.number for t in counted_trials(trained + untrained)] == [0, 1]


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_every_storage_counts_trials_pruned_before_training_alike(kind, tmp_path, request):
    """The RDB storages count taken slots in SQL (tuner/storage/_internals.py), the journal from its
    trials (tuner/storage/budget.py): both leave the same trials pruned before training out."""
    from tests.helpers import storage_url
    from tuner.storage.budget import taken_slots
    from tuner.storage.storages import open_storage

    State = optuna.trial.TrialState
    storage = open_storage(storage_url(kind, tmp_path, request))
    storage.set_budget(3)  # 4 * 3 = 12 trials pruned before training are free
    study = optuna.create_study(study_name="slots", storage=storage)
    for number in range(12):
        t = _ended(number, State.PRUNED, untrained=number >= 1)
        study.add_trial(t)
    other = _ended(12, State.PRUNED)
    other.user_attrs["reason"] = "pruned by MedianPruner at epoch 3"  # pruned while training: counts
    study.add_trial(other)
    study.enqueue_trial({})  # a waiting trial takes a slot
    trials = study.get_trials(deepcopy=False)
    # Counted: trials 0 and 12 (the 11 untrained are all free), and the waiting one.
    assert taken_slots(trials, 3) == 3
    assert storage.taken_slots(study._study_id) == 3
    for number in range(13, 20):  # 18 untrained: 12 free, 6 count
        study.add_trial(_ended(number, State.PRUNED, untrained=True))
    trials = study.get_trials(deepcopy=False)
    assert taken_slots(trials, 3) == storage.taken_slots(study._study_id) == 2 + 6 + 1


def test_an_unconstrained_study_skips_the_count_of_trials_pruned_before_training(tmp_path):
    """Only a constrained study prunes trials before training, so the RDB storage of an
    unconstrained one (``set_budget(..., constrained=False)``, what tuner.runner passes) does not
    query for them at every trial creation: its count is the plain count of ended trials."""
    from tuner.storage.storages import open_storage

    State = optuna.trial.TrialState
    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    study = optuna.create_study(study_name="plain", storage=storage)
    for number in range(3):
        study.add_trial(_ended(number, State.PRUNED, untrained=True))
    storage.set_budget(3, constrained=True)
    assert storage.taken_slots(study._study_id) == 0  # looked up: all three are free
    storage.set_budget(3, constrained=False)
    assert storage.taken_slots(study._study_id) == 3  # not looked up


def test_the_runner_tells_the_storage_whether_the_study_is_constrained(tmp_path):
    from tests.helpers import write_study
    from tuner.study.config import load_config
    from tuner.runner import create_study
    from tuner.storage.storages import open_storage

    for constraints, expected in (("", False), ("constraints = {size_kb = 50}\n", True)):
        path = write_study(tmp_path, f"c{int(expected)}", n_trials=2)
        text = path.read_text()
        if constraints:
            text = text.replace("[objective]\n", "[objective]\n" + constraints) if "[objective]\n" in text \
                else text + "\n[objective]\n" + constraints
            path.write_text(text)
        storage = open_storage(f"sqlite:///{tmp_path}/o{int(expected)}.db")
        create_study(load_config(path), storage)
        assert storage.count_untrained is expected
