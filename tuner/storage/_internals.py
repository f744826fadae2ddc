"""The one module that relies on Optuna and MLflow internals, each checked before it is used.

Why any: Optuna's trial cache (``_CachedStorage``, which ``optuna.create_study`` wraps around
every RDB storage) creates trials, sets parameters and reads trials through private methods of
the RDB storage. :class:`TunerRDBStorage` overrides those three methods (for the budget guard
and for buffered writes, see its docstring) and writes its buffered rows with Optuna's own
transaction helper and table models. MLflow keeps its SQLAlchemy engine behind a private
attribute of the client; :func:`mlflow_engine` reaches it to put a SQLite tracking store in
write-ahead-log mode.

An override whose method a release renamed is simply no longer called: the budget guard would
switch off, or buffered reports stay unseen by other workers, with no error. So
:func:`check_optuna` runs when this module is imported: every method overridden here still
exists on ``RDBStorage`` with the parameters it is overridden with, the trial cache still calls
it, and the helpers and table columns used here exist; otherwise :class:`InternalsChanged`
names what moved. :func:`mlflow_engine` checks the same of MLflow's client when it is called
(importing MLflow here would slow every command). Nothing outside this module uses a private
name of either library (:mod:`tests.tuner.test_internals` greps for them).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import optuna
from optuna.storages import RDBStorage

from tuner.errors import TunerError
from tuner.search.constraints import UNTRAINED_ATTR
from tuner.storage.budget import BudgetGuard, free_untrained
from tuner.storage.locks import advisory_lock, file_lock
from tuner.storage.retries import RETRY_HISTORY, RETRY_OF, RUN_ID_ATTR, last_retried


class InternalsChanged(TunerError):
    """A library no longer has an internal that this module relies on (a newer release): one
    line saying what moved, as for any error the user's installation causes."""


#: The private methods of RDBStorage overridden below, with the parameters they take.
OVERRIDDEN = {
    "_create_new_trial": ("self", "study_id", "template_trial"),
    "_set_trial_param": (
        "self",
        "trial_id",
        "param_name",
        "param_value_internal",
        "distribution",
        "previous_distribution",
    ),
    "_get_trials": ("self", "study_id", "states", "included_trial_ids", "trial_id_greater_than"),
}
#: The other internals used: the transaction helper, and the tables and columns written.
RDB_MODULES = ("optuna.storages._rdb.storage", "optuna.storages._rdb.models")
TABLE_COLUMNS = {
    "TrialModel": ("trial_id", "study_id", "number", "state", "find_or_raise_by_id"),
    "TrialParamModel": ("trial_id", "param_name", "param_value", "distribution_json"),
    "TrialIntermediateValueModel": (
        "trial_id",
        "step",
        "intermediate_value",
        "intermediate_value_type",
        "intermediate_value_to_stored_repr",
    ),
    "TrialUserAttributeModel": ("trial_id", "key", "value_json"),
    "TrialSystemAttributeModel": ("trial_id", "key", "value_json"),
}


def _names_called(cls: type) -> set[str]:
    """Every attribute name the methods of ``cls`` use (nested code included)."""
    names: set[str] = set()
    codes = [f.__code__ for f in vars(cls).values() if inspect.isfunction(f)]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if inspect.iscode(c))
    return names


def check_optuna() -> None:
    """Raise :class:`InternalsChanged` unless every Optuna internal used here is as expected."""
    import importlib

    problems = []
    called = _names_called(optuna.storages._CachedStorage)  # a private class: what this checks
    for name, expected in OVERRIDDEN.items():
        method = getattr(RDBStorage, name, None)
        if method is None:
            problems.append(f"RDBStorage.{name} is gone")
            continue
        found = tuple(inspect.signature(method).parameters)
        if found != expected:
            problems.append(
                f"RDBStorage.{name} takes ({', '.join(found)}), not ({', '.join(expected)})"
            )
        if name not in called:
            problems.append(f"Optuna's trial cache no longer calls RDBStorage.{name}")
    try:
        session_module, models = (importlib.import_module(m) for m in RDB_MODULES)
    except ImportError as exc:
        problems.append(f"cannot import Optuna's RDB internals: {exc}")
    else:
        if not callable(getattr(session_module, "_create_scoped_session", None)):
            problems.append("optuna.storages._rdb.storage._create_scoped_session is gone")
        for table, columns in TABLE_COLUMNS.items():
            model = getattr(models, table, None)
            missing = (
                [c for c in columns if not hasattr(model, c)]
                if model is not None
                else ["the table"]
            )
            if missing:
                problems.append(f"Optuna's {table} lacks {', '.join(missing)}")
    if problems:
        raise InternalsChanged(
            f"optuna {optuna.__version__} changed internals that tuner/storage/_internals.py "
            "relies on: "
            + "; ".join(problems)
            + " (install an optuna release this version of the tuner knows, e.g. 5.0)"
        )


