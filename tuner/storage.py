"""Where studies live: Optuna's own storages, resolved from a flag, a variable or the default.

The default is an SQLite file in the working directory; PostgreSQL URLs are what several hosts
share. A path ending in ``.log`` or ``.journal`` selects Optuna's journal file storage, which is
safe for several processes on one host.
"""

from __future__ import annotations

import os
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from .errors import TunerError

DEFAULT_STORAGE = "sqlite:///optuna.db"
STORAGE_ENV = "TUNER_STORAGE"
HEARTBEAT_INTERVAL = 10
GRACE_PERIOD = 30
SQLITE_LOCK_TIMEOUT = 120


def resolve_storage_url(flag: str | None = None) -> str:
    """The storage URL in force: ``--storage``, else ``$TUNER_STORAGE``, else the SQLite file."""
    return flag or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def _redact(url: str) -> str:
    """The URL without its password, for messages and tags."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        # Several local processes share one file: wait for a lock instead of failing after 5 s.
        return {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}}
    return {"pool_pre_ping": True}


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; one clear TunerError when it cannot be opened."""
    if url.endswith((".log", ".journal")) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TunerError(f"cannot open the study storage {_redact(url)}: {first_line}") from None


def load_existing_study(name: str, storage: optuna.storages.BaseStorage, url: str) -> optuna.Study:
    """An existing study, or a TunerError naming the studies that do exist."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
        known = ", ".join(names) if names else "none"
        raise TunerError(
            f"no study named {name!r} in {_redact(url)} (studies there: {known})"
        ) from None
