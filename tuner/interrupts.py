"""Ctrl-C and SIGTERM stop the study as a KeyboardInterrupt, even when the first one is lost.

Python raises the KeyboardInterrupt wherever the main thread happens to be. Raised inside a
destructor or a weakref callback (SQLAlchemy and MLflow run some), it is printed as "Exception
ignored" and swallowed, and the study would go on as if nothing happened. So the handler also
sets a flag, which the objective checks every epoch and the worker loop before each trial.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _handler(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install(hangup: bool = False) -> None:
    """Handle SIGINT and SIGTERM in this process (and SIGHUP with ``hangup``: a command whose
    child runs in its own session passes on the terminal's hang-up) and clear an earlier request.
    Signal handlers belong to the main thread: called from another thread (a notebook's worker
    thread, say), the process keeps the handlers it has."""
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    if hangup:
        signal.signal(signal.SIGHUP, _handler)


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived since :func:`install`."""
    if _requested.is_set():
        raise KeyboardInterrupt
