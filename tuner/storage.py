"""Where studies live: Optuna's own storages, resolved from a flag, a variable or the default.

The default is an SQLite file in the working directory; PostgreSQL URLs are what several hosts
share. A path ending in ``.log`` or ``.journal`` selects Optuna's journal file storage, which is
safe for several processes on one host.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from .budget import RETRY_HISTORY, BudgetGuard, advisory_lock, file_lock, last_retried, taken_slots
from .errors import TunerError
from .sqlite import use_wal
from .store_creation import open_racing, sqlite_file
from .urls import redact_url

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
        raise TunerError(f"${GRACE_PERIOD_ENV} ({grace}) must be longer than the heartbeat interval ({interval})")
    return interval, grace


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several local processes share one file: wait for a lock instead of failing after 5 s.
        return {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}}
    return {"pool_pre_ping": True}


#: Seconds a trial's reported values and user attributes may wait in memory before they are written.
FLUSH_SECONDS = 1.0


@dataclass
class _PendingWrites:
    """A running trial's writes not yet in the database (see :class:`TunerRDBStorage`)."""

    since: float
    #: name -> (internal value, distribution, the study's distribution for that name)
    params: dict[str, tuple[float, Any, Any]] = field(default_factory=dict)
    reports: dict[int, float] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)


class TunerRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage with three changes for tuning many short trials:

    - a new trial is created only while the study's budget is not taken (see
      :mod:`tuner.budget`); queued trials (enqueued, heartbeat retries) pass through;
    - a running trial's ``trial.report`` values and user attributes are written in one
      transaction per trial and second instead of one per call (a commit each: a sixth of a
      digits trial's time on SQLite). They are written before the trial's state changes and
      before any read through this storage, so the trial's own process always sees them; other
      workers see them up to a second late, which no pruner here depends on (median and
      percentile pruners compare with completed trials, successive halving with its rung
      attributes, which are system attributes and written at once);
    - its parameters, likewise, are written together with its first report (so other workers'
      constant-liar samplers see a running trial's parameters once it trains), each still
      checked against the study's distribution for that name when it is suggested. A name this
      process has not seen yet is written at once, with Optuna's own check in the database. A
      worker killed before its trial's first report leaves that trial without parameters; its
      heartbeat retry then samples afresh instead of repeating them.
    """

    budget: BudgetGuard | None = None

    def __init__(self, *args, **kwargs) -> None:
        self._pending: dict[int, _PendingWrites] = {}
        self._pending_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _buffer(self, trial_id: int, write) -> None:
        now = time.monotonic()
        with self._pending_lock:
            pending = self._pending.setdefault(trial_id, _PendingWrites(since=now))
            write(pending)
            due = now - pending.since >= FLUSH_SECONDS or bool(pending.params and pending.reports)
        if due:
            self.flush_pending(trial_id)

    # Optuna's trial cache calls this with the distribution it knows for the name.
    def _set_trial_param(self, trial_id, param_name, param_value_internal, distribution, previous_distribution):
        if previous_distribution is None:
            return super()._set_trial_param(trial_id, param_name, param_value_internal, distribution, None)
        optuna.distributions.check_distribution_compatibility(previous_distribution, distribution)
        entry = (param_value_internal, distribution, previous_distribution)
        self._buffer(trial_id, lambda p: p.params.__setitem__(param_name, entry))

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._buffer(trial_id, lambda p: p.reports.__setitem__(step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value) -> None:
        self._buffer(trial_id, lambda p: p.user_attrs.__setitem__(key, value))

    def flush_pending(self, trial_id: int | None = None) -> None:
        """Write the buffered parameters, reports and user attributes of ``trial_id`` (every
        trial if None)."""
        from optuna.storages._rdb.storage import _create_scoped_session  # Optuna's own transaction

        with self._pending_lock:
            ids = list(self._pending) if trial_id is None else [trial_id]
            pending = {i: self._pending.pop(i) for i in ids if i in self._pending}
        for tid, writes in pending.items():
            try:
                with _create_scoped_session(self.scoped_session, True) as session:
                    self._write_pending(session, tid, writes)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # another worker failed the trial (lost heartbeat): its state change says so

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        self.flush_pending(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    def get_trial(self, trial_id):
        self.flush_pending(trial_id)
        return super().get_trial(trial_id)

    def _get_trials(self, *args, **kwargs):
        self.flush_pending()
        return super()._get_trials(*args, **kwargs)

    def _write_pending(self, session, trial_id: int, writes: _PendingWrites) -> None:
        """What Optuna's ``set_trial_param``, ``set_trial_intermediate_value`` and
        ``set_trial_user_attr`` write, for all of a trial's buffered writes in a few queries."""
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models

        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        self.check_trial_is_updatable(trial_id, trial.state)
        for name, (value, distribution, _) in writes.params.items():
            session.add(models.TrialParamModel(
                trial_id=trial_id, param_name=name, param_value=value,
                distribution_json=distribution_to_json(distribution),
            ))
        Row = models.TrialIntermediateValueModel
        _upsert(session, Row, trial_id, "step", writes.reports, lambda value: dict(
            zip(("intermediate_value", "intermediate_value_type"), Row.intermediate_value_to_stored_repr(value))
        ))
        _upsert(session, models.TrialUserAttributeModel, trial_id, "key", writes.user_attrs,
                lambda value: {"value_json": json.dumps(value)})

    # Optuna's trial cache calls the private ``_create_new_trial`` directly; the public method
    # goes through it too.
    def _create_new_trial(self, study_id, template_trial=None):
        if self.budget is None or template_trial is not None:
            return super()._create_new_trial(study_id, template_trial)
        return self.budget.create(study_id, lambda: super(TunerRDBStorage, self)._create_new_trial(study_id))

    def taken_slots(self, study_id: int) -> int:
        """:func:`tuner.budget.taken_slots` of the study, counted in the database: loading every
        trial with its attributes instead took a fifth of a digits study's time."""
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        Trial, Attr = models.TrialModel, models.TrialSystemAttributeModel
        State = optuna.trial.TrialState
        with _create_scoped_session(self.scoped_session) as session:
            by_state = dict(
                session.query(Trial.state, sqlalchemy.func.count(Trial.trial_id))
                .filter(Trial.study_id == study_id)
                .group_by(Trial.state)
            )
            histories = (
                session.query(Attr.value_json)
                .join(Trial, Trial.trial_id == Attr.trial_id)
                .filter(Trial.study_id == study_id, Attr.key == RETRY_HISTORY)
            )
            retried = {n for (value,) in histories if (n := last_retried(json.loads(value))) is not None}
            retried_failures = 0
            if retried:
                retried_failures = (
                    session.query(sqlalchemy.func.count(Trial.trial_id))
                    .filter(Trial.study_id == study_id, Trial.state == State.FAIL, Trial.number.in_(retried))
                    .scalar()
                )
        return sum(by_state.values()) - retried_failures

    def set_budget(self, n_trials: int) -> None:
        if self.url.startswith("postgresql"):
            lock = lambda study_id: advisory_lock(self.engine, f"tuner-budget-{study_id}")  # noqa: E731
        elif self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            path = self.url[len("sqlite:///"):].split("?", 1)[0]
            lock = lambda study_id: file_lock(f"{path}.budget-lock")  # noqa: E731
        else:  # other databases: no cross-process guard (documented)
            lock = lambda study_id: contextlib.nullcontext()  # noqa: E731
        self.budget = BudgetGuard(n_trials, lock, self.taken_slots)


def _upsert(session, model, trial_id: int, key: str, items: dict, columns) -> None:
    """One row of ``model`` per item of the trial (``key`` column = item key, other columns from
    ``columns(value)``): updated where it exists, else inserted; one SELECT for all of them."""
    if not items:
        return
    key_column = getattr(model, key)
    existing = {
        getattr(row, key): row
        for row in session.query(model).filter(model.trial_id == trial_id, key_column.in_(list(items)))
    }
    for item, value in items.items():
        fields = columns(value)
        row = existing.get(item)
        if row is None:
            session.add(model(trial_id=trial_id, **{key: item}, **fields))
        else:
            for name, field_value in fields.items():
                setattr(row, name, field_value)


class TunerJournalStorage(optuna.storages.JournalStorage):
    """Optuna's journal file storage with the same budget guard (a lock file beside it)."""

    budget: BudgetGuard | None = None

    def __init__(self, path: str) -> None:
        from optuna.storages.journal import JournalFileBackend

        super().__init__(JournalFileBackend(path))
        self._path = path

    def create_new_trial(self, study_id, template_trial=None):
        if self.budget is None or template_trial is not None:
            return super().create_new_trial(study_id, template_trial)
        return self.budget.create(study_id, lambda: super(TunerJournalStorage, self).create_new_trial(study_id))

    def taken_slots(self, study_id: int) -> int:
        """:func:`tuner.budget.taken_slots` of the study (the journal is replayed in memory)."""
        return taken_slots(self.get_all_trials(study_id, deepcopy=False))

    def set_budget(self, n_trials: int) -> None:
        lock = lambda study_id: file_lock(f"{self._path}.budget-lock")  # noqa: E731
        self.budget = BudgetGuard(n_trials, lock, self.taken_slots)


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
            f"no study storage at {redact_url(url)}: {path} does not exist (nothing has run with it; "
            "--storage or $TUNER_STORAGE names another)"
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
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                skip_table_creation=path is not None,
            )
        if url.startswith("sqlite") and path is None:
            use_wal(storage.engine)
        return storage

    try:
        # Workers started together on an empty database all create Optuna's tables.
        return open_rdb() if read_only else open_racing(open_rdb, url)
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunerError(f"cannot open the study storage {redact_url(url)}: {first_line}") from None


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and so re-queue, see :func:`tuner.budget.retry_links`) the trials whose worker
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