check_optuna()

from optuna.storages._rdb import models  # noqa: E402 - checked above
from optuna.storages._rdb.storage import _create_scoped_session  # noqa: E402 - checked above


def mlflow_engine(client):
    """The SQLAlchemy engine of an MlflowClient's database store (:class:`InternalsChanged` if
    MLflow keeps it elsewhere now)."""
    import sqlalchemy

    engine = getattr(
        getattr(getattr(client, "_tracking_client", None), "store", None), "engine", None
    )
    if not isinstance(engine, sqlalchemy.engine.Engine):
        import mlflow

        raise InternalsChanged(
            f"mlflow {mlflow.__version__} changed internals that tuner/storage/_internals.py "
            "relies on: MlflowClient._tracking_client.store.engine is no SQLAlchemy engine "
            "(install an mlflow release this version of the tuner knows, e.g. 3.17)"
        )
    return engine


#: Seconds a trial's reported values and user attributes may wait in memory before they are written.
FLUSH_SECONDS = 1.0
#: User attributes written at once, not buffered: they link a trial to its MLflow run and to the
#: trial it retries. A worker killed within the buffer's second would otherwise leave its trial
#: without them, and the heartbeat retry could not close the dead trial's run or link the two.
UNBUFFERED_ATTRS = frozenset({RUN_ID_ATTR, RETRY_OF})


@dataclass
class _PendingWrites:
    """A running trial's writes not yet in the database (see :class:`TunerRDBStorage`)."""

    since: float
    #: name -> (internal value, distribution, the study's distribution for that name)
    params: dict[str, tuple[float, Any, Any]] = field(default_factory=dict)
    reports: dict[int, float] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)


