"""Where studies live: Optuna's own storages, resolved from a flag, a variable or the default.

The default is an SQLite file in the working directory; PostgreSQL URLs are what several hosts
share. A path ending in ``.log`` or ``.journal`` selects Optuna's journal file storage, which is
safe for several processes on one host.
"""

from __future__ import annotations

import os
import warnings
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import optuna

from tuner.errors import TunerError
from tuner.storage._internals import TunerRDBStorage
from tuner.storage.budget import BudgetGuard, taken_slots
from tuner.storage.creation import open_racing, sqlite_file
from tuner.storage.locks import file_lock
from tuner.storage.retries import RetryStaleTrial
from tuner.storage.sqlite import use_wal
from tuner.urls import redact_url

DEFAULT_STORAGE = "sqlite:///optuna.db"
STORAGE_ENV = "TUNER_STORAGE"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
#: Environment overrides (seconds) of the two above, e.g. for tests that kill a worker on purpose.
HEARTBEAT_INTERVAL_ENV = "TUNER_HEARTBEAT_INTERVAL"
GRACE_PERIOD_ENV = "TUNER_GRACE_PERIOD"
SQLITE_LOCK_TIMEOUT = 120


def resolve_storage_url(flag: str | None = None) -> str:
    """The storage URL in force: ``--storage``, else ``$TUNER_STORAGE``, else the SQLite file."""
    return flag or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def heartbeat_settings() -> tuple[int, int]:
    """``(heartbeat_interval, grace_period)`` in seconds: a RUNNING trial whose worker has not
    written a heartbeat for ``grace_period`` is failed (and retried once) by another worker.
    ``$TUNER_HEARTBEAT_INTERVAL`` / ``$TUNER_GRACE_PERIOD`` override the defaults (10 s / 30 s)."""

    def read(name: str, default: int) -> int:
        raw = os.environ.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise TunerError(f"${name} must be a whole number of seconds, got {raw!r}") from None
        if value < 1:
            raise TunerError(f"${name} must be at least 1 second, got {value}")
        return value

    interval = read(HEARTBEAT_INTERVAL_ENV, HEARTBEAT_INTERVAL)
    grace = read(GRACE_PERIOD_ENV, max(GRACE_PERIOD, 2 * interval))
    if grace <= interval:
        raise TunerError(
            f"${GRACE_PERIOD_ENV} ({grace}) must be longer than the heartbeat interval ({interval})"
        )
    return interval, grace


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several local processes share one file: wait for a lock instead of failing after 5 s.
        return {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}}
    return {"pool_pre_ping": True}


def drop_cut_write(path: str, lock: Any) -> None:
    """Truncate a journal whose last write was cut short (its process killed in the middle) back
    to its last complete line, with a warning. Optuna appends its next record after the partial
    one and then cannot replay the journal, so the study would be unusable. Done under the
    journal's own write lock, so no process is appending meanwhile."""
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        return
    lock.acquire()
    try:
        with open(file, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            keep = _last_line_end(fh, size)
            if keep == size:
                return
            fh.truncate(keep)
    finally:
        lock.release()
    warnings.warn(
        f"{path}: the journal's last write was cut short (a process killed while writing): "
        f"dropped its last {size - keep} bytes",
        UserWarning,
        stacklevel=3,
    )


def _last_line_end(fh: Any, size: int, chunk: int = 65536) -> int:
    """The offset just after the last newline of the open file ``fh`` of ``size`` bytes (0 if
    it has none), read backwards a chunk at a time."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        fh.seek(start)
        at = fh.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


class TunerJournalStorage(optuna.storages.JournalStorage):
    """Optuna's journal file storage with the same budget guard (a lock file beside it)."""

    budget: BudgetGuard | None = None

    def __init__(self, path: str) -> None:
        from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

        lock = JournalFileSymlinkLock(path)  # the backend's own default lock, shared with it
        drop_cut_write(path, lock)
        super().__init__(JournalFileBackend(path, lock_obj=lock))
        self._path = path

    def create_new_trial(self, study_id, template_trial=None):
        if self.budget is None or template_trial is not None:
            return super().create_new_trial(study_id, template_trial)
        return self.budget.create(
            study_id, lambda: super(TunerJournalStorage, self).create_new_trial(study_id)
        )

    def taken_slots(self, study_id: int) -> int:
        """:func:`tuner.storage.budget.taken_slots` of the study (from the journal in memory)."""
        n_trials = self.budget.n_trials if self.budget is not None else None
        return taken_slots(self.get_all_trials(study_id, deepcopy=False), n_trials)

    def set_budget(self, n_trials: int, *, constrained: bool = True) -> None:
        """Guard the study's budget (``constrained`` changes nothing here: the journal's trials
        are counted in memory, trials pruned before training among them)."""
        self.budget = BudgetGuard(n_trials, self._budget_lock, self.taken_slots)

    def _budget_lock(self, study_id: int) -> AbstractContextManager[None]:
        """One lock file beside the journal for every study in it."""
        return file_lock(f"{self._path}.budget-lock")


def open_storage(url: str, *, read_only: bool = False) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; one clear TunerError when it cannot be opened.

    ``read_only`` (commands that only read, such as ``tuner status``): an SQLite file is opened
    read-only, so that a file the user may not write can be read, and a missing file is an
    error instead of a new empty database."""
    if url.endswith((".log", ".journal")) and "://" not in url:
        if read_only and not Path(url).is_file():
            raise TunerError(f"no study storage at {url}: the file does not exist")
        return TunerJournalStorage(url)
    interval, grace = heartbeat_settings()
    path = sqlite_file(url) if read_only else None
    if path is not None and not path.is_file():
        raise TunerError(
            f"no study storage at {redact_url(url)}: {path} does not exist "
            "(nothing has run with it; --storage or $TUNER_STORAGE names another)"
        )
    rdb_url = f"sqlite:///file:{path}?mode=ro&uri=true" if path is not None else url

    def open_rdb() -> TunerRDBStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = TunerRDBStorage(
                rdb_url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=1),
                skip_table_creation=path is not None,
            )
        if url.startswith("sqlite") and path is None:
            use_wal(storage.engine)
        return storage

    try:
        # Workers started together on an empty database all create Optuna's tables.
        return open_rdb() if read_only else open_racing(open_rdb, url, create=_create_tables)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunerError(f"cannot open the study storage {redact_url(url)}: {first_line}") from None


def _create_tables(url: str) -> None:
    """Create Optuna's tables in the SQLite file of ``url`` and close it."""
    storage = optuna.storages.RDBStorage(url)
    storage.engine.dispose()


def has_heartbeats(storage: optuna.storages.BaseStorage) -> bool:
    """Whether trials on ``storage`` send heartbeats (the RDB storages :func:`open_storage` opens;
    not journal files), so that a dead worker's trial is failed and retried."""
    interval = getattr(storage, "get_heartbeat_interval", None)
    return interval is not None and interval() is not None


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and so re-queue, see :mod:`tuner.storage.retries`) the trials whose worker
    stopped sending heartbeats; a no-op on storages without heartbeats (journal files)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def load_existing_study(name: str, storage: optuna.storages.BaseStorage, url: str) -> optuna.Study:
    """An existing study, or a TunerError naming the studies that do exist."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
        known = ", ".join(names) if names else "none"
        raise TunerError(
            f"no study named {name!r} in {redact_url(url)} (studies there: {known})"
        ) from None
