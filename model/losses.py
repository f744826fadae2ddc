"""Output layers paired with their loss: sigmoid + binary cross-entropy, softmax + categorical
cross-entropy, identity + squared error.

Each pair is evaluated on the logits z of the last layer. For all three, dJ/dz = (y_hat - y) / m,
and the loss is computed from z with log-sum-exp so that no probability is ever 0 inside a log.

``loss_and_delta`` is the training path, run once per batch: each pair computes the loss and the
gradient together in place in z, sharing the work (the softmax's row maxima and sums give the
log-sum-exp), with sums as BLAS dot products and no full-size temporaries where avoidable.
"""

from __future__ import annotations

import numpy as np

from .activations import Sigmoid


class OutputLoss:
    """The output activation and its loss, J = (1/m) * sum over samples of L(y_hat, y)."""

    name: str = ""

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Output activation y_hat = f(z); returns a new array."""
        raise NotImplementedError

    def loss(self, z: np.ndarray, y: np.ndarray) -> float:
        """Mean loss over the rows of z (logits) against targets y."""
        raise NotImplementedError

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean loss and dJ/dz, overwriting ``z`` with the gradient."""
        m = z.shape[0]
        value = self.loss(z, y)
        delta = self._to_output(z)
        delta -= y
        delta *= 1.0 / m
        return value, delta

    def _to_output(self, z: np.ndarray) -> np.ndarray:
        """Output activation computed in place in ``z``."""
        raise NotImplementedError


_SIGMOID = Sigmoid()


class BinaryCrossEntropy(OutputLoss):
    """One sigmoid unit per label; L = -sum_k [y log y_hat + (1 - y) log(1 - y_hat)].

    With y_hat = sigmoid(z), -log y_hat = log(1 + e^-z), so L = sum_k log(1 + e^z) - y z,
    evaluated as ``logaddexp(0, z) - y * z``.
    """

    name = "binary_cross_entropy"

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self._to_output(np.array(z, copy=True))

    def _to_output(self, z: np.ndarray) -> np.ndarray:
        return _SIGMOID.forward(z)  # the hidden layers' sigmoid: one implementation of it

    def loss(self, z: np.ndarray, y: np.ndarray) -> float:
        per_element = np.logaddexp(0.0, z) - y * z
        return float(per_element.sum() / z.shape[0])

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        m = z.shape[0]
        y_dot_z = float(np.vdot(y, z))
        softplus = np.logaddexp(0.0, z)
        value = (float(np.add.reduce(softplus, axis=None)) - y_dot_z) / m
        delta = self._to_output(z)
        delta -= y
        delta *= 1.0 / m
        return value, delta


class CategoricalCrossEntropy(OutputLoss):
    """Softmax over classes; L = -sum_k y_k log softmax(z)_k with a log-sum-exp."""

    name = "categorical_cross_entropy"
    _offsets_shape: tuple[int, ...] = ()  # the shape of z that _offsets were made for
    _offsets: np.ndarray

    def predict(self, z: np.ndarray) -> np.ndarray:
        return self._to_output(np.array(z, copy=True))

    def _to_output(self, z: np.ndarray) -> np.ndarray:
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def loss(self, z: np.ndarray, y: np.ndarray) -> float:
        shifted = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        picked = (shifted * y).sum(axis=1)
        return float((log_norm * y.sum(axis=1) - picked).sum() / z.shape[0])

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """One pass for both: with s = z - max(z), L = log sum_k e^s_k - y.s per row.

        Like the gradient softmax(z) - y, this takes each row of y to sum to 1 (one-hot or soft
        labels), so the loss is the one whose gradient is returned.
        """
        m = z.shape[0]
        # The row maxima picked at their argmax: the same values as a max over axis 1, which
        # NumPy reduces row by row, slowly for the few columns of an output layer. They are
        # taken from the flat z at each row's offset (argmax + k * row), offsets made once per
        # shape of z: cheaper than indexing with a fresh arange every batch.
        if z.shape != self._offsets_shape:
            self._offsets_shape, self._offsets = z.shape, np.arange(0, z.size, z.shape[1])
        row = z.take(z.argmax(axis=1) + self._offsets)[:, None]
        # Outputs passed positionally: NumPy parses them faster than out= keywords.
        np.subtract(z, row, z)
        y_dot_s = float(np.vdot(y, z))
        np.exp(z, z)
        np.add.reduce(z, 1, None, row, keepdims=True)  # the row sums, into row
        np.divide(z, row, z)
        np.log(row, row)
        value = (float(np.add.reduce(row, None)) - y_dot_s) / m
        np.subtract(z, y, z)
        np.multiply(z, 1.0 / m, z)
        return value, z


class SquaredError(OutputLoss):
    """Identity output; L = 1/2 * ||y_hat - y||^2 (the 1/2 makes dL/dz = y_hat - y)."""

    name = "squared_error"

    def predict(self, z: np.ndarray) -> np.ndarray:
        return np.array(z, copy=True)

    def _to_output(self, z: np.ndarray) -> np.ndarray:
        return z

    def loss(self, z: np.ndarray, y: np.ndarray) -> float:
        diff = z - y
        return float(0.5 * np.einsum("ij,ij->", diff, diff) / z.shape[0])

    def loss_and_delta(self, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        m = z.shape[0]
        z -= y
        value = 0.5 * float(np.vdot(z, z)) / m
        z *= 1.0 / m
        return value, z


OUTPUT_LOSSES: dict[str, type[OutputLoss]] = {
    cls.name: cls for cls in (BinaryCrossEntropy, CategoricalCrossEntropy, SquaredError)
}
