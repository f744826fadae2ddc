"""Search space: trials draw valid model keyword arguments; fixed, narrowed and dropped entries behave."""

import optuna
import pytest
from optuna.trial import FixedTrial

from tuner.study.config import StudyConfig
from tuner.search.pruners import SnapshotPruner, make_pruner, unwrap_pruner
from tuner.search.samplers import make_sampler
from tuner.study.space import (
    ACTIVATIONS,
    OPTIMIZERS,
    SCHEDULES,
    Dropped,
    SpaceConfig,
    default_space,
    defaults_trial,
    suggest_params,
)
from tuner.study.grid import grid_search_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
MODEL_KEYS = {"hidden_layer_sizes", "activation", "batch_size", "learning_rate", "lr_schedule",
              "optimizer", "l2", "dropout", "patience", "max_epochs", "robust_scaling"}
#: Drawn when a study file's [space] names it.
OPTIONAL_KEYS = {"label_smoothing"}


def check_valid(params: dict) -> None:
    assert set(params) <= MODEL_KEYS | OPTIONAL_KEYS
    sizes = params.get("hidden_layer_sizes", (64,))
    assert isinstance(sizes, tuple) and all(isinstance(s, int) and s >= 1 for s in sizes)
    assert params.get("activation", "relu") in ACTIVATIONS
    assert params.get("optimizer", "adam") in OPTIMIZERS
    assert params.get("lr_schedule", "constant") in SCHEDULES
    assert params.get("learning_rate", 1e-3) > 0 and params.get("l2", 0.0) >= 0
    assert 0 <= params.get("dropout", 0.0) < 1
    assert isinstance(params.get("batch_size", 32), int) and isinstance(params.get("patience", 10), int)


def test_default_space_with_a_real_study():
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    seen_depths = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest_params(trial, default_space(), max_epochs=20)
        check_valid(params)
        assert set(params) == MODEL_KEYS and params["max_epochs"] == 20
        depth = len(params["hidden_layer_sizes"])
        seen_depths.add(depth)
        assert params["hidden_layer_sizes"] == tuple(trial.params[f"units_l{i}"] for i in range(depth))
        assert 16 <= min(params["hidden_layer_sizes"]) and max(params["hidden_layer_sizes"]) <= 256
        study.tell(trial, 0.5)
    assert len(seen_depths) > 1


def test_fixed_trial_gives_exact_kwargs():
    values = {"n_layers": 2, "units_l0": 32, "units_l1": 16, "activation": "tanh", "batch_size": 64,
              "learning_rate": 0.01, "lr_schedule": "cosine", "optimizer": "adamw", "l2": 1e-4,
              "dropout": 0.1, "patience": 5}
    params = suggest_params(FixedTrial(values), default_space(), max_epochs=30)
    assert params == {"hidden_layer_sizes": (32, 16), "activation": "tanh", "batch_size": 64,
                      "learning_rate": 0.01, "lr_schedule": "cosine", "optimizer": "adamw", "l2": 1e-4,
                      "dropout": 0.1, "patience": 5, "max_epochs": 30, "robust_scaling": False}


def test_narrowed_fixed_and_dropped_entries():
    space = SpaceConfig.model_validate({
        "n_layers": 2,
        "units": [8, 12],
        "activation": "elu",
        "learning_rate": {"low": 0.01, "high": 0.02},
        "dropout": False,
        "lr_schedule": False,
        "patience": {"low": 4, "high": 8, "step": 2},
    })
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(8):
        trial = study.ask()
        params = suggest_params(trial, space, max_epochs=5)
        check_valid(params)
        assert "dropout" not in params and "lr_schedule" not in params
        assert len(params["hidden_layer_sizes"]) == 2 and set(params["hidden_layer_sizes"]) <= {8, 12}
        assert params["activation"] == "elu" and 0.01 <= params["learning_rate"] <= 0.02
        assert params["patience"] in (4, 6, 8)
        assert "activation" not in trial.params and "n_layers" not in trial.params  # fixed: not suggested
        study.tell(trial, 0.0)
    assert study.trials[0].user_attrs == {"n_layers": 2, "activation": "elu", "robust_scaling": False}


