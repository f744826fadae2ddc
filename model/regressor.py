"""The multilayer perceptron regressor: single or multi-output, targets standardised inside."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from .estimators import BaseMLP
from .losses import OutputLoss, SquaredError
from .parameters import with_parameters_doc
from .serialization import saveable


@saveable
@with_parameters_doc
class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor (identity output, squared error), single or multi-output.

    Targets are standardised internally, so raw targets in the hundreds train as well as
    unit-scale ones; predictions are returned in the original units.
    """

    _monitors = {"score": ("val_r2", True), "loss": ("val_rmse", False)}

    def partial_fit(self, X, y):
        """One epoch over (X, y)."""
        return self._fit(X, y, None, None, (), incremental=True)

    def _encode_targets(self, y: np.ndarray, fitting: bool) -> np.ndarray:
        if self.label_smoothing:
            raise ValueError(
                f"label_smoothing applies to classifiers only; got {self.label_smoothing!r}"
            )
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        Y = y[:, None] if y.ndim == 1 else y
        if fitting:
            self._y_mean = Y.mean(axis=0)
            scale = Y.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        return (Y - self._y_mean) / self._y_scale

    def _output_loss(self) -> OutputLoss:
        return SquaredError()

    def _target_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        arrays["y_mean"], arrays["y_scale"] = self._y_mean, self._y_scale

    def _restore_targets(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self._y_mean, self._y_scale = arrays["y_mean"], arrays["y_scale"]

    def _validation_evaluator(
        self, X_val: np.ndarray, y_val: np.ndarray
    ) -> Callable[[], dict[str, float]]:
        y = np.asarray(y_val, dtype=np.float64)

        def evaluate() -> dict[str, float]:
            pred = self._decode(self._network.forward(X_val).astype(np.float64))
            y_true = y.reshape(pred.shape)
            return {
                "val_rmse": math.sqrt(mean_squared_error(y_true, pred)),
                "val_mae": float(mean_absolute_error(y_true, pred)),
                "val_r2": float(r2_score(y_true, pred)),
            }

        return evaluate

    def _decode(self, output: np.ndarray) -> np.ndarray:
        pred = output * self._y_scale + self._y_mean
        return pred.ravel() if pred.shape[1] == 1 else pred

    def predict(self, X) -> np.ndarray:
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
