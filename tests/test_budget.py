"""The storage refuses to create a trial past the study's budget, whatever the storage."""

import warnings

import optuna
import pytest

from tuner.budget import BudgetReached
from tuner.storage import open_storage


def _ask_until_refused(storage, budget: int) -> optuna.Study:
    storage.set_budget(budget)
    study = optuna.create_study(study_name="guarded", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(BudgetReached, match=f"{budget} trials are all taken"):
            for _ in range(budget + 2):
                trial = study.ask()
                study.tell(trial, 1.0)
    return study


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_local_storages_stop_at_the_budget(tmp_path, kind):
    url = f"sqlite:///{tmp_path}/o.db" if kind == "sqlite" else str(tmp_path / "o.journal")
    study = _ask_until_refused(open_storage(url), 3)
    assert len(study.trials) == 3


@pytest.mark.postgres
def test_postgres_stops_at_the_budget(postgres_url):
    study = _ask_until_refused(open_storage(postgres_url), 3)
    assert len(study.trials) == 3


def test_queued_trials_pass_the_guard(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    storage.set_budget(1)
    study = optuna.create_study(study_name="queued", storage=storage)
    study.enqueue_trial({"x": 1.0})  # a retry is queued like this: it replaces a failed trial
    study.enqueue_trial({"x": 2.0})
    assert len(study.trials) == 2
