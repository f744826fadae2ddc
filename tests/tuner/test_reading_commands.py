"""Commands that only read a storage (``tuner status``) open it read-only (issue 12 case 10):
they create no empty optuna.db where none existed, and read an SQLite file they may not write."""

from __future__ import annotations

import subprocess
import warnings

import optuna
import pytest

from tests.helpers import invoke


def test_status_without_a_storage_creates_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    result = invoke("status")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "optuna.db does not exist" in lines[0], result.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def immutable(tmp_path):
    """``immutable(path)`` makes a file unwritable even for root (chattr +i), undone after the test."""
    made = []

    def make(path):
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (needed to make a file read-only for root)")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_status_reads_a_read_only_sqlite_file(tmp_path, immutable):
    url = f"sqlite:///{tmp_path}/optuna.db"
    storage = optuna.storages.RDBStorage(url)  # a file made elsewhere (not in WAL mode)
    study = optuna.create_study(study_name="ro", storage=storage, direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    storage.engine.dispose()  # as when its process has ended
    immutable(tmp_path / "optuna.db")
    listed = invoke("status", "--storage", url)
    assert listed.exit_code == 0 and "ro" in listed.output and "Traceback" not in listed.output, listed.output
    shown = invoke("status", "ro", "--storage", url)
    assert shown.exit_code == 0, shown.output
    assert f"best trial {study.best_trial.number}: {study.best_value:.4f}" in shown.output


def test_the_trials_table_shows_values_the_study_file_fixes():
    """A fixed parameter is not an Optuna parameter but a trial user attribute (tuner/study/space.py):
    the table of top trials shows it all the same, instead of "-"."""
    import optuna
    from optuna.distributions import FloatDistribution

    from tuner.cli import output as cli

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 0.01}, distributions={"learning_rate": FloatDistribution(1e-4, 0.1, log=True)},
        user_attrs={"n_layers": 2, "units_l0": 32, "units_l1": 16, "batch_size": 64, "activation": "tanh"},
        value=0.9,
    ))
    with cli.console.capture() as captured:
        cli.print_trials(study, "accuracy")
    row = next(line for line in captured.get().splitlines() if "0.9000" in line)
    assert "32-16" in row and "64" in row and "tanh" in row and "1.00e-02" in row
