"""The BLAS thread policy (tuner/threads.py, issue 17): every worker process trains with one BLAS
thread unless told otherwise, however it was started, and the limit does not outlive the study.

Each trial records the thread count BLAS itself reports while the trial trains
(``blas_threads``); these tests read it back from the study. Two ``tuner worker`` processes started
as a user would are checked in tests/e2e/test_scale.py (test_two_workers_share_one_budget_on_postgres)."""

from __future__ import annotations

import optuna

from tests.helpers import invoke
from tests.e2e.test_scale import DONE, load, run_cli, write_study
from tuner.runner import run_study
from tuner.threads import current_blas_threads


def _threads_of(storage: str, name: str) -> dict[int, int]:
    study = load(storage, name)
    assert all(t.state in DONE for t in study.trials), [t.state for t in study.trials]
    return {t.number: int(t.user_attrs["blas_threads"]) for t in study.trials}


def test_run_study_trains_with_one_thread_and_gives_the_threads_back(tmp_path):
    before = current_blas_threads()
    study_file = write_study(tmp_path, "inproc", n_trials=2, epochs=2)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    run_study(study_file, storage=storage, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert set(_threads_of(storage, "inproc").values()) == {1}
    assert current_blas_threads() == before  # a notebook keeps its own setting after the study
    more = min(2, before)  # BLAS never runs more threads than it started with
    result = invoke("worker", str(study_file), "--trials", "3", "--threads", str(more), "--storage", storage,
                    "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")
    assert result.exit_code == 0, result.output
    assert _threads_of(storage, "inproc")[2] == more
    assert current_blas_threads() == before


def test_a_thread_count_below_one_is_refused(tmp_path):
    study_file = write_study(tmp_path, "zero", n_trials=1, epochs=1)
    proc = run_cli("run", str(study_file), "--threads", "0", cwd=tmp_path)
    assert proc.returncode != 0
    assert "--threads" in proc.stderr
    assert not (tmp_path / "optuna.db").exists() or not optuna.get_all_study_names(f"sqlite:///{tmp_path}/optuna.db")
