"""The study's summary on its parent run: best trial, test scores, counts, plots, trials table."""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.search.constraints import n_feasible
from tuner.search.pareto import FRONT_CSV, best_trial, is_multi, tag_front, write_front
from tuner.tracking.client import TrackingWarning
from tuner.tracking.keys import (
    BEST_PREFIX,
    FINAL_PREFIX,
    STUDY_PREFIX,
    TAG_BEST_RUN,
    TAG_BEST_TRIAL,
    TAG_FINAL_MEMBERS,
    TAG_FINAL_MODEL,
    TAG_FINAL_REFIT,
    TAG_FINAL_RUN,
    TAG_FINAL_SEEDS,
    TAG_MISSING,
    TAG_NOTE,
    TAG_ROLE,
    TAG_STUDY,
    TAG_TEST_SCORES,
    dedupe,
    members_text,
    metric_value,
    mlflow_key,
    ms,
    param_value,
    quote,
)
from tuner.tracking.runs import find_trial_run, new_points, trial_runs
from tuner.tracking.view import store_view

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from mlflow.entities import Metric, Run, RunTag

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
    role: str = "run",
    run_id: str | None = None,
) -> None:
    """Log the study summary to the parent run (this tracker's, or ``run_id``: a run whose
    process ended before it could) and terminate it with ``status``.

    Metrics and params are grouped by prefix, apart from the trials' own (the UI's chart view
    makes a section per prefix): :func:`count_metrics` (``study/n_*``), :func:`best_trial_entries`
    (``study/best_value``, ``best_trial/*``), :func:`score_metrics` (``final/test_*``,
    ``best_trial/test_*``); tags :func:`final_model_tags` (what the final model ``final``,
    :meth:`tuner.result.final.FinalModel.describe`, is) and the run's description
    (:func:`summary_note`); the experiment's view of the runs (:mod:`tuner.tracking.view`);
    artifacts :func:`log_parent_artifacts`. A ``tuner worker``'s run
    (``role="worker"``) scores no test split: :func:`worker_tags` says where the scores are, and
    the ``tuner run`` that scores them copies them to it (:func:`link_workers`). Every part is
    best effort: failures warn, never raise.
    """
    tracker.flush()
    if status not in ("FINISHED", "FAILED", "KILLED"):
        raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
    run_id = parent_to_finish(tracker, run_id)
    if run_id is None:
        return
    best = primary_trial(study)
    metrics = count_metrics(study)
    best_metrics, params, tags, run_history = best_trial_entries(tracker, best)
    metrics += best_metrics + score_metrics(test_scores, best_trial_test_scores)
    tags += final_model_tags(final)
    if role == "worker":
        tags += worker_tags(tracker, run_id)
    if role != "worker" or not any(tag.key == TAG_FINAL_RUN for tag in tags):
        tags.append(
            note_tag(summary_note(study, best, final, test_scores, best_trial_test_scores, role))
        )
    log_entities(tracker, run_id, metrics, params, tags, "study summary")
    store_view(tracker.client, tracker.experiment_id, study)  # what the study's link opens
    if role != "worker" and test_scores:
        link_workers(tracker, run_id, score_metrics(test_scores, None), final_model_tags(final))
    history = dict(best_history) if best_history else (run_history or None)
    log_parent_artifacts(tracker, run_id, study, history, best)
    try:
        tracker.client.set_terminated(run_id, status=status)
    except Exception as exc:
        tracker.report_failure("end of the parent run", None, exc)


def parent_to_finish(tracker, run_id: str | None = None) -> str | None:
    """The parent run to finish (``run_id``, else the tracker's own), or None (with a warning)
    when there is none or the store is unreachable."""
    run_id = run_id or tracker.parent_run_id
    if run_id is None:
        warnings.warn(
            "finish_parent() without start_parent(): nothing logged", TrackingWarning, stacklevel=3
        )
        return None
    if not tracker.available():
        from tuner.cli.hints import tuner_command

        warnings.warn(
            "MLflow is unreachable: the study summary was not logged to the parent run; "
            f"`{tuner_command()} sync` logs the missing trials once it is back",
            TrackingWarning,
            stacklevel=3,
        )
        return None
    return run_id


