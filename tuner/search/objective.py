"""The Optuna objective: one trial trains one MLP, reports every epoch, and may be pruned.

Data flows in one way: the config and the data splits are fixed for the study, the trial
suggests the parameters, the model trains with a per-epoch callback that reports to Optuna,
and what happened is handed to the tracker as one :class:`~tuner.tracking.TrialRecord`.

In a multi-objective study (``[objective] metrics``, :mod:`tuner.search.pareto`) a trial reports
nothing to Optuna, is never pruned, and returns one value per objective, its metric first.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from model import DivergenceError, MLPClassifier, MLPRegressor
from tuner import interrupts
from tuner.data.loading import Splits
from tuner.search.constraints import UNTRAINED_ATTR, UNTRAINED_PRUNE_REASON, set_constraints
from tuner.search.costs import as_attrs, measure_costs, measure_untrained, over_bound_untrained
from tuner.search.failures import failure_reason
from tuner.search.pruners import unwrap_pruner
from tuner.search.resampling import Resample, resamples
from tuner.search.trial_model import (
    budget_params,
    build_estimator,
    monitored_validation,
    trial_epochs,
    validation_output,
)
from tuner.storage.recovery import INTERRUPTED
from tuner.storage.retries import RETRY_OF, RUN_ID_ATTR
from tuner.study import metrics
from tuner.study.config import StudyConfig
from tuner.study.space import suggest_params
from tuner.threads import current_blas_threads
from tuner.tracking import PendingRun, StudyTracker, TrialRecord

#: A trial's estimator (:func:`tuner.search.trial_model.build_estimator`).
Estimator = MLPClassifier | MLPRegressor

#: The metrics the training loop already computes on the validation split, by metric name.
LOGGED_METRICS = {
    "accuracy": "val_accuracy",
    "log_loss": "val_loss",
    "rmse": "val_rmse",
    "mae": "val_mae",
    "r2": "val_r2",
}


#: How many of the best completed trials the final model's ensemble selection considers, per
#: member it may pick (see :mod:`tuner.result.final`).
CANDIDATES_PER_MEMBER = 3


def score_resamples(
    metric: str, task: str, make_estimator: Callable[[], Estimator], extra: list[Resample]
) -> tuple[list[float], list[np.ndarray], list[int]]:
    """``(scores, outputs, epochs)`` of a trial's parameters trained afresh (``make_estimator()``)
    on each extra split (:mod:`tuner.search.resampling`), with early stopping on that split's
    validation rows; the interrupt check runs every epoch."""
    scores: list[float] = []
    outputs: list[np.ndarray] = []
    epochs: list[int] = []
    for split in extra:
        estimator = make_estimator()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(
                split.Xt_train,
                split.y_train,
                X_val=split.Xt_val,
                y_val=split.y_val,
                callbacks=[_check_interrupts],
            )
        scores.append(metrics.score_model(metric, estimator, split.Xt_val, split.y_val))
        outputs.append(validation_output(task, estimator, split.Xt_val))
        epochs.append(trial_epochs(estimator))
    return scores, outputs, epochs


def _check_interrupts(epoch: int, logs: dict[str, float]) -> bool:
    interrupts.check()
    return False


@dataclass
class CompletedTrial:
    """What the final model needs of a completed trial: its value, its validation outputs
    (probabilities or predictions), the epochs it trained, and its model when kept."""

    value: float
    output: Any
    epochs: int
    estimator: Any = None


@dataclass
class TrialRun:
    """What one trial did, gathered while it runs and handed to the storage and the tracker."""

    started: float = field(default_factory=time.time)
    history: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    state: TrialState = TrialState.FAIL
    reason: str | None = None
    value: float | None = None
    pruned_epoch: int | None = None
    interrupted: bool = False
    #: Completed with the best value this process has seen: its model is logged with its run.
    improved: bool = False
    #: The trial's MLflow run, created on the tracker's thread while the trial trains.
    pending_run: PendingRun | None = None
    run_id: str | None = None
    attached: bool = False
    #: For a retry of a trial whose worker died: that trial's number and MLflow run id.
    retry_of: int | None = None
    previous_run_id: str | None = None
    #: With several validation splits: each split's score (the value is their mean).
    split_values: list[float] | None = None
    #: The epochs a refit trains for (the median over the splits).
    fit_epochs: int | None = None
    #: Pruned before training (its untrained network broke a bound): free of the budget.
    untrained: bool = False
    #: A completed trial's measured costs by name (:mod:`tuner.search.costs`), stored and logged
    #: with it.
    costs: dict[str, float] | None = None
    #: A multi-objective study's other objectives by name (:mod:`tuner.search.pareto`).
    others: dict[str, float] | None = None

    def summary(self, estimator) -> dict[str, float]:
        out = {
            "train_seconds": time.time() - self.started,
            "n_params": float(getattr(estimator, "n_params_", 0)),
            "epochs": float(getattr(estimator, "n_iter_", 0)),
            # What the thread policy gave this trial (tuner.threads), as BLAS itself reports it.
            "blas_threads": float(current_blas_threads() or 0),
        }
        if self.fit_epochs is not None:
            out["fit_epochs"] = float(self.fit_epochs)
        elif hasattr(estimator, "n_iter_"):
            out["fit_epochs"] = float(trial_epochs(estimator))
        if self.pruned_epoch is not None:
            out["pruned_epoch"] = float(self.pruned_epoch)
        if self.costs is not None:
            out.update(as_attrs(self.costs))
        return out


class Objective:
    """Callable objective for ``study.optimize``; trains on the training split only and scores
    on the validation split. The test split is not touched here."""

    def __init__(self, config: StudyConfig, splits: Splits, tracker: StudyTracker | None) -> None:
        self.config = config
        self.splits = splits
        self.tracker = tracker
        self.metric = config.metric
        #: The best completed trial's model and curves from this process, by trial number.
        self.best_pipelines: dict[int, Pipeline] = {}
        self.histories: dict[int, dict[str, list[float]]] = {}
        self._best_value: float | None = None
        #: The best completed trials of this process (as many as the final model may draw on).
        self.completed: dict[int, CompletedTrial] = {}
        self.keep_completed = config.result.ensemble * CANDIDATES_PER_MEMBER
        #: The splits beyond the study's own that score a trial (:mod:`tuner.search.resampling`).
        self.resamples = resamples(config, splits)
        #: The validation rows that score each epoch (:func:`monitored_validation`).
        self.monitored = monitored_validation(config, splits)
        #: Trials of this process stopped by Ctrl-C / SIGTERM
        #: (:func:`tuner.storage.recovery.requeue_interrupted` queues them again).
        self.interrupted: list[int] = []
        #: Every trial this objective started, by number (a worker whose trials all failed says so).
        self.ran: list[int] = []
        #: Each trial's MLflow run, by number, known here even when the storage refused to store
        #: it (a trial another worker failed: see :func:`tuner.runner.optimize`).
        self.run_ids: dict[int, str] = {}

    def _epoch_value(self, estimator, logs: dict[str, float]) -> float:
        key = LOGGED_METRICS.get(self.metric)
        if key is not None and key in logs:
            return float(logs[key])
        return metrics.score_model(self.metric, estimator, *self.monitored)

    def _reporter(self, trial: optuna.Trial, estimator, run: TrialRun):
        """The per-epoch callback: record the curves, report to Optuna, ask the pruner."""

        def report(epoch: int, logs: dict[str, float]) -> bool:
            interrupts.check()
            if not run.attached and (run.pending_run is None or run.pending_run.done()):
                self._attach_run(trial, run)
            for name, v in logs.items():
                run.history[
                    name if name.startswith("val_") or name == "lr" else f"train_{name}"
                ].append(v)
            value = self._epoch_value(estimator, logs)
            if self.metric not in LOGGED_METRICS:
                run.history[f"val_{self.metric}"].append(value)
            if not math.isfinite(value):
                raise DivergenceError(f"validation {self.metric} is {value} at epoch {epoch}")
            if self.config.multi_objective:  # no pruning (Optuna's raise): see tuner.search.pareto
                return False
            trial.report(value, epoch)
            if trial.should_prune():
                run.pruned_epoch = epoch
                return True
            return False

        return report

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self.ran.append(trial.number)
        run = TrialRun()
        params = suggest_params(trial, self.config.space, self.config.budget.max_epochs)
        params |= budget_params(self.config)
        run.retry_of, run.previous_run_id = _retry_origin(trial)
        run.pending_run = self.tracker.start_trial_later(trial.number) if self.tracker else None
        estimator = build_estimator(
            self.splits.task, params, self.config.seed + trial.number, self.metric
        )
        try:
            if self.config.objective.constraints:
                self._prune_if_infeasible_untrained(trial, estimator, run)
            self._train(trial, estimator, run)
            output, epochs = self._score(trial, params, estimator, run)
            return self._complete(trial, estimator, run, output, epochs)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt as exc:
            run.reason, run.interrupted = failure_reason(exc), True
            self.interrupted.append(trial.number)  # queued again once Optuna has failed it
            raise
        except BaseException as exc:
            run.reason = failure_reason(exc)
            raise
        finally:
            self._record(trial, params, estimator, run)

    def _train(self, trial: optuna.Trial, estimator: Estimator, run: TrialRun) -> None:
        """Train on the study's training split, reporting every epoch (:meth:`_reporter`); raise
        TrialPruned when the pruner stopped the training."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(
                self.splits.Xt_train,
                self.splits.y_train,
                X_val=self.monitored[0],
                y_val=self.monitored[1],
                callbacks=[self._reporter(trial, estimator, run)],
            )
        if run.pruned_epoch is None:
            return
        run.state = TrialState.PRUNED
        pruner = type(unwrap_pruner(trial.study.pruner)).__name__
        run.reason = f"pruned by {pruner} at epoch {run.pruned_epoch}"
        if self.config.objective.constraints:
            # Optuna's TPE counts a pruned trial without constraint values as feasible and ranks
            # it by its partial score, so with every completed trial infeasible it learns "good"
            # from large pruned networks. A pruned trial's network exists: measure it and tell
            # its constraints too (its costs are stored as well).
            self._measure(trial, estimator, run)
        raise optuna.TrialPruned(run.reason)

    def _score(
        self, trial: optuna.Trial, params: dict[str, Any], estimator: Estimator, run: TrialRun
    ) -> tuple[np.ndarray, int]:
        """Score the trained trial on the validation split, and on the extra splits when the
        study has them (the value is then the mean); ``(validation outputs of every split, the
        epochs a refit trains for)``. DivergenceError when the value is not finite."""
        run.value = metrics.score_model(
            self.metric, estimator, self.splits.Xt_val, self.splits.y_val
        )
        output = validation_output(self.splits.task, estimator, self.splits.Xt_val)
        epochs = trial_epochs(estimator)
        if self.resamples and math.isfinite(run.value):
            scores, outputs, more_epochs = score_resamples(
                self.metric,
                self.splits.task,
                lambda: build_estimator(
                    self.splits.task, params, self.config.seed + trial.number, self.metric
                ),
                self.resamples,
            )
            run.split_values = [run.value, *scores]
            run.value = float(np.mean(run.split_values))
            output = np.concatenate([output, *outputs])
            epochs = int(np.median([epochs, *more_epochs]))
        if not math.isfinite(run.value):
            raise DivergenceError(f"final validation {self.metric} is {run.value}")
        return output, epochs

    def _complete(
        self,
        trial: optuna.Trial,
        estimator: Estimator,
        run: TrialRun,
        output: np.ndarray,
        epochs: int,
    ) -> float | tuple[float, ...]:
        """Complete a scored trial: measure its costs, keep it for the best model and the final
        model when it meets the constraints, and return its value (its values, multi-objective)."""
        assert run.value is not None, "scored first (_score)"
        run.state = TrialState.COMPLETE
        run.fit_epochs = epochs
        if self._measure(trial, estimator, run):
            # Only trials meeting the constraints compete for the best and the final model.
            run.improved = self._keep_if_best(trial.number, run.value, estimator, run.history)
            self._keep_completed(trial.number, run.value, estimator, output, epochs)
        if self.config.multi_objective:
            assert run.costs is not None, "measured first (_measure)"
            run.others = self._other_objectives(estimator, run.costs)
            return (run.value, *run.others.values())
        return run.value

    def _prune_if_infeasible_untrained(
        self, trial: optuna.Trial, estimator: Estimator, run: TrialRun
    ) -> None:
        """In a constrained study, measure the trial's network before it trains
        (:func:`tuner.search.costs.measure_untrained`: the same parameter count, layers and saved
        size as after training); when it already breaks a bound (a timed one by a margin:
        :func:`tuner.search.costs.over_bound_untrained`), store those costs, tell Optuna the
        constraint values and prune the trial before any training. Such a trial does not use the
        budget (:func:`tuner.storage.budget.counted_trials`)."""
        bounds = self.config.objective.constraints
        costs = measure_untrained(
            estimator, self.splits.Xt_train, self.splits.y_train, self.splits.Xt_val
        )
        over = over_bound_untrained(costs, bounds)
        if not over:
            return
        run.costs = costs
        set_constraints(trial, costs, bounds)
        broken = ", ".join(f"{name} {costs[name]:.4g} > {bound:g}" for name, bound in over.items())
        run.state, run.untrained = TrialState.PRUNED, True
        run.reason = f"{UNTRAINED_PRUNE_REASON}: its untrained network has {broken}"
        raise optuna.TrialPruned(run.reason)

    def _measure(self, trial: optuna.Trial, estimator: Estimator, run: TrialRun) -> bool:
        """Measure the trial's network (:mod:`tuner.search.costs`; stored and logged with the trial)
        and tell Optuna its constraint values; whether it meets the study's constraints (True
        without)."""
        run.costs = measure_costs(estimator, self.splits.Xt_val)
        return set_constraints(trial, run.costs, self.config.objective.constraints)

    def _other_objectives(self, estimator: Estimator, costs: dict[str, float]) -> dict[str, float]:
        """A multi-objective study's objectives after the first, by name: a cost as measured, a
        validation metric scored on the study's validation split (the first objective alone is
        averaged over extra splits, :mod:`tuner.search.resampling`)."""
        out = {}
        for name in self.config.objectives[1:]:
            if name in costs:
                out[name] = float(costs[name])
            else:
                out[name] = metrics.score_model(
                    name, estimator, self.splits.Xt_val, self.splits.y_val
                )
                if not math.isfinite(out[name]):
                    raise DivergenceError(f"final validation {name} is {out[name]}")
        return out

    def _attach_run(self, trial: optuna.Trial, run: TrialRun) -> None:
        """Link the trial and its MLflow run both ways (waiting for the run if it is not created
        yet), and a retry to the trial it replaces."""
        tracker, pending = self.tracker, run.pending_run
        run.run_id = tracker.wait_for_run(pending) if tracker and pending else None
        run.attached = True
        if run.run_id:
            self.run_ids[trial.number] = run.run_id
        if run.retry_of is not None:
            trial.set_user_attr(RETRY_OF, run.retry_of)
            if self.tracker is not None:
                self.tracker.link_retry(run.run_id, run.previous_run_id, run.retry_of, trial.number)
        if (
            run.run_id or run.retry_of is not None
        ):  # a retry must not keep the failed trial's run id
            trial.set_user_attr(RUN_ID_ATTR, run.run_id)

    def _record(self, trial: optuna.Trial, params, estimator, run: TrialRun) -> None:
        """Store the trial's summary in Optuna (the record of truth, from which ``tuner sync`` can
        log it later) and log it to MLflow."""
        if not run.attached:
            self._attach_run(trial, run)
        run_id = run.run_id
        summary = run.summary(estimator)
        if run.interrupted:
            trial.set_user_attr(INTERRUPTED, True)
        else:
            attrs: dict[str, Any] = {**summary, "history": dict(run.history)}
            if run.split_values is not None:
                attrs["split_values"] = run.split_values
            if run.state == TrialState.FAIL and run.reason:
                attrs["fail_reason"] = run.reason
            elif run.state == TrialState.PRUNED and run.reason:
                attrs["reason"] = run.reason  # read back by `tuner sync` (TrialRecord.from_trial)
            if run.untrained:  # the budget does not count it (tuner.storage.budget)
                attrs[UNTRAINED_ATTR] = True
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
        if not run_id or self.tracker is None:
            return
        if run.value is not None:
            summary[f"val_{self.metric}"] = run.value
        for name, value in (run.others or {}).items():
            if name not in (run.costs or {}):  # costs are logged as cost_<name> already
                summary[f"val_{name}"] = value
        self.tracker.end_trial_later(
            run_id,
            TrialRecord(
                number=trial.number,
                params=dict(trial.params) | _flatten(params),
                history=dict(run.history),
                metrics=summary,
                state=run.state.name,
                reason=run.reason,
                start_time=run.started,
                end_time=time.time(),
                interrupted=run.interrupted,
            ),
            self._pipeline(estimator) if run.improved else None,
        )

    def _pipeline(self, estimator) -> Pipeline:
        """The trial's model with the study's fitted preprocessing: it takes raw rows."""
        return Pipeline([("preprocess", self.splits.preprocessor), ("mlp", estimator)])

    def _keep_if_best(self, number: int, value: float, estimator, history) -> bool:
        """Keep the trial's model and curves if it is the best so far in this process; True then.

        Only such trials log their model to MLflow: the study's best trial is always one (it
        was the best of its own worker when it completed), and any other trial's model is
        trained again from its parameters and seed on export (``tuner export --trial N``).
        Logging every completed trial's model would cost a short study a noticeable part of its
        time.
        """
        better = self._best_value is None or (
            value > self._best_value
            if self.config.direction == "maximize"
            else value < self._best_value
        )
        if better:
            self._best_value = value
            self.best_pipelines = {number: self._pipeline(estimator)}
            self.histories = {number: dict(history)}
        return better

    def _keep_completed(
        self, number: int, value: float, estimator, output: np.ndarray, epochs: int
    ) -> None:
        """Remember the trial for the final model, keeping only the best ``keep_completed``:
        its validation outputs over every split and the epochs a refit trains for."""
        self.completed[number] = CompletedTrial(
            value=value, output=output, epochs=epochs, estimator=estimator
        )
        if len(self.completed) > self.keep_completed:
            sign = -1.0 if self.config.direction == "maximize" else 1.0
            worst = max(self.completed, key=lambda n: (sign * self.completed[n].value, n))
            del self.completed[worst]


def _retry_origin(trial: optuna.Trial) -> tuple[int | None, str | None]:
    """For a retry (see :mod:`tuner.storage.retries`): the failed trial's number and its MLflow run
    id, from the user attributes the retry was queued with; ``(None, None)`` for any other trial."""
    attrs = trial.user_attrs
    if attrs.get(RETRY_OF) is None:
        return None, None
    return int(attrs[RETRY_OF]), attrs.get(RUN_ID_ATTR)


def _flatten(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if "hidden_layer_sizes" in out:
        out["hidden_layer_sizes"] = "-".join(str(u) for u in out["hidden_layer_sizes"])
    return out