def test_dropping_layers_and_units():
    both = SpaceConfig.model_validate({"n_layers": False, "units": False})
    assert "hidden_layer_sizes" not in suggest_params(FixedTrial(_defaults()), both, 10)
    one_layer = SpaceConfig.model_validate({"n_layers": False, "units": 20})
    assert suggest_params(FixedTrial(_defaults()), one_layer, 10)["hidden_layer_sizes"] == (20,)
    default_width = SpaceConfig.model_validate({"n_layers": 3, "units": False})
    assert suggest_params(FixedTrial(_defaults()), default_width, 10)["hidden_layer_sizes"] == (64, 64, 64)


def _defaults() -> dict:
    return {"activation": "relu", "batch_size": 32, "learning_rate": 0.001, "lr_schedule": "constant",
            "optimizer": "adam", "l2": 1e-4, "dropout": 0.0, "patience": 10}


def test_space_dump_round_trips():
    space = SpaceConfig.model_validate({"units": 32, "dropout": False, "batch_size": [16, 32]})
    assert SpaceConfig.model_validate(space.model_dump()) == space


def test_grid_search_space_values():
    space = SpaceConfig.model_validate({
        "n_layers": {"low": 1, "high": 2},
        "units": {"low": 16, "high": 64, "log": True},
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "activation": "relu",
    })
    grid = grid_search_space(space)
    assert grid["n_layers"] == [1, 2]
    assert grid["units_l0"] == grid["units_l1"] == [16, 32, 64]
    assert grid["learning_rate"] == pytest.approx([1e-4, 1e-3, 1e-2])
    assert grid["dropout"] == [0.0, 0.25, 0.5]
    assert "activation" not in grid and "units_l2" not in grid