def primary_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The study's best trial, None without one.

    A multi-objective study's primary trial (:mod:`tuner.search.pareto`); only trials that meet
    the constraints count.
    """
    import optuna

    if not any(
        t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)
    ):
        return None
    try:
        return best_trial(study)
    except Exception:  # none meets the constraints
        return None


def count_metrics(study: optuna.Study) -> list[Metric]:
    """``study/n_complete``, ``study/n_pruned``, ``study/n_failed``; ``study/n_feasible`` (the
    completed trials that meet the study's constraints, when it has some) and
    ``study/n_pareto_front`` (a multi-objective study)."""
    import optuna
    from mlflow.entities import Metric

    now, states = ms(None), optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    counts = {
        f"n_{s.name.lower()}": sum(t.state == s for t in trials)
        for s in (states.COMPLETE, states.PRUNED)
    }
    counts["n_failed"] = sum(t.state == states.FAIL for t in trials)
    feasible = n_feasible(trials)
    if feasible is not None:
        counts["n_feasible"] = feasible
    if is_multi(study):
        counts["n_pareto_front"] = len(study.best_trials)
    return [Metric(f"{STUDY_PREFIX}{k}", v, now, 0) for k, v in counts.items()]


def best_trial_entries(
    tracker, best: optuna.trial.FrozenTrial | None
) -> tuple[list, list, list, dict[str, list[float]]]:
    """``(metrics, params, tags, curves)`` of the best trial: ``study/best_value``, its final
    metrics as ``best_trial/<metric>`` (read from its run, else its user attributes), its
    params as ``best_trial/<param>``, tags ``best_trial_number`` / ``best_run_id``, and the
    per-epoch curves its run logged (for the learning-curves plot)."""
    from mlflow.entities import Metric, Param, RunTag

    if best is None:
        return [], [], [], {}
    now = ms(None)
    params = [
        Param(mlflow_key(f"{BEST_PREFIX}{k}"), param_value(v)) for k, v in best.params.items()
    ]
    metrics = [Metric(f"{STUDY_PREFIX}best_value", float(best.values[0]), now, 0)]
    tags = [RunTag(TAG_BEST_TRIAL, str(best.number))]
    try:
        run = find_trial_run(tracker.client, tracker.experiment_id, tracker.study_name, best.number)
    except Exception as exc:
        logger.debug("cannot find the best trial's run", exc_info=exc)
        run = None
    if run is not None:
        tags.append(RunTag(TAG_BEST_RUN, run.info.run_id))
        values, history = run_metrics(tracker, run)
    else:
        values, history = {k: v for k, v in best.user_attrs.items() if not isinstance(v, bool)}, {}
    for key, raw in values.items():
        value = metric_value(raw)
        if key.startswith("final_") and key[len("final_") :] in history:
            key = key[len("final_") :]  # the curve's final value, see TrialRecord
        if value is not None:
            metrics.append(Metric(mlflow_key(f"{BEST_PREFIX}{key}"), value, now, 0))
    return metrics, params, tags, history


def score_metrics(
    test_scores: Mapping[str, float] | None, best_trial_test_scores: Mapping[str, float] | None
) -> list[Metric]:
    """The test split's scores as metrics.

    ``final/test_<metric>`` (the final model, :mod:`tuner.result.final`) and
    ``best_trial/test_<metric>`` (the best trial's own model).
    """
    from mlflow.entities import Metric

    now, metrics = ms(None), []
    for prefix, scores in ((FINAL_PREFIX, test_scores), (BEST_PREFIX, best_trial_test_scores)):
        for key, raw in (scores or {}).items():
            value = metric_value(raw)
            if value is not None:
                metrics.append(Metric(mlflow_key(f"{prefix}test_{key}"), value, now, 0))
    return metrics


def final_model_tags(final: Mapping[str, Any] | None) -> list[RunTag]:
    """What the final model is, as the run printed it: ``final_members`` (``"8, 10 x2, 5"``),
    ``final_refit`` (``true``: trained again on training + validation rows), ``final_seeds``
    (copies of each member) and ``final_model`` (the sentence); none without a final model."""
    from mlflow.entities import RunTag

    if final is None:
        return []
    members = {str(k): int(v) for k, v in (final.get("members") or {}).items()}
    if not members:
        return []
    return [
        RunTag(TAG_FINAL_MEMBERS, members_text(members)),
        RunTag(TAG_FINAL_REFIT, str(bool(final.get("refit"))).lower()),
        RunTag(TAG_FINAL_SEEDS, str(int(final.get("seeds", 1)))),
        RunTag(TAG_FINAL_MODEL, final_sentence(final)),
    ]


def final_sentence(final: Mapping[str, Any]) -> str:
    """``"ensemble of trials 8, 10 x2, each trained with 3 seeds, trained on training +
    validation rows"``: the final model in the words ``tuner run`` prints."""
    members = {str(k): int(v) for k, v in final["members"].items()}
    one = len(members) == 1 and next(iter(members.values())) == 1
    what = (
        f"trial {members_text(members)}" if one else f"ensemble of trials {members_text(members)}"
    )
    seeds = int(final.get("seeds", 1))
    if seeds > 1:
        what += f", each trained with {seeds} seeds"
    rows = "training + validation rows" if final.get("refit") else "the training rows"
    return f"{what}, trained on {rows}"


def note_tag(text: str) -> RunTag:
    from mlflow.entities import RunTag

    return RunTag(TAG_NOTE, text[:5000])


def summary_note(
    study: optuna.Study,
    best,
    final: Mapping[str, Any] | None,
    test_scores: Mapping[str, float] | None,
    best_trial_test_scores: Mapping[str, float] | None,
    role: str,
) -> str:
    """The parent run's description (shown on its page, Markdown): the trials' states, the best
    trial, the final model and its test scores, or, on a worker's run, where those are."""
    counts = {m.key[len(STUDY_PREFIX) :]: int(m.value) for m in count_metrics(study)}
    n_trials = sum(counts[k] for k in ("n_complete", "n_pruned", "n_failed"))
    lines = [
        f"Study `{study.study_name}`: {n_trials} trials, {counts['n_complete']} complete, "
        f"{counts['n_pruned']} pruned, {counts['n_failed']} failed."
    ]
    metric = study.user_attrs.get("metric", "value")
    if best is not None:
        lines.append(f"Best trial {best.number}: validation {metric} {best.values[0]:.4f}.")
    if final and final.get("members") and test_scores:
        lines.append(f"Final model: {final_sentence(final)}.")
    if test_scores:
        lines.append("Test split (scored once): final model " + scores_text(test_scores) + ".")
    if test_scores and best_trial_test_scores:
        lines.append(
            "Best trial alone, as trained in its trial: "
            + scores_text(best_trial_test_scores)
            + "."
        )
    if role == "worker":
        lines.append(WORKER_NOTE)
    return "\n\n".join(lines)


def scores_text(scores: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {float(v):.4f}" for k, v in scores.items())


#: A worker's run until a ``tuner run`` scores the study: why it has no test scores.
WORKER_NOTE = (
    "This `tuner worker` run does not score the test split: `tuner run` on the study scores its "
    "final model once, when the budget is reached, and copies the scores here (`final/test_*`, "
    f"tag `{TAG_FINAL_RUN}`)."
)


def worker_tags(tracker, run_id: str) -> list[RunTag]:
    """A ``tuner worker``'s run: the tag ``tuner.test_scores`` saying that the test scores are
    not here yet, unless a ``tuner run`` has already copied them (:func:`link_workers`)."""
    from mlflow.entities import RunTag

    try:
        tags = tracker.client.get_run(run_id).data.tags
    except Exception as exc:
        logger.debug("cannot read the worker's run", exc_info=exc)
        tags = {}
    if TAG_FINAL_RUN in tags:
        return [RunTag(TAG_FINAL_RUN, tags[TAG_FINAL_RUN])]
    return [
        RunTag(
            TAG_TEST_SCORES,
            "not scored by tuner worker: `tuner run` on the study scores the final model "
            "and links this run",
        )
    ]


def link_workers(tracker, run_id: str, scores: list[Metric], final_tags: list[RunTag]) -> None:
    """Copy the final model's test scores and tags to the study's ``tuner worker`` runs that no
    ``tuner run`` has scored yet, each tagged with this run (``tuner.final_run_id``) and told so
    in its description, so that no worker's run looks unscored once the study is scored."""
    from mlflow.entities import RunTag

    quoted = quote(tracker.study_name)
    if quoted is None:
        return
    try:
        runs = tracker.client.search_runs(
            [tracker.experiment_id],
            max_results=1000,
            filter_string=(
                f"tags.`{TAG_ROLE}` = 'parent' AND params.role = 'worker' "
                f"AND tags.`{TAG_STUDY}` = {quoted}"
            ),
        )
        name = tracker.client.get_run(run_id).info.run_name
        for run in runs:
            if TAG_FINAL_RUN in run.data.tags or run.info.run_id == run_id:
                continue
            note = run.data.tags.get(TAG_NOTE, "").replace(WORKER_NOTE, "").rstrip()
            line = (
                f"Test scores scored by run `{name}` ({run_id}), copied here: "
                f"final model {_scores_of(scores)}."
            )
            tags = final_tags + [
                RunTag(TAG_FINAL_RUN, run_id),
                RunTag(
                    TAG_TEST_SCORES, f"scored by run {name} ({run_id}): final/test_* copied here"
                ),
                note_tag(f"{note}\n\n{line}".strip()),
            ]
            points = new_points(tracker.client, run, scores)
            tracker.client.log_batch(run.info.run_id, metrics=points, tags=tags)
    except Exception as exc:
        tracker.report_failure("test scores on the workers' runs", None, exc)


def _scores_of(metrics: list[Metric]) -> str:
    return ", ".join(f"{m.key[len(FINAL_PREFIX + 'test_') :]} {m.value:.4f}" for m in metrics)


def log_entities(tracker, run_id: str, metrics: list, params: list, tags: list, what: str) -> None:
    """Log to ``run_id`` in one batch the points it lacks (:func:`.runs.new_points`: a summary
    may be logged a second time, by ``tuner sync`` for a run whose process ended while the
    store was unreachable), its params and tags."""
    try:
        client = tracker.client
        metrics = new_points(client, client.get_run(run_id), dedupe(metrics))
        client.log_batch(run_id, metrics=metrics, params=dedupe(params), tags=dedupe(tags))
    except Exception as exc:
        tracker.report_failure(what, None, exc)


def log_parent_artifacts(
    tracker,
    run_id: str,
    study: optuna.Study,
    history: Mapping[str, list[float]] | None,
    best,
) -> None:
    """The plots and trials table (:func:`log_study_artifacts`; those the store refused are named
    in the tag ``tuner.missing`` for ``tuner sync``) and, for a multi-objective study, the tag
    ``pareto_front`` on the front's trial runs."""
    what, exc = log_study_artifacts(tracker.client, run_id, study, history, best)
    if exc is not None:
        tracker.report_failure("study artifacts", None, exc)
        if what:
            try:
                tracker.client.set_tag(run_id, TAG_MISSING, what)
            except Exception as tag_exc:
                logger.debug("cannot tag the parent run's missing artifacts", exc_info=tag_exc)
    if is_multi(study):
        try:
            tag_front(
                tracker.client,
                trial_runs(tracker.client, tracker.experiment_id, tracker.study_name),
                study,
            )
        except Exception as exc:
            tracker.report_failure("Pareto front tags", None, exc)


def log_study_artifacts(
    client,
    run_id: str,
    study: optuna.Study,
    history: Mapping[str, list[float]] | None,
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
            kinds = [
                ("plots", any(n.endswith(".png") for n in names)),
                ("trials.csv", "trials.csv" in names),
                (FRONT_CSV, FRONT_CSV in names),
            ]
            what = ", ".join(kind for kind, present in kinds if present)
            if names:
                client.log_artifacts(run_id, tmp)
    except Exception as exc:  # the caller warns, tags or reports it
        return what, exc
    return what, None


def study_curves(
    tracker, study: optuna.Study
) -> tuple[optuna.trial.FrozenTrial | None, dict[str, list[float]]]:
    """The study's best trial (None without a completed one) and the curves its run logged, for
    the plots of a parent run drawn after the fact (``tuner sync``)."""
    best = primary_trial(study)
    if best is None:  # no completed trial, or none meets the constraints
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
    except Exception as exc:
        logger.debug("cannot read the best run's metrics", exc_info=exc)
        final = {k: v for k, v in run.data.metrics.items() if k not in history}
    return final, history


def write_artifacts(
    study: optuna.Study,
    out: Path,
    history: Mapping[str, list[float]] | None,
    best: optuna.trial.FrozenTrial | None,
) -> None:
    from tuner.tracking.plots import write_study_plots

    write_study_plots(study, out, history, best)
    write_front(study, out)
    try:
        study.trials_dataframe().to_csv(out / "trials.csv", index=False)
    except Exception as exc:
        logger.debug("cannot write trials.csv", exc_info=exc)
