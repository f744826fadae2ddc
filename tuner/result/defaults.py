"""The estimator's defaults as a candidate of a study's final model, and what they cost against
the study's trials (:func:`tuner.result.final.considers_defaults`).

Work is counted in weight-epochs: a network's weights and biases (the multiply-adds one row costs
it, forward) times the epochs it trains, each epoch a pass over the same training rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from model import MLPClassifier, MLPRegressor
from tuner.data.loading import Splits
from tuner.study.config import StudyConfig
from tuner.study.space import params_from_trial

#: ``defaults_candidate = "auto"`` considers the defaults when their one fit's work (weights times
#: epochs) is at most this many times the trials' together. Weight-epochs count multiply-adds
#: only: a trial's small batches, its per-epoch scoring and its bookkeeping cost more CPU per
#: weight-epoch than the defaults' batches of 256. On the development sets of
#: bench/dev_candidates.py, where the candidate was chosen, the weight-epoch ratio trials /
#: defaults was 0.21 to 2.0 (seed 51) while the defaults' fit took 10-35 % of a study's CPU; 5
#: keeps all of them and leaves the defaults out where the trials did a small fraction of their
#: work, as a few short trials on large data do.
DEFAULTS_COST_FACTOR = 5


def defaults_estimator(task: str, seed: int) -> MLPClassifier | MLPRegressor:
    """The estimator's defaults for ``task``, seeded."""
    return (
        MLPClassifier(random_state=seed)
        if task == "classification"
        else MLPRegressor(random_state=seed)
    )


def network_weights(n_inputs: int, hidden: Sequence[int], n_outputs: int) -> int:
    """Weights and biases of a network: the multiply-adds one row costs it, forward."""
    sizes = [n_inputs, *hidden, n_outputs]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def _layers(hidden: Sequence[int] | int) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple (an int is one layer)."""
    return (hidden,) if isinstance(hidden, int) else tuple(hidden)


def _outputs(splits: Splits) -> int:
    return splits.n_classes if splits.n_classes and splits.n_classes > 2 else 1


def defaults_cost(splits: Splits) -> int:
    """The training work of one fit of the estimator's defaults, in weight-epochs (weights times
    epochs; each epoch passes over the same training rows as a trial's)."""
    estimator = defaults_estimator(splits.task, 0)
    sizes = _layers(estimator.hidden_layer_sizes)
    n_inputs = splits.Xt_train.shape[1]
    return int(estimator.max_epochs) * network_weights(n_inputs, sizes, _outputs(splits))


def trials_cost(config: StudyConfig, splits: Splits, study: optuna.Study) -> int:
    """The training work of the study's trials so far, in weight-epochs: each trial's network
    times the epochs it reported (pruned trials included; failed ones reported none)."""
    n_inputs, n_outputs = splits.Xt_train.shape[1], _outputs(splits)
    default_hidden = defaults_estimator(splits.task, 0).hidden_layer_sizes
    total = 0
    for trial in study.get_trials(deepcopy=False):
        epochs = len(trial.intermediate_values)
        if not epochs:
            continue
        params = params_from_trial(trial, config.space, config.budget.max_epochs)
        sizes = _layers(params.get("hidden_layer_sizes", default_hidden))
        total += epochs * network_weights(n_inputs, sizes, n_outputs)
    return total
