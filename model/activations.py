"""Hidden-layer activations. Each works in place and takes its derivative from its output.

Computing the derivative from the activation ``a`` (not from ``z``) is what lets a layer keep
a single buffer per batch, as scikit-learn's MLP does.
"""

from __future__ import annotations

import numpy as np

LEAKY_SLOPE = 0.01


class Activation:
    """An element-wise non-linearity g with g'(z) expressed through a = g(z)."""

    name: str = ""
    #: "he" for relu-like units, "glorot" for saturating ones.
    init: str = "glorot"

    def forward(self, z: np.ndarray) -> np.ndarray:
        """Overwrite ``z`` with g(z) and return it."""
        raise NotImplementedError

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Overwrite ``grad`` (dJ/da) with dJ/dz = dJ/da * g'(z) and return it."""
        raise NotImplementedError


class Identity(Activation):
    name = "identity"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        return grad


class Sigmoid(Activation):
    """sigma(z) = (1 + tanh(z/2)) / 2: the same function, without exp overflow for large |z|."""

    name = "sigmoid"

    def forward(self, z: np.ndarray) -> np.ndarray:
        z *= 0.5
        np.tanh(z, out=z)
        z += 1.0
        z *= 0.5
        return z

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        grad *= a
        grad *= 1.0 - a
        return grad


class Tanh(Activation):
    name = "tanh"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z, out=z)

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        grad *= 1.0 - a * a
        return grad


class ReLU(Activation):
    name = "relu"
    init = "he"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0.0, out=z)

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        grad *= a > 0
        return grad


class LeakyReLU(Activation):
    name = "leaky_relu"
    init = "he"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, LEAKY_SLOPE * z, out=z)

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        grad *= np.where(a > 0, 1.0, LEAKY_SLOPE).astype(grad.dtype, copy=False)
        return grad


class ELU(Activation):
    """elu(z) = z for z > 0, exp(z) - 1 otherwise; g'(z) = a + 1 on the negative side."""

    name = "elu"
    init = "he"

    def forward(self, z: np.ndarray) -> np.ndarray:
        negative = np.expm1(np.minimum(z, 0.0))
        np.copyto(z, negative, where=z <= 0)
        return z

    def backward(self, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        grad *= np.where(a > 0, 1.0, a + 1.0).astype(grad.dtype, copy=False)
        return grad


HIDDEN_ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Sigmoid, Tanh, ReLU, LeakyReLU, ELU)
}


def get_activation(name: str) -> Activation:
    """The hidden activation called ``name``; a clear ValueError for an unknown one."""
    try:
        return HIDDEN_ACTIVATIONS[name]()
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(HIDDEN_ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; expected one of: {allowed}") from None
