"""The study's plots for its MLflow parent run, drawn with matplotlib's object API.

Optuna's ``optuna.visualization.matplotlib`` draws the same pictures through pyplot and
``tight_layout``, which can take longer than a short study tunes (``bench/bench_phases.py``
times the plots); these are much quicker, never touch pyplot's global state, and work headless.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

DPI = 100


def write_study_plots(
    study: optuna.Study,
    out: Path,
    history: Mapping[str, list[float]] | None,
    best: optuna.trial.FrozenTrial | None,
) -> list[str]:
    """Write the PNG files that exist for this study into ``out``; return their names.

    ``learning_curves.png`` (the best trial's ``history``), and for studies with completed
    trials ``optimization_history.png``, ``parallel_coordinate.png`` and, from two completed
    trials, ``param_importances.png``. A plot that fails is logged and skipped.
    """
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    # The first direction: a multi-objective study's metric.
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    metric = study.user_attrs.get("metric", "value")
    plots: dict[str, Callable[[], Figure]] = {}
    if history:
        title = f"Best trial {best.number}" if best is not None else "Best trial"
        plots["learning_curves.png"] = lambda: learning_curves(history, title)
    if complete:
        plots["optimization_history.png"] = lambda: optimization_history(complete, maximize, metric)
        if len(complete) >= 2:
            plots["param_importances.png"] = lambda: param_importances(study, metric)
        plots["parallel_coordinate.png"] = lambda: parallel_coordinate(complete, maximize, metric)
    written = []
    for name, draw in plots.items():
        try:
            draw().savefig(out / name, dpi=DPI)
            written.append(name)
        except Exception as exc:  # a plot is never worth failing the study
            logger.debug("cannot draw %s", name, exc_info=exc)
    return written


def learning_curves(history: Mapping[str, list[float]], title: str) -> Figure:
    """One panel per curve (training loss, validation metrics, learning rate) over epochs."""
    from matplotlib.figure import Figure

    names = [k for k, v in history.items() if len(v) > 0]
    cols = min(len(names), 2)
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(6 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        values = history[name]
        ax.plot(range(1, len(values) + 1), values, marker="." if len(values) < 40 else None)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.97, top=0.9, bottom=0.1, hspace=0.45, wspace=0.25)
    return fig


def optimization_history(
    trials: list[optuna.trial.FrozenTrial], maximize: bool, metric: str
) -> Figure:
    """Each completed trial's value and the best value so far, by trial number."""
    from matplotlib.figure import Figure

    numbers = [t.number for t in trials]
    values = [t.values[0] for t in trials]
    best, so_far = [], None
    for v in values:
        so_far = v if so_far is None else (max(so_far, v) if maximize else min(so_far, v))
        best.append(so_far)
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    ax.scatter(numbers, values, s=16, label="completed trial")
    ax.step(numbers, best, where="post", color="C1", label="best so far")
    ax.set(title="Optimization history", xlabel="trial", ylabel=f"validation {metric}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.1)
    return fig


def param_importances(study: optuna.Study, metric: str) -> Figure:
    """Hyperparameter importances by PED-ANOVA (milliseconds, where fANOVA takes seconds)."""
    import warnings

    import optuna
    from matplotlib.figure import Figure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA is experimental
        importances = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
            target=(lambda t: t.values[0]) if len(study.directions) > 1 else None,
        )
    names = list(importances)[::-1]
    fig = Figure(figsize=(8, max(3.0, 0.35 * len(names) + 1.2)))
    ax = fig.add_subplot()
    ax.barh(names, [importances[n] for n in names], color="C0")
    ax.set(
        title=f"Hyperparameter importances for validation {metric}", xlabel="importance (PED-ANOVA)"
    )
    ax.grid(axis="x", alpha=0.3)
    fig.subplots_adjust(left=0.22, right=0.97, top=0.9, bottom=0.12)
    return fig


def parallel_coordinate(
    trials: list[optuna.trial.FrozenTrial], maximize: bool, metric: str
) -> Figure:
    """One line per completed trial across the objective and every parameter, each axis scaled
    to its range (log ranges on a log scale, categories evenly spaced); the best trials are
    drawn last, in the brightest colour."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    names = sorted({k for t in trials for k in t.params})
    values = np.array([t.values[0] for t in trials], dtype=float)
    spread = float(np.ptp(values)) or 1.0
    quality = (values - values.min()) / spread if maximize else (values.max() - values) / spread
    columns, labels = (
        [(values - values.min()) / spread],
        [(f"{values.min():.4g}", f"{values.max():.4g}")],
    )
    for name in names:
        dist = next(t.distributions[name] for t in trials if name in t.distributions)
        position, label = _axis(dist)
        columns.append(
            np.array([position(t.params[name]) if name in t.params else np.nan for t in trials])
        )
        labels.append(label)
    grid = np.column_stack(columns)
    fig = Figure(figsize=(max(8.0, 1.1 * (len(names) + 1)), 5))
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"]
    for i in np.argsort(quality):
        ax.plot(range(grid.shape[1]), grid[i], color=cmap(quality[i]), alpha=0.7, lw=1.2)
    for x, (low, high) in enumerate(labels):
        ax.axvline(x, color="0.6", lw=0.8)
        ax.text(x, -0.04, low, ha="center", va="top", fontsize=7)
        ax.text(x, 1.04, high, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(grid.shape[1]), [metric, *names], rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    ax.set_title("Parallel coordinates (colour: better is brighter)", pad=16)
    fig.subplots_adjust(left=0.04, right=0.98, top=0.88, bottom=0.22)
    return fig


def _axis(dist) -> tuple[Callable[[object], float], tuple[str, str]]:
    """Where a parameter value sits on its axis (0..1), and the axis' end labels."""
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        choices = list(dist.choices)
        span = max(1, len(choices) - 1)
        return (lambda v: choices.index(v) / span), (str(choices[0]), str(choices[-1]))
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        lo, hi = math.log(low), math.log(high)
        return (lambda v: (math.log(v) - lo) / ((hi - lo) or 1.0)), (f"{low:.3g}", f"{high:.3g}")
    return (lambda v: (v - low) / ((high - low) or 1.0)), (f"{low:.4g}", f"{high:.4g}")
