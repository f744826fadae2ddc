"""Process-wide settings of the ``tuner`` command: its libraries' logging and warnings, MLflow's
HTTP client settings, the garbage collector; and the servers it starts as child processes.

The CLI owns its process and calls :func:`own_process` in every command that tunes or reads a
study (so do the worker processes ``tuner run --jobs`` starts); library code never changes such
settings, so that a notebook calling :func:`tuner.runner.run_study` keeps its own logging,
warning filters, environment and collector (``tests/tuner/test_side_effects.py``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator

#: MLflow's HTTP client settings the command uses unless the user sets them (MLflow reads them
#: from the environment): a tracking server going down costs a few seconds once instead of
#: minutes per call (MLflow's defaults: 7 retries, backoff factor 2, a 120 s timeout), and
#: ``set_terminated`` does not print a "View run" link per trial.
MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


class NoInterruptTraceback(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C / SIGTERM as failed *with* the KeyboardInterrupt's
    traceback; keep its one-line warning, drop the traceback (the user pressed Ctrl-C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_libraries() -> None:
    """Optuna's per-trial lines and MLflow's and Alembic's notices off, no traceback for a trial
    stopped by Ctrl-C (:class:`NoInterruptTraceback` on Optuna's handlers); experimental and
    future warnings ignored (they concern the libraries, not the user's study)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, NoInterruptTraceback) for f in handler.filters):
            handler.addFilter(NoInterruptTraceback())


def one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the command shows it: ``warning: <message>``, without the file, line number
    and source line of the code that raised it (which tell a user nothing about their study)."""
    return f"warning: {message}\n"


def own_process() -> None:
    """Everything the command sets for its process: :func:`quiet_libraries`, warnings shown as
    one line (:func:`one_line_warning`) and :data:`MLFLOW_ENV_DEFAULTS` (where the environment
    has no value of its own). The command also asks the runner to freeze the heap for the
    collector (``freeze_heap``)."""
    quiet_libraries()
    warnings.formatwarning = one_line_warning
    for key, value in MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def frozen_heap(enabled: bool) -> Iterator[Callable[[], None]]:
    """With ``enabled``, keep the objects that exist before a study starts (the loaded libraries)
    out of the garbage collector's full passes while it runs (``gc.freeze``), and yield a function
    that freezes what the study's set-up made too (database engines, table metadata: they live as
    long as the study); everything is handed back at the end (``gc.unfreeze``).

    MLflow, SQLAlchemy, Optuna and scikit-learn make a heap of hundreds of thousands of objects,
    and every full collection walks all of them. But freezing is process-wide, and ``gc.unfreeze``
    hands back every frozen object, also those someone else froze: only a caller that owns its
    process (the ``tuner`` command, its worker processes) enables it. Without ``enabled`` nothing
    changes and the yielded function does nothing.
    """
    if not enabled:
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------------------- child servers


def run_server(cmd: list[str], env: dict[str, str]) -> int:
    """Run the server ``cmd`` in a session of its own, under :func:`guard` (so the server's own
    children, such as uvicorn's workers, share one process group), until it exits or this process
    is interrupted (a KeyboardInterrupt: Ctrl-C, SIGTERM or SIGHUP through
    :mod:`tuner.interrupts`); either way the whole group is stopped (:func:`stop_group`), so
    nothing is left answering on the port. Should this process be killed outright, the guard
    stops the group itself.

    Returns the server's exit code when it ended by itself; an interrupt propagates once the group
    is stopped. In its own session the server does not get the terminal's Ctrl-C or hang-up: this
    process passes them on.
    """
    from tuner import interrupts

    interrupts.install(hangup=True)
    guarded = [sys.executable, "-m", "tuner.process", str(os.getpid()), *cmd]
    proc = subprocess.Popen(guarded, env=env, start_new_session=True)
    try:
        return proc.wait()
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """End every process of ``proc``'s process group: SIGTERM (a server's orderly shutdown), and
    SIGKILL for what is still there after ``grace`` seconds or at a second interrupt."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        proc.poll()  # reap the leader, so that a zombie does not count as alive
        if not group_alive(proc.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            _wait_for_group(proc.pid, wait, proc)
        except KeyboardInterrupt:  # asked again: stop waiting for an orderly shutdown
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _wait_for_group(
    pgid: int, seconds: float, leader: subprocess.Popen | None = None, besides: int = 0
) -> None:
    """Wait up to ``seconds`` until no process of group ``pgid`` (other than ``besides``) runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not group_alive(pgid, besides):
            return
        time.sleep(0.05)


def guard(parent: int, cmd: list[str], grace: float = 15.0) -> int:
    """The leader of a server's session (``python -m tuner.process PARENT CMD...``): runs ``cmd``
    and, when asked to stop (SIGTERM, SIGINT, SIGHUP) or when the command that started it is gone
    (killed outright: its pid ``parent`` is no longer this process's parent), ends every other
    process of its group, so that no server outlives its ``tuner`` command. Returns the server's
    exit code, or 130 when stopped."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    child = subprocess.Popen(cmd)
    try:
        while os.getppid() == parent:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return child.wait(timeout=0.5)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        # Nothing cuts the clean-up short.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)  # the group, this process excepted (it ignores SIGTERM)
        _wait_for_group(os.getpgrp(), grace, child, besides=os.getpid())
        if group_alive(os.getpgrp(), besides=os.getpid()):
            os.killpg(0, signal.SIGKILL)


def group_alive(pgid: int, besides: int = 0) -> bool:
    """Whether a process of group ``pgid`` (other than ``besides``) still runs. Zombies do not
    count: a child re-parented to an init that does not reap (in some containers) stays a zombie
    but answers no request. Without ``/proc``, the kernel's answer (zombies and ``besides``
    included)."""
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
    for entry in entries:
        found = _group_and_state(entry) if entry.isdigit() and int(entry) != besides else None
        if found is not None and found[0] == pgid and found[1] not in "ZX":  # zombie, dead
            return True
    return False


def _group_and_state(pid: str) -> tuple[int, str] | None:
    """``(process group, state letter)`` of a process from ``/proc/<pid>/stat``, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    except (OSError, IndexError):
        return None
    return int(fields[2]), fields[0]


if __name__ == "__main__":  # the guard of a server's session (run_server)
    sys.exit(guard(int(sys.argv[1]), sys.argv[2:]))
