"""Failed trials, said in one line each: the reason a trial failed, Optuna's warning about it
without the traceback, and the summary when no trial completed.

A diverging study (a learning rate far too high) fails every trial; Optuna logs each with a
full traceback and two warnings, dozens of lines per trial that hide the reason. While a study
runs in this process, :func:`one_line_failures` rewrites Optuna's warning into ``trial N
failed: <reason>`` (the reason the trial stores as ``fail_reason``) and drops the second one. It
is a filter on Optuna's own log handlers, added for the run and removed after it: nothing
process-wide is left changed (``tests/tuner/test_side_effects.py``). A program that replaced
Optuna's handler with its own logging keeps Optuna's records as they are.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence

import optuna

from model import DivergenceError

#: Optuna's two warnings about a failed trial (``optuna.study.Study.optimize``): the first
#: carries the error (and its traceback), the second the value the objective returned.
FAILED_WITH_ERROR = re.compile(
    r"Trial (\d+) failed with parameters: .* because of the following error: (.*)\.\Z", re.S
)
FAILED_WITH_VALUE = re.compile(r"Trial \d+ failed with value ")


def failure_reason(exc: BaseException) -> str:
    """The reason stored with a failed trial (user attribute ``fail_reason``, the MLflow run's
    reason tag) and printed for it: what happened, in one line."""
    if isinstance(exc, DivergenceError):
        return f"diverged: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (SIGINT/SIGTERM)"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OneLineFailures(logging.Filter):
    """Rewrites Optuna's warning about a failed trial into ``trial N failed: <reason>`` with no
    traceback, and drops its follow-up ``Trial N failed with value None`` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("optuna"):
            return True
        message = record.getMessage()
        if FAILED_WITH_VALUE.match(message):
            return False
        found = FAILED_WITH_ERROR.match(message)
        if found is None:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        reason = failure_reason(exc) if exc is not None else found.group(2)
        record.msg, record.args = f"trial {found.group(1)} failed: {reason}", ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


@contextlib.contextmanager
def one_line_failures() -> Iterator[None]:
    """While the block runs, failed trials are logged in one line each (:class:`OneLineFailures`
    on the handlers of Optuna's logger); the handlers are handed back as they were."""
    handlers = list(logging.getLogger("optuna").handlers)
    added = []
    for handler in handlers:
        if not any(isinstance(f, OneLineFailures) for f in handler.filters):
            line = OneLineFailures()
            handler.addFilter(line)
            added.append((handler, line))
    try:
        yield
    finally:
        for handler, line in added:
            handler.removeFilter(line)


def none_completed(
    trials: Sequence[optuna.trial.FrozenTrial], what: str = "no trial completed"
) -> str | None:
    """One line when ``trials`` ran and none completed: how many failed (and were pruned or
    are unfinished), and the first failure's reason (with no failure, the first stored reason a
    trial was pruned); None when a trial completed or none ran."""
    State = optuna.trial.TrialState
    if not trials or any(t.state == State.COMPLETE for t in trials):
        return None
    counts: dict[optuna.trial.TrialState, int] = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    order = [State.FAIL, State.PRUNED, State.RUNNING, State.WAITING]
    names = {State.FAIL: "failed"}
    line = f"{what}: " + ", ".join(
        f"{counts[s]} {names.get(s, s.name.lower())}" for s in order if s in counts
    )
    failed = sorted((t for t in trials if t.state == State.FAIL), key=lambda t: t.number)
    if failed:
        first = next((t for t in failed if t.user_attrs.get("fail_reason")), failed[0])
        reason = first.user_attrs.get("fail_reason") or "no reason recorded"
        line += f", first reason (trial {first.number}): {reason}"
    else:  # all pruned: say why when the trials stored it (e.g. pruned before training)
        pruned = sorted((t for t in trials if t.user_attrs.get("reason")), key=lambda t: t.number)
        if pruned:
            line += f", first reason (trial {pruned[0].number}): {pruned[0].user_attrs['reason']}"
    return line
