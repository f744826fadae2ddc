"""The study's summary on its parent run: best trial, test scores, counts, plots and trials table."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TYPE_CHECKING

from .client import TrackingWarning
from .keys import TAG_MISSING, dedupe, metric_value, mlflow_key, ms, param_value
from ..requirements import n_feasible
from ..pareto import FRONT_CSV, best_trial, is_multi, tag_front, write_front
from .runs import find_trial_run, trial_runs

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from mlflow.entities import Run

logger = logging.getLogger(__name__)


def finish_parent(
    tracker,
    study: optuna.Study,
    *,
    test_scores: Mapping[str, float] | None = None,
    best_history: Mapping[str, list[float]] | None = None,
    status: str = "FINISHED",
    best_trial_test_scores: Mapping[str, float] | None = None,
    final: Mapping[str, Any] | None = None,
) -> None:
    """Log the study summary to the parent run and terminate it with ``status``.

    Logs params ``best_<param>``, metrics ``best_value``, ``best_<metric>`` (the best trial's
    final metrics, read from its child run), ``test_<metric>`` (the final model, see tuner/final.py), ``best_trial_test_<metric>`` (the best
    trial's own model), ``final_members`` / ``final_refit`` / ``final_seeds`` (tags: the final
    model's trials and weights, whether they were refit, and the copies of each), ``n_complete`` / ``n_pruned`` /
    ``n_failed``, ``n_feasible`` (the completed trials that meet the study's constraints, when it
    has some; the best trial is the best of those); tags ``best_trial_number`` / ``best_run_id``; artifacts
    ``optimization_history.png``, ``param_importances.png`` (>= 2 complete trials),
    ``parallel_coordinate.png``, ``learning_curves.png`` (``best_history``, else the best
    run's metric history) and ``trials.csv``; for a multi-objective study (tuner/pareto.py) the
    metric ``n_pareto_front``, the artifacts ``pareto_front.png`` / ``pareto_front.csv`` and the
    tag ``pareto_front`` on the front's child runs (its best trial is the primary trial). Every
    part is best effort: failures warn, never raise; artifacts the store refused are named in the
    tag ``tuner.missing`` (``tuner sync`` logs them later).
    """
    from mlflow.entities import Metric, Param, RunTag

    tracker.flush()
    if status not in ("FINISHED", "FAILED", "KILLED"):
        raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
    run_id = tracker.parent_run_id
    if run_id is None:
        warnings.warn(
            "finish_parent() without start_parent(): nothing logged",
            TrackingWarning,
            stacklevel=2,
        )
        return
    if not tracker.available():
        from ..hints import tuner_command

        warnings.warn(
            "MLflow is unreachable: the study summary was not logged to the parent run; "
            f"`{tuner_command()} sync` logs the missing trials once it is back",
            TrackingWarning,
            stacklevel=2,
        )
        return
    import optuna

    now = ms(None)
    trials = study.get_trials(deepcopy=False)
    states = optuna.trial.TrialState
    metrics = [
        Metric("n_complete", sum(t.state == states.COMPLETE for t in trials), now, 0),
        Metric("n_pruned", sum(t.state == states.PRUNED for t in trials), now, 0),
        Metric("n_failed", sum(t.state == states.FAIL for t in trials), now, 0),
    ]
    feasible = n_feasible(trials)
    if feasible is not None:
        metrics.append(Metric("n_feasible", feasible, now, 0))
    params: list[Param] = []
    tags: list[RunTag] = []
    best = None
    best_run = None
    run_history: dict[str, list[float]] = {}
    if any(t.state == states.COMPLETE for t in trials):
        with contextlib.suppress(Exception):
            best = best_trial(study)  # a multi-objective study's primary trial (tuner/pareto.py)
    if is_multi(study):
        metrics.append(Metric("n_pareto_front", len(study.best_trials), now, 0))
    if best is not None:
        params += [Param(mlflow_key(f"best_{k}"), param_value(v)) for k, v in best.params.items()]
        metrics.append(Metric("best_value", float(best.values[0]), now, 0))
        tags.append(RunTag("best_trial_number", str(best.number)))
        try:
            best_run = find_trial_run(
                tracker.client, tracker.experiment_id, tracker.study_name, best.number
            )
        except Exception as exc:  # noqa: BLE001
            logger.debug("cannot find the best trial's run", exc_info=exc)
        if best_run is not None:
            tags.append(RunTag("best_run_id", best_run.info.run_id))
            final, run_history = run_metrics(tracker, best_run)
        else:
            final = {
                k: v
                for k, v in best.user_attrs.items()
                if metric_value(v) is not None and not isinstance(v, bool)
            }
        for k, v in final.items():
            value = metric_value(v)
            if k.startswith("final_") and k[len("final_") :] in run_history:
                k = k[len("final_") :]  # the curve's final value, see TrialRecord
            if value is not None and f"best_{k}" != "best_value":
                metrics.append(Metric(mlflow_key(f"best_{k}"), value, now, 0))
    for prefix, scores in (("test", test_scores), ("best_trial_test", best_trial_test_scores)):
        for k, v in (scores or {}).items():
            value = metric_value(v)
            if value is not None:
                metrics.append(Metric(mlflow_key(f"{prefix}_{k}"), value, now, 0))
    if final:
        members = ",".join(f"{k}x{v}" for k, v in final.get("members", {}).items())
        tags += [RunTag("final_members", members), RunTag("final_refit", str(bool(final.get("refit"))).lower()),
                 RunTag("final_seeds", str(int(final.get("seeds", 1))))]
    try:
        tracker.client.log_batch(
            run_id, metrics=dedupe(metrics), params=dedupe(params), tags=tags
        )
    except Exception as exc:  # noqa: BLE001
        tracker.report_failure("study summary", None, exc)

    history = dict(best_history) if best_history else None
    if history is None:
        history = run_history or None
    what, exc = log_study_artifacts(tracker.client, run_id, study, history, best)
    if exc is not None:
        tracker.report_failure("study artifacts", None, exc)
        if what:
            try:
                tracker.client.set_tag(run_id, TAG_MISSING, what)
            except Exception as tag_exc:  # noqa: BLE001
                logger.debug("cannot tag the parent run's missing artifacts", exc_info=tag_exc)
    if is_multi(study):
        try:
            tag_front(tracker.client, trial_runs(tracker.client, tracker.experiment_id, tracker.study_name), study)
        except Exception as exc:  # noqa: BLE001
            tracker.report_failure("Pareto front tags", None, exc)
    try:
        tracker.client.set_terminated(run_id, status=status)
    except Exception as exc:  # noqa: BLE001
        tracker.report_failure("end of the parent run", None, exc)


def log_study_artifacts(
    client, run_id: str, study: optuna.Study, history: Mapping[str, list[float]] | None,
    best: optuna.trial.FrozenTrial | None,
) -> tuple[str, Exception | None]:
    """Draw the study's plots and trials table (:func:`write_artifacts`) and upload them to the
    run: ``(what, error)``, ``what`` naming them for the tag ``tuner.missing`` (``"plots,
    trials.csv"``), ``error`` what the store raised (None when they were logged)."""
    what = ""
    try:
        with tempfile.TemporaryDirectory(prefix="tuner-artifacts-") as tmp:
            write_artifacts(study, Path(tmp), history, best)
            names = {p.name for p in Path(tmp).iterdir()}
            kinds = [("plots", any(n.endswith(".png") for n in names)), ("trials.csv", "trials.csv" in names),
                     (FRONT_CSV, FRONT_CSV in names)]
            what = ", ".join(kind for kind, present in kinds if present)
            if names:
                client.log_artifacts(run_id, tmp)
    except Exception as exc:  # noqa: BLE001 - the caller warns, tags or reports it
        return what, exc
    return what, None


def study_curves(tracker, study: optuna.Study) -> tuple[optuna.trial.FrozenTrial | None, dict[str, list[float]]]:
    """The study's best trial (None without a completed one) and the curves its run logged, for
    the plots of a parent run drawn after the fact (``tuner sync``)."""
    try:
        best = best_trial(study)  # the best of those that meet the constraints
    except ValueError:  # no completed trial, or none meets the constraints
        return None, {}
    run = find_trial_run(tracker.client, tracker.experiment_id, tracker.study_name, best.number)
    return best, (run_metrics(tracker, run)[1] if run is not None else {})


def run_metrics(tracker, run: Run) -> tuple[dict[str, float], dict[str, list[float]]]:
    """A trial run's final metrics (logged at step 0) and per-epoch curves (steps >= 1)."""
    final: dict[str, float] = {}
    history: dict[str, list[float]] = {}
    try:
        for key in run.data.metrics:
            points = sorted(
                tracker.client.get_metric_history(run.info.run_id, key), key=lambda m: m.step
            )
            if any(m.step >= 1 for m in points):
                history[key] = [m.value for m in points if m.step >= 1]
            elif points:
                final[key] = points[-1].value
    except Exception as exc:  # noqa: BLE001
        logger.debug("cannot read the best run's metrics", exc_info=exc)
        final = {k: v for k, v in run.data.metrics.items() if k not in history}
    return final, history


def write_artifacts(
    study: optuna.Study,
    out: Path,
    history: Mapping[str, list[float]] | None,
    best: optuna.trial.FrozenTrial | None,
) -> None:
    from ..plots import write_study_plots

    write_study_plots(study, out, history, best)
    write_front(study, out)
    try:
        study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    except Exception as exc:  # noqa: BLE001
        logger.debug("cannot write trials.csv", exc_info=exc)
