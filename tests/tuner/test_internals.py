"""The Optuna and MLflow internals the tuner relies on are used in one module, and that module
fails loudly, naming what moved, when a release changes one (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage

from tuner.storage import _internals as internals
from tuner.storage._internals import InternalsChanged, check_optuna, mlflow_engine

REPO = Path(__file__).resolve().parents[2]
#: The issue's test for a private name of Optuna or MLflow.
PRIVATE = re.compile(r"optuna\.[a-z_.]*\._|\._storage\b|_cached_frozen_trial|_tracking_client")


def test_private_names_of_optuna_and_mlflow_appear_only_in_the_internals_module():
    users = {
        path.relative_to(REPO).as_posix() for path in (REPO / "tuner").rglob("*.py")
        if PRIVATE.search(path.read_text())
    }
    assert users == {"tuner/storage/_internals.py"}


def test_the_installed_optuna_has_what_the_module_relies_on():
    check_optuna()  # the module ran it at import too


def test_a_renamed_private_method_is_named(monkeypatch):
    monkeypatch.delattr(RDBStorage, "_set_trial_param")
    with pytest.raises(InternalsChanged, match=r"RDBStorage\._set_trial_param is gone"):
        check_optuna()


def test_a_changed_signature_is_named(monkeypatch):
    monkeypatch.setattr(RDBStorage, "_get_trials", lambda self, study_id, states: [])
    with pytest.raises(InternalsChanged, match=r"RDBStorage\._get_trials takes \(self, study_id, states\)"):
        check_optuna()


def test_a_trial_cache_that_no_longer_calls_an_override_is_named(monkeypatch):
    # An override nobody calls would switch the budget guard off silently.
    monkeypatch.setattr(optuna.storages._CachedStorage, "create_new_trial", lambda self, study_id, template_trial=None: 0)
    with pytest.raises(InternalsChanged, match=r"trial cache no longer calls RDBStorage\._create_new_trial"):
        check_optuna()


def test_a_missing_table_column_is_named(monkeypatch):
    expected = internals.TABLE_COLUMNS["TrialUserAttributeModel"]
    monkeypatch.setitem(internals.TABLE_COLUMNS, "TrialUserAttributeModel", (*expected, "renamed_column"))
    with pytest.raises(InternalsChanged, match="TrialUserAttributeModel lacks renamed_column"):
        check_optuna()


def test_mlflow_engine_names_what_moved(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert mlflow_engine(client).url.database.endswith("mlflow.db")

    class Moved:
        tracking_uri = client.tracking_uri

    with pytest.raises(InternalsChanged, match=r"MlflowClient\._tracking_client\.store\.engine"):
        mlflow_engine(Moved())
