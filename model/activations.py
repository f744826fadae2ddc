"""Hidden-layer activations. Each works in place and takes its derivative from its output.

Computing the derivative from the activation ``a`` (not from ``z``) is what lets a layer keep
a single buffer per batch, as scikit-learn's MLP does.

``forward`` and ``backward`` accept an optional ``scratch`` array shaped like their input (the
layer passes one it reuses every batch); without it they allocate a temporary. The objects keep
no state, so predicting from several threads is safe. Every temporary has the input's dtype:
Python scalars are "weak" under NumPy 2, so float32 training never upcasts to float64.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01


class Activation:
    """An element-wise non-linearity g with g'(z) expressed through a = g(z)."""

    name: str = ""

    def forward(self, z: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """Overwrite ``z`` with g(z) and return it."""
        raise NotImplementedError

    def backward(
        self, a: np.ndarray, grad: np.ndarray, scratch: np.ndarray | None = None
    ) -> np.ndarray:
        """Overwrite ``grad`` (dJ/da) with dJ/dz = dJ/da * g'(z) and return it."""
        raise NotImplementedError


def _scratch(like: np.ndarray, scratch: np.ndarray | None) -> np.ndarray:
    return np.empty_like(like) if scratch is None else scratch


def _read_only_zero(dtype: type) -> np.ndarray:
    zero: np.ndarray = np.zeros((), dtype)
    zero.flags.writeable = False
    return zero


#: 0 as a 0-d array of each float dtype: NumPy compares an array with it faster than with the
#: Python float 0.0, which it converts to the array's dtype on every call (the same 0).
_ZERO = {np.dtype(t): _read_only_zero(t) for t in (np.float16, np.float32, np.float64)}


def _zero(like: np.ndarray) -> np.ndarray | float:
    return _ZERO.get(like.dtype, 0.0)


def _zeros(like: np.ndarray, scratch: np.ndarray | None) -> np.ndarray:
    """An array of zeros shaped like ``like``, for max(z, 0) and min(z, 0): NumPy's SIMD loop for
    two arrays is several times faster than its loop for an array and a scalar (same result)."""
    zeros = _scratch(like, scratch)
    zeros.fill(0.0)
    return zeros


class Identity(Activation):
    name = "identity"

    def forward(self, z, scratch=None):
        return z

    def backward(self, a, grad, scratch=None):
        return grad


class Sigmoid(Activation):
    """sigma(z) = (1 + tanh(z/2)) / 2: the same function, without exp overflow for large |z|."""

    name = "sigmoid"

    def forward(self, z, scratch=None):
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        return z

    def backward(self, a, grad, scratch=None):
        one_minus_a = np.subtract(1.0, a, out=_scratch(a, scratch))
        grad *= a
        grad *= one_minus_a
        return grad


class Tanh(Activation):
    name = "tanh"

    def forward(self, z, scratch=None):
        return np.tanh(z, out=z)

    def backward(self, a, grad, scratch=None):
        slope = np.multiply(a, a, out=_scratch(a, scratch))
        np.subtract(1.0, slope, out=slope)
        grad *= slope
        return grad


class ReLU(Activation):
    name = "relu"

    def forward(self, z, scratch=None):
        return np.maximum(z, _zeros(z, scratch), out=z)

    def backward(self, a, grad, scratch=None):
        # The 0/1 mask goes into the scratch array in a's dtype: no boolean temporary, and a
        # same-dtype multiply (mixed bool * float loops are slower).
        mask = np.greater(a, _zero(a), _scratch(a, scratch))
        return np.multiply(grad, mask, grad)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def forward(self, z, scratch=None):
        scaled = np.multiply(z, LEAKY_SLOPE, out=_scratch(z, scratch))
        return np.maximum(z, scaled, out=z)

    def backward(self, a, grad, scratch=None):
        # g' = 1 where a > 0, else LEAKY_SLOPE: slope + (1 - slope) * [a > 0]
        slope = np.greater(a, 0.0, out=_scratch(a, scratch))
        slope *= 1.0 - LEAKY_SLOPE
        slope += LEAKY_SLOPE
        grad *= slope
        return grad


class ELU(Activation):
    """elu(z) = z for z > 0, exp(z) - 1 otherwise; g'(z) = a + 1 on the negative side.

    Written as max(z, 0) + expm1(min(z, 0)), which is exact on both sides.
    """

    name = "elu"

    def forward(self, z, scratch=None):
        negative = _zeros(z, scratch)
        np.minimum(z, negative, out=negative)
        np.expm1(negative, out=negative)
        np.maximum(z, 0.0, out=z)
        z += negative
        return z

    def backward(self, a, grad, scratch=None):
        # g' = 1 for a > 0 and a + 1 otherwise, i.e. min(a, 0) + 1
        slope = _zeros(a, scratch)
        np.minimum(a, slope, out=slope)
        slope += 1.0
        grad *= slope
        return grad


#: The hidden activations by name (the order the tuner's search space lists them in).
HIDDEN_ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (ReLU, Tanh, Sigmoid, LeakyReLU, ELU)
}


def get_activation(name: str) -> Activation:
    """The hidden activation called ``name``; a clear ValueError for an unknown one."""
    try:
        return HIDDEN_ACTIVATIONS[name]()
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(HIDDEN_ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; expected one of: {allowed}") from None
