"""The budget under contention (issue 16): processes released together, all asking for a trial
when the study has fewer slots left than askers, get exactly that many trials between them, on
every storage with the guard (SQLite, the journal file, PostgreSQL). Without the guard's lock the
check ("is a slot left?") and the creation race, and more trials than the budget are created.

The askers' count of taken slots is made slow (as on a busy database): askers released together
then all count before any of them creates a trial unless the lock keeps them apart, so a guard
without its lock fails this test every time instead of when the scheduler happens to interleave
them (without the delay, a no-op lock on the journal file passed a run of it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

from tests.helpers import released_together, storage_url
from tuner.storage.storages import open_storage

REPO = Path(__file__).resolve().parents[2]
ASKERS = 3
BUDGET = 3  # two trials are already taken: one slot left for three askers

ASK = """
import sys, time, warnings
import optuna
from tuner.storage.budget import BudgetReached
from tuner.storage.storages import open_storage
url, budget = sys.argv[1], int(sys.argv[2])
storage = open_storage(url)
count = storage.taken_slots
storage.taken_slots = lambda study_id: (count(study_id), time.sleep(0.5))[0]  # a slow count
storage.set_budget(budget)
study = optuna.load_study(study_name="contended", storage=storage)
print("ready", flush=True)
sys.stdin.readline()
warnings.simplefilter("ignore")
try:
    print("took", study.ask().number, flush=True)
except BudgetReached:
    print("refused", flush=True)
"""


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_askers_released_together_take_exactly_the_slots_left(tmp_path, kind, request):
    url = storage_url(kind, tmp_path, request)
    study = optuna.create_study(study_name="contended", storage=open_storage(url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(BUDGET - 1):
            study.tell(study.ask(), 1.0)
    outputs = released_together(ASK, [[url, str(BUDGET)]] * ASKERS, cwd=REPO)
    answers = sorted(out.split()[0] for out in outputs)
    assert answers == ["refused"] * (ASKERS - 1) + ["took"], outputs
    assert len(optuna.load_study(study_name="contended", storage=open_storage(url)).trials) == BUDGET
