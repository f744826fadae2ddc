"""Metric registry: which metrics fit which task, which way they improve, and how to score them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


@dataclass(frozen=True)
class Metric:
    """One metric: the task it fits, its direction and whether it scores probabilities."""

    name: str
    task: str
    direction: str
    needs_proba: bool
    fn: Callable[[np.ndarray, np.ndarray], float]
    binary_only: bool = False


def _log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    proba = _two_columns(proba)
    return skm.log_loss(y_true, proba, labels=np.arange(proba.shape[1]))


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    proba = np.asarray(proba)
    positive = proba[:, 1] if proba.ndim == 2 else proba
    return skm.roc_auc_score(y_true, positive)


def _two_columns(proba: np.ndarray) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    return np.column_stack([1.0 - proba, proba]) if proba.ndim == 1 else proba


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", CLASSIFICATION, "maximize", False, skm.accuracy_score),
        Metric("log_loss", CLASSIFICATION, "minimize", True, _log_loss),
        Metric(
            "f1_macro",
            CLASSIFICATION,
            "maximize",
            False,
            lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
        ),
        Metric("roc_auc", CLASSIFICATION, "maximize", True, _roc_auc, binary_only=True),
        Metric("rmse", REGRESSION, "minimize", False, skm.root_mean_squared_error),
        Metric("mae", REGRESSION, "minimize", False, skm.mean_absolute_error),
        Metric("r2", REGRESSION, "maximize", False, skm.r2_score),
    )
}

DEFAULT_METRIC = {CLASSIFICATION: "accuracy", REGRESSION: "rmse"}


def get_metric(name: str) -> Metric:
    """The registered metric called `name`; ValueError listing the known names otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r} (allowed: {', '.join(METRICS)})") from None


def needs_proba(name: str) -> bool:
    """True when the metric scores predicted probabilities rather than labels."""
    return get_metric(name).needs_proba


def direction(name: str) -> str:
    """'maximize' or 'minimize', the Optuna study direction for this metric."""
    return get_metric(name).direction


def metrics_for_task(task: str, n_classes: int | None = None) -> list[str]:
    """Names of the metrics that fit `task` (and, when given, a target with `n_classes` classes)."""
    return [
        m.name
        for m in METRICS.values()
        if m.task == task and not (m.binary_only and n_classes is not None and n_classes != 2)
    ]


def score(
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> float:
    """Score predictions with metric ``name``.

    The predictions are labels or values in ``y_pred``, or class probabilities in ``proba``.

    ``labels`` are the (sorted) classes that the columns of ``proba`` stand for, e.g. a model's
    ``classes_``; without them the classes must already be coded 0..k-1.
    """
    metric = get_metric(name)
    if metric.needs_proba and labels is not None:
        y_true = np.searchsorted(np.asarray(labels), np.asarray(y_true))
    values = proba if metric.needs_proba else y_pred
    if values is None:
        wanted = "proba" if metric.needs_proba else "y_pred"
        raise ValueError(f"metric {name!r} needs {wanted}")
    return float(metric.fn(np.asarray(y_true), np.asarray(values)))


def score_model(name: str, model, X, y) -> float:
    """Metric ``name`` of a fitted model or pipeline on ``(X, y)``: from its class probabilities
    when the metric needs them, else from its predictions."""
    if needs_proba(name):
        return score(name, y, proba=model.predict_proba(X), labels=model.classes_)
    return score(name, y, y_pred=model.predict(X))


def test_scores(splits, pipeline) -> dict[str, float]:
    """Every metric of the task on the held-out test split (raw rows through the pipeline)."""
    return {
        name: score_model(name, pipeline, splits.X_test, splits.y_test)
        for name in metrics_for_task(splits.task, splits.n_classes)
    }
