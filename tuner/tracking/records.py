"""What is logged for one finished trial, and how it becomes MLflow entities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.tracking.keys import (
    RUN_STATUS,
    TAG_MISSING,
    TAG_NOTE,
    TAG_REASON,
    TAG_RUN_NAME,
    TAG_STATE,
    dedupe,
    metric_value,
    mlflow_key,
    ms,
    param_value,
)

if TYPE_CHECKING:  # pragma: no cover
    import optuna


@dataclass
class TrialRecord:
    """What is logged for one finished trial.

    ``history[name][i]`` is the value of metric ``name`` after epoch ``i + 1``; it is logged with
    ``step = i + 1`` (steps start at 1, like Optuna's ``trial.report(value, epoch)`` in this
    project). Final ``metrics`` whose name is also a ``history`` key are logged as ``final_<name>``
    so that they do not become an extra point of the curve.

    Times are Unix seconds (``time.time()``). Epoch timestamps come from ``epoch_times`` when
    given, else are spread evenly between ``start_time`` and ``end_time``.
    """

    number: int
    params: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    state: str = "COMPLETE"  # "COMPLETE" | "PRUNED" | "FAIL"
    reason: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    epoch_times: list[float] | None = None
    #: The trial was stopped by Ctrl-C / SIGTERM: its run is closed as KILLED whatever the state.
    interrupted: bool = False
    #: Artifacts the run should have and the store refused (tag :data:`TAG_MISSING`), e.g.
    #: ``["model"]``.
    missing: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state not in RUN_STATUS:
            raise ValueError(f"state must be one of {sorted(RUN_STATUS)}, got {self.state!r}")

    @classmethod
    def from_frozen_trial(
        cls,
        trial: optuna.trial.FrozenTrial,
        *,
        fixed_params: Mapping[str, Any] | None = None,
        objective_name: str = "value",
    ) -> TrialRecord:
        """Rebuild a record from a finished Optuna trial (for ``tuner sync``).

        Params are ``fixed_params`` updated with the trial's params. Metrics are the objective value
        (as ``objective_name``) plus the numeric user attributes. The history is the user attribute
        ``history`` when it is a ``{name: [values]}`` dict, else the intermediate values reported to
        Optuna (as ``objective_name``, one point per reported step, in step order). The reason is
        the user attribute ``reason`` or Optuna's ``fail_reason`` system attribute.
        """
        state = trial.state.name
        if state not in RUN_STATUS:
            raise ValueError(f"trial {trial.number} is not finished (state {state})")
        params = dict(fixed_params or {})
        params.update(trial.params)
        metrics: dict[str, float] = {}
        for key, value in trial.user_attrs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[key] = float(value)
        if trial.values:  # a multi-objective trial: its first value, the study's metric
            metrics[objective_name] = float(trial.values[0])
        history_attr = trial.user_attrs.get("history")
        if isinstance(history_attr, dict) and all(
            isinstance(v, list) for v in history_attr.values()
        ):
            history = {str(k): [float(x) for x in v] for k, v in history_attr.items()}
        elif trial.intermediate_values:
            steps = sorted(trial.intermediate_values)
            history = {objective_name: [trial.intermediate_values[s] for s in steps]}
        else:
            history = {}
        reason = (
            trial.user_attrs.get("reason")
            or trial.user_attrs.get("fail_reason")
            or trial.system_attrs.get("fail_reason")
        )
        return cls(
            number=trial.number,
            params=params,
            history=history,
            metrics=metrics,
            state=state,
            reason=None if reason is None else str(reason),
            start_time=trial.datetime_start.timestamp() if trial.datetime_start else None,
            end_time=trial.datetime_complete.timestamp() if trial.datetime_complete else None,
        )


def trial_entities(record: TrialRecord) -> tuple[list[Any], list[Any], list[Any]]:
    from mlflow.entities import Metric, Param, RunTag

    end_ms = ms(record.end_time)
    start_ms = ms(record.start_time) if record.start_time is not None else end_ms
    metrics: list[Metric] = []
    for name, values in record.history.items():
        key = mlflow_key(name)
        n = len(values)
        for i, value in enumerate(values):
            v = metric_value(value)
            if v is None:
                continue
            if record.epoch_times is not None and i < len(record.epoch_times):
                ts = ms(record.epoch_times[i])
            else:
                ts = start_ms + (end_ms - start_ms) * (i + 1) // n
            metrics.append(Metric(key, v, ts, i + 1))
    history_keys = {mlflow_key(k) for k in record.history}
    for name, value in record.metrics.items():
        v = metric_value(value)
        if v is None:
            continue
        key = mlflow_key(name)
        if key in history_keys:
            key = mlflow_key(f"final_{name}")
        metrics.append(Metric(key, v, end_ms, 0))
    params = dedupe([Param(mlflow_key(k), param_value(v)) for k, v in record.params.items()])
    tags = [RunTag(TAG_STATE, record.state), RunTag(TAG_RUN_NAME, run_name(record))]
    if record.reason:
        tags.append(RunTag(TAG_REASON, record.reason[:8000]))
        tags.append(RunTag(TAG_NOTE, record.reason[:8000]))
    if record.missing:
        tags.append(RunTag(TAG_MISSING, ", ".join(record.missing)))
    return metrics, params, tags


def trial_score(record: TrialRecord) -> float | None:
    """The trial's validation score: its final metric named like its first ``val_`` curve
    (``val_<study metric>``, the objective; see :mod:`tuner.search.objective`), None without one."""
    for name in record.history:
        if str(name).startswith("val_") and metric_value(record.metrics.get(name)) is not None:
            return metric_value(record.metrics[name])
    return None


def run_name(record: TrialRecord) -> str:
    """The name a finished trial's run shows in the runs table, its state and score at a glance:
    ``trial-3 0.9722`` (complete: its validation score), ``trial-7 pruned@12`` (the epoch it was
    pruned at), ``trial-5 failed``, ``trial-2 interrupted`` (Ctrl-C / SIGTERM; run again)."""
    name = f"trial-{record.number}"
    if record.interrupted:
        return f"{name} interrupted"
    if record.state == "FAIL":
        return f"{name} failed"
    if record.state == "PRUNED":
        epoch = metric_value(record.metrics.get("pruned_epoch"))
        return f"{name} pruned" + (f"@{int(epoch)}" if epoch is not None else "")
    score = trial_score(record)
    return name if score is None else f"{name} {score:.4g}"
