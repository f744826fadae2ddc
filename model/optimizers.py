"""Optimizers as small classes with one update rule, applied to the packed parameter vector.

All parameters of a network live in one flat array (weights and biases are views into it), so
one update touches every parameter with a handful of NumPy calls whatever the depth.
"""

from __future__ import annotations

import math

import numpy as np


class Optimizer:
    """Updates ``params`` in place from ``grads``, both flat arrays of the same shape and dtype."""

    name: str = ""
    #: Whether the optimizer shrinks the weights itself (decoupled weight decay), in which case
    #: the training loop adds no L2 term to the gradient.
    decouples_weight_decay: bool = False

    def __init__(self, params: np.ndarray) -> None:
        self.params = params
        self._buffer = np.zeros_like(params)

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        raise NotImplementedError

    def _state(self) -> np.ndarray:
        return np.zeros_like(self.params)


class SGD(Optimizer):
    """theta <- theta - lr * g"""

    name = "sgd"

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        np.multiply(grads, -learning_rate, out=self._buffer)
        self.params += self._buffer


class Momentum(Optimizer):
    """v <- mu v - lr g; theta <- theta + v"""

    name = "momentum"

    def __init__(self, params: np.ndarray, momentum: float = 0.9) -> None:
        super().__init__(params)
        self.momentum = momentum
        self.velocity = self._state()

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        self.velocity *= self.momentum
        np.multiply(grads, learning_rate, out=self._buffer)
        self.velocity -= self._buffer
        self.params += self.velocity


class Nesterov(Momentum):
    """Nesterov momentum in the form used by scikit-learn: theta <- theta + mu v - lr g."""

    name = "nesterov"

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        np.multiply(grads, learning_rate, out=self._buffer)
        self.velocity *= self.momentum
        self.velocity -= self._buffer
        self.params -= self._buffer
        np.multiply(self.velocity, self.momentum, out=self._buffer)
        self.params += self._buffer


class RMSprop(Optimizer):
    """s <- rho s + (1 - rho) g^2; theta <- theta - lr g / (sqrt(s) + eps)"""

    name = "rmsprop"

    def __init__(self, params: np.ndarray, rho: float = 0.9, epsilon: float = 1e-8) -> None:
        super().__init__(params)
        self.rho, self.epsilon = rho, epsilon
        self.square_avg = self._state()

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        self.square_avg *= self.rho
        np.multiply(grads, grads, out=self._buffer)
        self._buffer *= 1.0 - self.rho
        self.square_avg += self._buffer
        np.sqrt(self.square_avg, out=self._buffer)
        self._buffer += self.epsilon
        np.divide(grads, self._buffer, out=self._buffer)
        self._buffer *= -learning_rate
        self.params += self._buffer


class Adam(Optimizer):
    """Adaptive moment estimation with bias correction (Kingma & Ba, 2015).

    The textbook update, with m_0 = v_0 = 0,

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
        theta <- theta - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

    (eps as in scikit-learn and PyTorch), is computed from the unscaled sums
    M = m / (1 - b1) and V = v / (1 - b2), kept in ``self.m`` and ``self.v``:

        M <- b1 M + g,   V <- b2 V + g^2
        theta <- theta - c_t * M / (sqrt(V) + eps / sqrt(1 - b2)),
        c_t = lr sqrt(1 - b2^t) (1 - b1) / ((1 - b1^t) sqrt(1 - b2))

    which is the same in exact arithmetic and takes 10 passes over the parameters instead of 12.
    The constants are Python floats or arrays of the parameters' dtype, so float32 parameters are
    updated in float32.
    """

    name = "adam"

    def __init__(
        self,
        params: np.ndarray,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__(params)
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)
        self.t = 0
        self.m = self._state()
        self.v = self._state()
        # The constant factors as 0-d arrays of the parameters' dtype, made once: NumPy takes
        # them faster than Python floats, which it would convert to that dtype on every call
        # (the same values: a Python float meets a float32 array as a float32).
        self._scale = math.sqrt(1.0 - self.beta2)
        self._factors = tuple(
            np.array(c, dtype=params.dtype)
            for c in (self.beta1, self.beta2, self.epsilon / self._scale)
        )

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        m, v, buf, params = self.m, self.v, self._buffer, self.params
        beta1, beta2, eps = self._factors
        # Outputs as positional arguments: NumPy parses them faster than out= keywords.
        np.multiply(m, beta1, m)
        np.add(m, grads, m)
        np.multiply(v, beta2, v)
        np.multiply(grads, grads, buf)
        np.add(v, buf, v)
        rate = float(learning_rate) * math.sqrt(1.0 - b2**self.t) * (1.0 - b1)
        rate /= (1.0 - b1**self.t) * self._scale
        np.sqrt(v, buf)
        np.add(buf, eps, buf)
        np.divide(m, buf, buf)
        np.multiply(buf, rate, buf)
        np.subtract(params, buf, params)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    The decay is not part of the gradient: each step shrinks the weights (never the biases)
    by ``lr * weight_decay``. ``decay_mask`` is 1 on weights and 0 on biases.
    """

    name = "adamw"
    decouples_weight_decay = True

    def __init__(
        self, params: np.ndarray, weight_decay: float = 0.01, decay_mask: np.ndarray | None = None
    ) -> None:
        super().__init__(params)
        self.weight_decay = weight_decay
        self.decay_mask = np.ones_like(params) if decay_mask is None else decay_mask

    def step(self, grads: np.ndarray, learning_rate: float) -> None:
        if self.weight_decay:
            buf = self._buffer
            np.multiply(self.params, self.decay_mask, buf)
            np.multiply(buf, -learning_rate * self.weight_decay, buf)
            np.add(self.params, buf, self.params)
        super().step(grads, learning_rate)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Momentum, Nesterov, RMSprop, Adam, AdamW)
}


def check_optimizer_name(name: str) -> str:
    """Return ``name`` if it is a known optimizer, else raise a ValueError listing them."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        allowed = ", ".join(OPTIMIZERS)
        raise ValueError(f"unknown optimizer {name!r}; expected one of: {allowed}")
    return name
