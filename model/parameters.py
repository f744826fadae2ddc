"""The estimators' numeric hyperparameters as one table of constraints, checked before fitting.

Each entry states the type (integer or real) and the interval in the usual notation: ``[1, inf)``
includes 1, ``(0, 1)`` excludes both ends. Booleans and strings are not numbers here, although
Python treats ``True`` as 1.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np


@dataclass(frozen=True)
class Interval:
    """The values a numeric parameter takes.

    ``kind`` is ``numbers.Integral`` or ``numbers.Real``; ``closed`` says which ends belong to the
    interval ("both", "left", "right" or "neither"); ``or_none``: None is allowed too.
    """

    kind: type
    low: float
    high: float = math.inf
    closed: Literal["both", "left", "right", "neither"] = "left"
    or_none: bool = False

    def __contains__(self, value: Any) -> bool:
        if value is None:
            return self.or_none
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        # A numbers.Real, compared as a float: typeshed's numbers.Real declares no >= nor >.
        number = cast(float, value)
        above = number >= self.low if self.closed in ("both", "left") else number > self.low
        below = number <= self.high if self.closed in ("both", "right") else number < self.high
        return bool(above and below)

    def __str__(self) -> str:
        what = "an integer" if self.kind is numbers.Integral else "a real number"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        text = f"{what} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        return text + " or None" if self.or_none else text


def _number(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


#: The floating-point types a ``dtype`` parameter names (an estimator's training precision, a
#: preprocessor's output).
DTYPES: dict[str, type[np.floating]] = {"float32": np.float32, "float64": np.float64}


#: The numeric hyperparameters of :class:`model.MLPClassifier` and :class:`model.MLPRegressor`.
NUMERIC_PARAMETERS: dict[str, Interval] = {
    "learning_rate": Interval(numbers.Real, 0.0, closed="neither"),
    "batch_size": Interval(numbers.Integral, 1),
    "max_epochs": Interval(numbers.Integral, 1),
    "n_iter_no_change": Interval(numbers.Integral, 1),
    "patience": Interval(numbers.Integral, 1),
    "tol": Interval(numbers.Real, 0.0),
    "l2": Interval(numbers.Real, 0.0),
    "dropout": Interval(numbers.Real, 0.0, 1.0, closed="left"),
    "validation_fraction": Interval(numbers.Real, 0.0, 1.0, closed="neither"),
    "label_smoothing": Interval(numbers.Real, 0.0, 1.0, closed="left"),
    "epoch_rows": Interval(numbers.Integral, 1, or_none=True),
}


def check_numeric_parameters(
    params: dict[str, Any], table: dict[str, Interval] = NUMERIC_PARAMETERS
) -> None:
    """Raise ValueError naming the first parameter of ``params`` outside its interval."""
    for name, interval in table.items():
        value = params[name]
        if value not in interval:
            raise ValueError(f"{name} must be {interval}; got {value!r}")


PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : sequence of int or int, default=(256, 256)
        Units of each hidden layer, input side first; an int is one layer.
    activation : {"relu", "tanh", "sigmoid", "leaky_relu", "elu"}, default="relu"
        Activation of the hidden layers.
    optimizer : {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"}, default="adamw"
        Update rule. ``"adamw"`` applies ``l2`` as decoupled weight decay instead of a loss term.
    learning_rate : float > 0, default=1e-3
        Initial step size; ``lr_schedule`` changes it from epoch to epoch.
    lr_schedule : {"constant", "step", "exponential", "inverse_time", "cosine", "coslog4", \
"plateau"}, default="cosine"
        How the learning rate decays over ``max_epochs`` (``"plateau"`` follows the training loss;
        ``"coslog4"`` is RealMLP's four cosine cycles on a logarithmic time axis, each cycle
        longer than the one before and ending near 0).
    batch_size : int >= 1, default=256
        Rows per gradient step; the last batch of an epoch may be smaller.
    max_epochs : int >= 1, default=256
        Passes over the training data at most.
    tol : float >= 0, default=1e-4
        Smallest improvement of the training loss (or, with early stopping, of the validation
        metric) that counts as progress.
    n_iter_no_change : int >= 1, default=256
        Epochs without progress of the training loss after which training stops (converged).
        The default lets the default schedule run its whole course.
    l2 : float >= 0, default=0.3
        L2 penalty λ: the loss gains (λ / 2m) Σ‖W‖² over the weights (not the biases); with
        ``optimizer="adamw"``, the decoupled weight decay: each step shrinks the weights by
        learning rate × λ.
    dropout : float in [0, 1), default=0.3
        Probability of dropping each hidden unit during training (inverted dropout).
    early_stopping : bool, default=False
        Stop when the validation metric stops improving for ``patience`` epochs and restore the
        best epoch's weights. Validation rows are ``X_val``/``y_val`` of :meth:`fit`, else a
        ``validation_fraction`` of the training rows.
    validation_fraction : float in (0, 1), default=0.1
        Share of the training rows held out for early stopping when no ``X_val`` is given.
    patience : int >= 1, default=10
        Epochs without improvement of the validation metric before early stopping.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split.
    dtype : {"float32", "float64"}, default="float32"
        Precision of training; prediction is computed in float64 so that a row's output does
        not depend on the batch it is predicted in.
    early_stopping_metric : {"score", "loss"}, default="score"
        What early stopping watches: ``"score"`` is what :meth:`score` computes (accuracy, R²),
        ``"loss"`` the validation loss (cross-entropy; RMSE for regressors), smoother and what a
        probability metric rewards.
    label_smoothing : float in [0, 1), default=0.0
        Classifiers only: train on targets (1 - ε) y + ε / K (K classes; 2 for a sigmoid output),
        which caps the confidence of the predicted probabilities and so can raise the log loss.
    robust_scaling : bool, default=True
        Scale each feature as RealMLP does before the network sees it: subtract its median,
        divide by its interquartile range (fitted on the first fit's rows), then clip smoothly
        to (-3, 3) with x / sqrt(1 + (x / 3)²), so that outliers and skewed tails stay in range.
    epoch_rows : int >= 1 or None, default=None
        Rows per epoch: None is one pass over the training rows; an int makes each epoch the next
        ``epoch_rows`` rows of a running shuffled order (reshuffled when used up, so a pass still
        sees every row once). Everything counted in epochs counts these: ``max_epochs``, the
        learning-rate schedule, ``patience``, ``n_iter_no_change``, the loss and validation
        curves and the callbacks. On a large data set they then act several times a pass.
"""


def with_parameters_doc(cls: type) -> type:
    """Append the shared numpydoc ``Parameters`` section to an estimator's docstring."""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + PARAMETERS_DOC
    return cls
