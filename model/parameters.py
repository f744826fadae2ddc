"""The estimators' numeric hyperparameters as one table of constraints, checked before fitting.

Each entry states the type (integer or real) and the interval in the usual notation: ``[1, inf)``
includes 1, ``(0, 1)`` excludes both ends. Booleans and strings are not numbers here, although
Python treats ``True`` as 1.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Interval:
    """The values a numeric parameter takes: ``kind`` is ``numbers.Integral`` or ``numbers.Real``;
    ``closed`` says which ends belong to the interval ("both", "left", "right" or "neither")."""

    kind: type
    low: float
    high: float = math.inf
    closed: str = "left"

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        above = value >= self.low if self.closed in ("both", "left") else value > self.low
        below = value <= self.high if self.closed in ("both", "right") else value < self.high
        return bool(above and below)

    def __str__(self) -> str:
        what = "an integer" if self.kind is numbers.Integral else "a real number"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{what} in {left}{_number(self.low)}, {_number(self.high)}{right}"


def _number(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"


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
}


def check_numeric_parameters(params: dict[str, Any], table: dict[str, Interval] = NUMERIC_PARAMETERS) -> None:
    """Raise ValueError naming the first parameter of ``params`` outside its interval."""
    for name, interval in table.items():
        value = params[name]
        if value not in interval:
            raise ValueError(f"{name} must be {interval}; got {value!r}")
