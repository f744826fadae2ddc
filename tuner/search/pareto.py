"""Multi-objective studies: ``[objective] metrics = ["accuracy", "latency_ms_row"]``.

Such a study is an Optuna multi-objective study (``directions=[...]``): a trial's values are its
validation metric (the first name, the study's metric), then each other name's value: another
validation metric, or a measured cost (:mod:`tuner.search.costs`, always minimised). There is no
single best trial but a Pareto front (``study.best_trials``: the completed trials, feasible ones
when the study has constraints, that no other trial beats on every objective).

What the rest of the tuner does with such a study, decided here:

- **No pruning.** Optuna's pruners refuse multi-objective studies (``trial.report`` raises), and
  no rule on the first metric alone replaces them soundly: a trial that is poor on accuracy after
  a few epochs may be the cheapest network, on the front for its latency or size, and a median
  rule on accuracy would cut exactly that end of the front. The study file's ``[pruner]`` must be
  "none" (:mod:`tuner.study.config`).
- **The primary trial** (:func:`primary_trial`): the front's trial best on the first metric (ties:
  the earlier). It plays the best trial's part: the run summary, ``tuner status``, the final
  model and ``tuner export STUDY``.
- **The final model** is that trial alone, refit as ``[result] refit`` says, with one seed: an
  ensemble or averaged seed copies would multiply the latency and size the study traded against
  (:mod:`tuner.result.final`).
- **MLflow**: the parent run holds ``pareto_front.png`` and ``pareto_front.csv`` (trial, each
  objective, the child run id), and every child run on the front has the tag
  ``pareto_front = "true"`` (:func:`tag_front`, after the study ends, and again on ``tuner sync``).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.storage.retries import RUN_ID_ATTR

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

#: The child-run tag marking a trial on the front (filter: ``tags.pareto_front = 'true'``).
FRONT_TAG = "pareto_front"
FRONT_CSV = "pareto_front.csv"
FRONT_PNG = "pareto_front.png"


def is_multi(study: optuna.Study) -> bool:
    """Whether ``study`` has several objectives."""
    return len(study.directions) > 1


def first_value(trial: optuna.trial.FrozenTrial) -> float:
    """A completed trial's first objective (its ``value`` in a single-objective study)."""
    return float(trial.values[0])


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names, as its study file gave them (stored with its definition,
    :mod:`tuner.study.definition`); ``value_<i>`` for a study that stored none."""
    stored = (study.user_attrs.get("definition") or {}).get("objective.metrics")
    if isinstance(stored, list) and len(stored) == len(study.directions):
        return [str(name) for name in stored]
    if not is_multi(study):
        return [str(study.user_attrs.get("metric", "value"))]
    return [f"value_{i}" for i in range(len(study.directions))]


def _maximize(study: optuna.Study) -> list[bool]:
    import optuna

    return [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]


def front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front (``study.best_trials``), best on the first objective first (ties: the
    earlier trial)."""
    sign = -1.0 if _maximize(study)[0] else 1.0
    return sorted(study.best_trials, key=lambda t: (sign * first_value(t), t.number))


def primary_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The front's trial best on the first objective (None without a completed, feasible trial):
    the trial a multi-objective study exports and refits (see the module docstring)."""
    trials = front(study)
    return trials[0] if trials else None


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """``study.best_trial`` of a single-objective study, the :func:`primary_trial` of a
    multi-objective one; ValueError, as Optuna's, when there is none (no completed trial, or none
    meets the constraints)."""
    if not is_multi(study):
        return study.best_trial
    trial = primary_trial(study)
    if trial is None:
        raise ValueError(f"study {study.study_name!r} has no completed trial on a Pareto front yet")
    return trial


def front_rows(
    study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial] | None = None
) -> list[dict]:
    """One row per front trial: ``trial``, each objective by name, ``run_id``."""
    names = objective_names(study)
    rows = []
    for t in front(study) if trials is None else trials:
        row: dict = {"trial": t.number}
        row.update({name: float(v) for name, v in zip(names, t.values, strict=True)})
        row["run_id"] = t.user_attrs.get(RUN_ID_ATTR) or ""
        rows.append(row)
    return rows


def write_front(study: optuna.Study, out: Path) -> list[str]:
    """Write :data:`FRONT_CSV` and :data:`FRONT_PNG` for a multi-objective study into ``out``;
    their names (none for a single-objective study or an empty front)."""
    if not is_multi(study):
        return []
    trials = front(study)
    if not trials:
        return []
    rows = front_rows(study, trials)
    with (out / FRONT_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written = [FRONT_CSV]
    try:
        front_plot(study, trials).savefig(out / FRONT_PNG, dpi=100)
        written.append(FRONT_PNG)
    except Exception as exc:  # a plot is never worth failing the study
        logger.debug("cannot draw %s", FRONT_PNG, exc_info=exc)
    return written


def front_plot(study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]) -> Figure:
    """One panel per other objective: the first objective against it, every completed trial in
    grey, the front's trials in colour joined by a line and labelled with their numbers
    (matplotlib's object API, as :mod:`tuner.tracking.plots`)."""
    import optuna
    from matplotlib.figure import Figure

    names = objective_names(study)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    on_front = {t.number for t in trials}
    others = [t for t in complete if t.number not in on_front]
    fig = Figure(figsize=(6.5 * (len(names) - 1), 5))
    axes = fig.subplots(1, len(names) - 1, squeeze=False)[0]
    for i, ax in enumerate(axes, start=1):
        ax.scatter(
            [t.values[i] for t in others],
            [t.values[0] for t in others],
            s=14,
            color="0.7",
            label="other completed trials",
        )
        ordered = sorted(trials, key=lambda t: t.values[i])
        xs, ys = [t.values[i] for t in ordered], [t.values[0] for t in ordered]
        ax.plot(xs, ys, color="C3", lw=1, alpha=0.6)
        ax.scatter(xs, ys, s=30, color="C3", label="Pareto front", zorder=3)
        for t, x, y in zip(ordered, xs, ys, strict=True):
            ax.annotate(
                str(t.number), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
        ax.set(
            xlabel=names[i], ylabel=f"validation {names[0]}", title=f"{names[0]} against {names[i]}"
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Pareto front: {len(trials)} of {len(complete)} completed trials")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.86, bottom=0.12, wspace=0.3)
    return fig


def tag_front(client: MlflowClient, runs: Mapping[int, Run], study: optuna.Study) -> list[int]:
    """Tag the child runs (``runs``: MLflow runs by trial number) of the front's trials with
    ``pareto_front = "true"`` and remove the tag from runs no longer on it (a resumed study's
    front changes); the numbers of the trials tagged."""
    if not is_multi(study):
        return []
    numbers = {t.number for t in study.best_trials}
    tagged = []
    for number, run in runs.items():
        has_tag = run.data.tags.get(FRONT_TAG) == "true"
        if number in numbers:
            if not has_tag:
                client.set_tag(run.info.run_id, FRONT_TAG, "true")
            tagged.append(number)
        elif has_tag:
            client.delete_tag(run.info.run_id, FRONT_TAG)
    return sorted(tagged)
