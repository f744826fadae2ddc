"""Our Optuna storages: they refuse a trial past the study's budget, whatever the storage, and
the RDB storage writes ``trial.report`` values in batches without any reader missing one."""

import warnings

import optuna
import pytest

from tests.helpers import storage_url
from tuner.storage import _internals as internals
from tuner.storage.budget import BudgetReached, taken_slots
from tuner.storage.storages import open_storage


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


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "journal"])
def test_storages_count_taken_slots_like_the_trials_say(tmp_path, kind, request):
    url = storage_url(kind, tmp_path, request)
    storage = open_storage(url)
    study = optuna.create_study(study_name="counted", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for state in ("complete", "pruned", "fail", "fail", "fail", "running"):
            trial = study.ask()
            if state == "complete":
                study.tell(trial, 1.0)
            elif state != "running":
                study.tell(trial, state=getattr(optuna.trial.TrialState, state.upper()))
        # Trials 3 and 4 failed and were re-queued (as RetryHeartbeatStaleTrialCallback does):
        # their retries count in their place, trial 2's failure counts itself.
        for failed in (3, 4):
            study.enqueue_trial({})
            retry = study.get_trials(deepcopy=False)[-1]
            storage.set_trial_system_attr(retry._trial_id, "retry_history", [failed])
    trials = study.get_trials(deepcopy=False)
    assert taken_slots(trials) == 6  # complete, pruned, fail 2, running, two waiting retries
    assert storage.taken_slots(study._study_id) == 6


def test_queued_trials_pass_the_guard(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/o.db")
    storage.set_budget(1)
    study = optuna.create_study(study_name="queued", storage=storage)
    study.enqueue_trial({"x": 1.0})  # a retry is queued like this: it replaces a failed trial
    study.enqueue_trial({"x": 2.0})
    assert len(study.trials) == 2


def _reporting_study(url: str, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_storage(url), pruner=optuna.pruners.NopPruner())


def _values(url: str, name: str, number: int) -> dict[int, float]:
    """The trial's reported values as another process sees them (a fresh storage object)."""
    fresh = optuna.load_study(study_name=name, storage=open_storage(url))
    return fresh.trials[number].intermediate_values


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_buffered_reports_reach_the_database(tmp_path, kind, request):
    url = f"sqlite:///{tmp_path}/o.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    study = _reporting_study(url, "reports")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("run_id", f"run-{trial.number}")
        for step in range(1, 8):
            trial.report(step / 10, step)
        own = trial.study.trials[trial.number]  # own reads see the buffered writes
        assert own.intermediate_values[7] == 0.7 and own.user_attrs["run_id"] == f"run-{trial.number}"
        trial.set_user_attr("history", {"loss": [0.5, 0.25]})
        return 1.0

    study.optimize(objective, n_trials=2)
    fresh = optuna.load_study(study_name="reports", storage=open_storage(url))
    for number in (0, 1):
        assert _values(url, "reports", number) == {s: s / 10 for s in range(1, 8)}
        assert fresh.trials[number].user_attrs == {"run_id": f"run-{number}", "history": {"loss": [0.5, 0.25]}}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_buffered_params_are_seen_from_the_first_report(tmp_path, kind, request):
    url = f"sqlite:///{tmp_path}/o.db" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    study = _reporting_study(url, "params")
    seen = []

    def other_process_params(number: int) -> dict:
        return optuna.load_study(study_name="params", storage=open_storage(url)).trials[number].params

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        kind_ = trial.suggest_categorical("kind", ["a", "b"])
        trial.report(x, 1)
        seen.append(other_process_params(trial.number))
        assert trial.study.trials[trial.number].params == {"x": x, "kind": kind_}  # own reads
        return x

    study.optimize(objective, n_trials=3)
    # trial 0 writes each new name at once; later trials write theirs with the first report
    assert seen == [t.params for t in study.trials] and all(set(p) == {"x", "kind"} for p in seen)
    trial = study.ask()  # a trial that never reports: its parameters are written when it ends
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, 0.5)
    assert set(other_process_params(trial.number)) == {"x"}
    with pytest.raises(ValueError, match="different distribution"):  # checked when suggested
        study.ask().suggest_int("x", 0, 3)


def test_a_pruned_trial_keeps_its_last_report_as_value(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    study = _reporting_study(url, "pruned")

    def objective(trial: optuna.Trial) -> float:
        trial.report(0.25, 1)
        trial.report(0.5, 2)
        raise optuna.TrialPruned()

    study.optimize(objective, n_trials=1)
    fresh = optuna.load_study(study_name="pruned", storage=open_storage(url)).trials[0]
    assert fresh.state == optuna.trial.TrialState.PRUNED
    assert fresh.value == 0.5 and fresh.intermediate_values == {1: 0.25, 2: 0.5}


def test_reports_of_a_long_trial_are_written_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(internals, "FLUSH_SECONDS", 0.0)
    url = f"sqlite:///{tmp_path}/o.db"
    study = _reporting_study(url, "live")
    seen = []

    def objective(trial: optuna.Trial) -> float:
        trial.report(0.1, 1)
        trial.report(0.2, 2)
        seen.append(_values(url, "live", trial.number))  # another process, mid-trial
        trial.set_user_attr("stage", "first")
        trial.set_user_attr("stage", "second")  # rows written by an earlier flush are updated
        trial.study._storage.set_trial_intermediate_value(trial._trial_id, 2, 0.3)  # trial.report refuses
        return 1.0

    study.optimize(objective, n_trials=1)
    assert seen == [{1: 0.1, 2: 0.2}]
    fresh = optuna.load_study(study_name="live", storage=open_storage(url)).trials[0]
    assert fresh.intermediate_values == {1: 0.1, 2: 0.3} and fresh.user_attrs == {"stage": "second"}


def test_a_trial_failed_elsewhere_drops_its_buffered_reports(tmp_path):
    url = f"sqlite:///{tmp_path}/o.db"
    storage = open_storage(url)
    study = optuna.create_study(study_name="stale", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are meant for study.optimize
        trial = study.ask()
    trial.report(0.3, 1)
    other = open_storage(url)  # the worker that found this trial's heartbeat stale
    other.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    storage.flush_pending()  # must not raise: the trial is finished, its state says why
    assert _values(url, "stale", 0) == {}
    assert study.trials[0].state == optuna.trial.TrialState.FAIL


def test_the_links_of_a_trial_are_written_at_once(tmp_path):
    """A trial's MLflow run id and retry link reach the database when set, not with the next
    buffered write: a worker killed a moment later still leaves its trial linked to its run."""
    from tuner.storage.retries import RETRY_OF, RUN_ID_ATTR

    url = f"sqlite:///{tmp_path}/o.db"
    study = _reporting_study(url, "links")
    seen = []

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(RUN_ID_ATTR, "run-0")
        trial.set_user_attr(RETRY_OF, 7)
        trial.set_user_attr("history", {"loss": [0.5]})  # buffered: not seen by another reader yet
        seen.append(optuna.load_study(study_name="links", storage=open_storage(url)).trials[0].user_attrs)
        return 1.0

    study.optimize(objective, n_trials=1)
    assert seen == [{RUN_ID_ATTR: "run-0", RETRY_OF: 7}]


def test_a_journal_whose_last_write_was_cut_short_is_trimmed_and_the_study_goes_on(tmp_path):
    """A process killed while appending to the journal leaves a partial last record; Optuna
    appends after it and then cannot replay the journal. Opening it drops the partial record,
    with a warning, and the study continues."""
    import warnings

    import optuna

    path = str(tmp_path / "study.journal")
    study = optuna.create_study(study_name="cut", storage=open_storage(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    whole = (tmp_path / "study.journal").read_bytes()
    (tmp_path / "study.journal").write_bytes(whole[:-7])  # the last record cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = optuna.load_study(study_name="cut", storage=open_storage(path))
    assert any("last write was cut short" in str(w.message) for w in caught)
    assert (tmp_path / "study.journal").read_bytes().endswith(b"\n")
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    reread = optuna.load_study(study_name="cut", storage=open_storage(path))
    assert len(reread.trials) == 3
    assert [t.state for t in reread.trials[:1]] == [optuna.trial.TrialState.COMPLETE]