class TunerRDBStorage(RDBStorage):
    """Optuna's RDB storage with three changes for tuning many short trials.

    - a new trial is created only while the study's budget is not taken (see
      :mod:`tuner.storage.budget`); queued trials (enqueued, retries) pass through. Optuna's trial
      cache calls the private ``_create_new_trial``, so that is the method overridden;
    - a running trial's ``trial.report`` values and user attributes (but the links of
      :data:`UNBUFFERED_ATTRS`) are written in one transaction per trial and second instead of
      one per call (a commit each, which on SQLite costs a short trial a good part of its time).
      They are written before the trial's state changes and before any read through this
      storage, so the trial's own process always sees them; other workers see them up to a
      second late, which no pruner here depends on (median and
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
    #: Whether taken_slots counts trials pruned before training (see set_budget).
    count_untrained: bool = True

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
    def _set_trial_param(
        self, trial_id, param_name, param_value_internal, distribution, previous_distribution
    ):
        if previous_distribution is None:
            return super()._set_trial_param(
                trial_id, param_name, param_value_internal, distribution, None
            )
        optuna.distributions.check_distribution_compatibility(previous_distribution, distribution)
        entry = (param_value_internal, distribution, previous_distribution)
        self._buffer(trial_id, lambda p: p.params.__setitem__(param_name, entry))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._buffer(trial_id, lambda p: p.reports.__setitem__(step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value) -> None:
        if key in UNBUFFERED_ATTRS:
            return super().set_trial_user_attr(trial_id, key, value)
        self._buffer(trial_id, lambda p: p.user_attrs.__setitem__(key, value))

    def flush_pending(self, trial_id: int | None = None) -> None:
        """Write the buffered parameters, reports and user attributes of ``trial_id`` (every
        trial if None)."""
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

        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        # Optuna's models declare untyped Columns; on a loaded row ``state`` is a TrialState.
        self.check_trial_is_updatable(trial_id, cast(optuna.trial.TrialState, trial.state))
        for name, (value, distribution, _) in writes.params.items():
            session.add(
                models.TrialParamModel(
                    trial_id=trial_id,
                    param_name=name,
                    param_value=value,
                    distribution_json=distribution_to_json(distribution),
                )
            )
        Row = models.TrialIntermediateValueModel
        _upsert(
            session,
            Row,
            trial_id,
            "step",
            writes.reports,
            lambda value: dict(
                zip(
                    ("intermediate_value", "intermediate_value_type"),
                    Row.intermediate_value_to_stored_repr(value),
                    strict=True,
                )
            ),
        )
        _upsert(
            session,
            models.TrialUserAttributeModel,
            trial_id,
            "key",
            writes.user_attrs,
            lambda value: {"value_json": json.dumps(value)},
        )

    # Optuna's trial cache calls the private ``_create_new_trial`` directly; the public method
    # goes through it too.
    def _create_new_trial(self, study_id, template_trial=None):
        if self.budget is None or template_trial is not None:
            return super()._create_new_trial(study_id, template_trial)
        return self.budget.create(
            study_id, lambda: super(TunerRDBStorage, self)._create_new_trial(study_id)
        )

    def taken_slots(self, study_id: int) -> int:
        """:func:`tuner.storage.budget.taken_slots` of the study, counted in the database.

        Counting there spares loading every trial with its attributes.
        """
        import sqlalchemy

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
            retried = {
                n for (value,) in histories if (n := last_retried(json.loads(value))) is not None
            }
            retried_failures = 0
            if retried:
                retried_failures = (
                    session.query(sqlalchemy.func.count(Trial.trial_id))
                    .filter(
                        Trial.study_id == study_id,
                        Trial.state == State.FAIL,
                        Trial.number.in_(retried),
                    )
                    .scalar()
                )
            # Trials pruned before training: their user attribute UNTRAINED_ATTR is true. Only a
            # constrained study makes them: an unconstrained one skips the query (set_budget).
            untrained = 0
            if by_state.get(State.PRUNED) and self.count_untrained:
                User = models.TrialUserAttributeModel
                untrained = (
                    session.query(sqlalchemy.func.count(Trial.trial_id))
                    .join(User, User.trial_id == Trial.trial_id)
                    .filter(
                        Trial.study_id == study_id,
                        Trial.state == State.PRUNED,
                        User.key == UNTRAINED_ATTR,
                        User.value_json == json.dumps(True),
                    )
                    .scalar()
                )
        n_trials = self.budget.n_trials if self.budget is not None else None
        return sum(by_state.values()) - retried_failures - free_untrained(untrained, n_trials)

    def set_budget(self, n_trials: int, *, constrained: bool = True) -> None:
        """Guard the study's budget of ``n_trials``; ``constrained`` False (a study without
        constraints, which prunes no trial before training) spares the count of such trials at
        every trial creation."""
        self.count_untrained = constrained
        self.budget = BudgetGuard(n_trials, self._budget_lock, self.taken_slots)

    def _budget_lock(self, study_id: int) -> contextlib.AbstractContextManager[None]:
        """The lock that serialises trial creation across processes.

        A PostgreSQL advisory lock per study, or one lock file beside an SQLite file; other
        databases have no cross-process guard (documented).
        """
        if self.url.startswith("postgresql"):
            return advisory_lock(self.engine, f"tuner-budget-{study_id}")
        if self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            path = self.url[len("sqlite:///") :].split("?", 1)[0]
            return file_lock(f"{path}.budget-lock")
        return contextlib.nullcontext()


def _upsert(session, model, trial_id: int, key: str, items: dict, columns) -> None:
    """One row of ``model`` per item of the trial (``key`` column = item key, other columns from
    ``columns(value)``): updated where it exists, else inserted; one SELECT for all of them."""
    if not items:
        return
    key_column = getattr(model, key)
    existing = {
        getattr(row, key): row
        for row in session.query(model).filter(
            model.trial_id == trial_id, key_column.in_(list(items))
        )
    }
    for item, value in items.items():
        fields = columns(value)
        row = existing.get(item)
        if row is None:
            session.add(model(trial_id=trial_id, **{key: item}, **fields))
        else:
            for name, field_value in fields.items():
                setattr(row, name, field_value)