def test_robust_scaling_and_label_smoothing_are_tuned_fixed_or_dropped():
    tuned = SpaceConfig.model_validate(
        {"robust_scaling": [True, False], "label_smoothing": {"low": 0.0, "high": 0.2},
         "lr_schedule": ["cosine", "coslog4"]}
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        params = suggest_params(trial, tuned, max_epochs=8)
        assert params["robust_scaling"] is trial.params["robust_scaling"]
        assert 0.0 <= params["label_smoothing"] <= 0.2 and params["lr_schedule"] in ("cosine", "coslog4")
        seen.add((params["robust_scaling"], params["lr_schedule"]))
        study.tell(trial, 0.0)
    assert len(seen) == 4
    assert grid_search_space(tuned)["robust_scaling"] == [True, False]
    # A boolean's false is a fixed value, not a drop: the trial passes it to the estimator.
    fixed = SpaceConfig.model_validate({"robust_scaling": False, "label_smoothing": False})
    params = suggest_params(FixedTrial(defaults_trial(fixed)), fixed, 5)
    assert params["robust_scaling"] is False and "label_smoothing" not in params
    assert fixed.robust_scaling.describe() == "false" and tuned.robust_scaling.describe() == "[true, false]"
    assert SpaceConfig.model_validate(fixed.model_dump()) == fixed
    assert SpaceConfig.model_validate(tuned.model_dump()) == tuned


def test_defaults_trial_picks_the_nearest_choice_of_a_zero_default():
    space = SpaceConfig.model_validate({"label_smoothing": [0.2, 0.05], "robust_scaling": [True]})
    params = defaults_trial(space)
    assert params["label_smoothing"] == 0.05 and params["robust_scaling"] is True


def test_a_regression_study_drops_label_smoothing_from_the_default_space():
    config = StudyConfig.model_validate({"name": "r", "data": {"source": "sklearn:diabetes"}})
    assert isinstance(config.space.label_smoothing, Dropped)
    assert "label_smoothing" not in suggest_params(FixedTrial(defaults_trial(config.space)), config.space, 5)
    assert "label_smoothing" not in config.file_settings().get("space", {})


def test_grid_sampler_runs_the_whole_grid():
    raw = {
        "name": "g", "data": {"source": "sklearn:iris"}, "sampler": {"name": "grid", "n_points": 2},
        "space": {
            "n_layers": 1, "units": {"low": 8, "high": 32}, "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
            "activation": ["relu", "tanh"], "batch_size": 16, "lr_schedule": False, "optimizer": "adam",
            "l2": False, "dropout": False, "patience": 5,
        },
    }
    config = StudyConfig.model_validate(raw)
    sampler = make_sampler(config)
    assert isinstance(sampler, optuna.samplers.GridSampler)
    study = optuna.create_study(sampler=sampler)
    seen = []
    study.optimize(lambda t: seen.append(suggest_params(t, config.space, 3)) or 0.0, n_trials=50)
    assert len(seen) == 8  # 2 units x 2 learning rates x 2 activations, then the sampler stops
    assert {(p["hidden_layer_sizes"], p["learning_rate"], p["activation"]) for p in seen} == {
        ((u,), lr, a) for u in (8, 32) for lr in (1e-3, 1e-2) for a in ("relu", "tanh")
    }


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc"])
@pytest.mark.parametrize("pruner", ["median", "percentile", "successive_halving", "hyperband", "none"])
def test_samplers_and_pruners_build(sampler, pruner):
    config = StudyConfig.model_validate({
        "name": "s", "data": {"source": "sklearn:iris"}, "budget": {"max_epochs": 30},
        "sampler": {"name": sampler}, "pruner": {"name": pruner},
    })
    study = optuna.create_study(sampler=make_sampler(config), pruner=make_pruner(config), direction=config.direction)
    study.optimize(lambda t: len(suggest_params(t, config.space, 30)["hidden_layer_sizes"]), n_trials=3)
    assert len(study.trials) == 3


def test_cmaes_without_its_package_is_a_config_error():
    import importlib.util

    from tuner.errors import ConfigError

    config = StudyConfig.model_validate({"name": "c", "data": {"source": "sklearn:iris"}, "sampler": {"name": "cmaes"}})
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(ConfigError, match="sampler.name: 'cmaes' needs the 'cmaes' package"):
            make_sampler(config)
    else:
        assert isinstance(make_sampler(config), optuna.samplers.CmaEsSampler)


def test_pruner_options_reach_optuna():
    config = StudyConfig.model_validate({
        "name": "p", "data": {"source": "sklearn:iris"}, "budget": {"max_epochs": 40},
        "pruner": {"name": "percentile", "percentile": 10.0, "n_warmup_steps": 7},
    })
    pruner = unwrap_pruner(make_pruner(config))
    assert isinstance(pruner, optuna.pruners.PercentilePruner)
    assert pruner._percentile == 10.0 and pruner._n_warmup_steps == 7


def test_workers_sample_different_trials_and_one_process_keeps_the_seed():
    config = StudyConfig.model_validate({"name": "w", "data": {"source": "sklearn:iris"}, "seed": 7})

    def first_draws(worker):
        study = optuna.create_study(sampler=make_sampler(config, worker))
        study.optimize(lambda t: suggest_params(t, config.space, 10) and 0.0, n_trials=3)
        return [t.params for t in study.trials]

    assert first_draws(None) == first_draws(None)  # reproducible
    assert first_draws("job-0") == first_draws("job-0")
    assert len({repr(first_draws(w)) for w in (None, "job-0", "job-1", "host-12")}) == 4


def test_snapshot_pruner_decides_like_the_pruner_it_wraps():
    """Every epoch of every trial: the snapshot's decision equals a fresh MedianPruner's."""
    plain = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    snapshot = SnapshotPruner(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    study = optuna.create_study(direction="maximize", pruner=snapshot)
    decisions = []

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 0.0, 1.0)
        for step in range(1, 11):
            trial.report(rate * step, step)
            frozen = trial.study._storage.get_trial(trial._trial_id)
            decisions.append((plain.prune(study, frozen), trial.should_prune()))
            if decisions[-1][1]:
                raise optuna.TrialPruned()
        return rate * 10

    study.optimize(objective, n_trials=12)
    assert [p for p, _ in decisions] == [s for _, s in decisions]
    assert any(s for _, s in decisions), "some trial was pruned"
    assert study.trials[-1].state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE)


