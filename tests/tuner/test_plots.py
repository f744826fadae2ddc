"""The parent run's plots: drawn for every kind of parameter, headless, without pyplot."""


import optuna
import pytest

from tuner.tracking.plots import write_study_plots

PNG = b"\x89PNG\r\n\x1a\n"


def _study(direction: str, n: int) -> optuna.Study:
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        layers = trial.suggest_int("n_layers", 1, 3)
        units = [trial.suggest_int(f"units_l{i}", 4, 64, log=True) for i in range(layers)]  # conditional
        lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        act = trial.suggest_categorical("activation", ["relu", "tanh"])
        return lr * sum(units) + (act == "tanh")

    study.optimize(objective, n_trials=n)
    return study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_every_plot_is_a_png(tmp_path, direction):
    study = _study(direction, 8)
    history = {"train_loss": [1.0, 0.5, 0.4], "val_accuracy": [0.5, 0.7, 0.8]}
    written = write_study_plots(study, tmp_path, history, study.best_trial)
    assert sorted(written) == ["learning_curves.png", "optimization_history.png",
                               "parallel_coordinate.png", "param_importances.png"]
    for name in written:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, name


def test_one_completed_trial_has_no_importances_and_no_history_no_curves(tmp_path):
    written = write_study_plots(_study("maximize", 1), tmp_path, None, None)
    assert sorted(written) == ["optimization_history.png", "parallel_coordinate.png"]


def test_a_study_without_completed_trials_draws_nothing(tmp_path):
    study = optuna.create_study()
    study.optimize(lambda t: float("nan"), n_trials=1)  # a failed trial
    assert write_study_plots(study, tmp_path, None, None) == []
    assert list(tmp_path.iterdir()) == []