def test_snapshot_pruner_sees_trials_completed_since_its_last_read():
    snapshot = SnapshotPruner(optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study = optuna.create_study(direction="maximize", pruner=snapshot)
    running = study.ask()
    running.report(0.1, 1)
    assert not running.should_prune()  # no completed trial yet: nothing to compare with
    other = study.ask()  # another worker completes a better trial meanwhile
    other.report(0.9, 1)
    study.tell(other, 0.9)
    running.report(0.1, 2)
    assert not running.should_prune()  # same trial, snapshot still fresh
    snapshot.max_age = 0.0
    running.report(0.1, 3)
    other_next = study.ask()
    other_next.report(0.9, 1)
    other_next.report(0.9, 3)
    study.tell(other_next, 0.9)
    assert running.should_prune()  # re-read after max_age: compared with the completed trials


def test_params_from_trial_rebuilds_a_finished_trial():
    from tuner.study.space import params_from_trial

    space = SpaceConfig.model_validate({"activation": "tanh", "dropout": False})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    drawn = []
    study.optimize(lambda t: drawn.append(suggest_params(t, space, 12)) or 0.0, n_trials=3)
    for trial, params in zip(study.trials, drawn):
        assert params_from_trial(trial, space, 12) == params


def _params_of_runs(config, storage, runs, worker=None):
    """Run the study ``runs`` times (each a fresh process's create_study, 4 trials each)."""
    from tuner.runner import create_study

    for _ in range(runs):
        study = create_study(config, storage, worker)
        study.optimize(lambda t: suggest_params(t, config.space, 10) and 0.0, n_trials=4)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("worker", [None, "job-0"])
def test_a_resumed_study_draws_new_trials_and_a_fresh_one_keeps_its_seed(tmp_path, worker):
    """Issue 18: each run reseeded the sampler with the study seed, so a resumed study replayed
    its first trials (trial 4 = trial 0). Run it three times: twelve different trials."""
    config = StudyConfig.model_validate(
        {"name": "r", "data": {"source": "sklearn:iris"}, "seed": 7, "result": {"start_from_defaults": False}}
    )
    params = _params_of_runs(config, f"sqlite:///{tmp_path}/a.db", 3, worker)
    assert len(params) == 12
    assert len({repr(sorted(p.items())) for p in params}) == 12
    # a fresh study is still reproducible from its seed, and its first run samples as before
    again = _params_of_runs(config, f"sqlite:///{tmp_path}/b.db", 3, worker)
    assert again == params
    plain = optuna.create_study(sampler=make_sampler(config, worker))
    plain.optimize(lambda t: suggest_params(t, config.space, 10) and 0.0, n_trials=4)
    assert [t.params for t in plain.trials] == params[:4]


def test_enqueued_trials_do_not_change_a_fresh_study_seed(tmp_path):
    """Trials enqueued before the first run (fixed default trials) are not sampled: a fresh
    study's sampler keeps the study seed, and the enqueued trials run first."""
    from tuner.runner import create_study

    config = StudyConfig.model_validate(
        {"name": "q", "data": {"source": "sklearn:iris"}, "seed": 7, "result": {"start_from_defaults": False}}
    )
    storage = f"sqlite:///{tmp_path}/q.db"
    study = create_study(config, storage)
    study.enqueue_trial({"n_layers": 1}, skip_if_exists=True)
    study = create_study(config, storage)
    plain = optuna.create_study(sampler=make_sampler(config))
    plain.enqueue_trial({"n_layers": 1})
    for s in (study, plain):
        s.optimize(lambda t: suggest_params(t, config.space, 10) and 0.0, n_trials=3)
    assert study.trials[0].params["n_layers"] == 1
    assert [t.params for t in study.trials] == [t.params for t in plain.trials]


def test_the_default_space_turns_robust_scaling_off_for_every_trial_while_the_estimators_default_is_on():
    """A trial does not inherit the estimators' robust scaling (on by default): the study's
    preprocessing standardises already, and scaling again would copy every trial's training rows."""
    from model import MLPClassifier

    assert MLPClassifier().robust_scaling is True
    params = suggest_params(optuna.create_study().ask(), SpaceConfig(), 5)
    assert params["robust_scaling"] is False and "label_smoothing" not in params
