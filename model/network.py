"""The network: dense layers over one packed parameter vector.

Layers follow the CS231n pattern: ``forward`` keeps a cache, ``backward`` consumes it.
All weights come first in the packed vector, then all biases, so L2 (and AdamW's decay) touch
one contiguous slice, and an optimizer updates every parameter with a few NumPy calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import numpy as np
from numpy.typing import DTypeLike

from .activations import Activation, Identity, get_activation
from .losses import OutputLoss


class Dense:
    """A = g(X W + b), with inverted dropout on the output when training."""

    def __init__(
        self,
        W: np.ndarray,
        b: np.ndarray,
        dW: np.ndarray,
        db: np.ndarray,
        activation: Activation,
        dropout: float = 0.0,
    ) -> None:
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self._WT = W.T  # the view dJ/dX is computed with, cut once: W never moves
        self.activation = activation
        self.dropout = dropout
        self._rows = 0  # capacity of the per-batch buffers
        self._n = -1  # the batch size the views below were cut for
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def _buffers(self, n: int) -> None:
        """Per-batch arrays for n rows: views of buffers grown on demand and reused every batch.

        The views are cut once per batch size (in an epoch only the last batch differs).
        """
        if n == self._n:
            return
        dtype, (n_in, n_out) = self.W.dtype, self.W.shape
        if n > self._rows:
            self._z_full = np.empty((n, n_out), dtype)
            self._dx_full = np.empty((n, n_in), dtype)
            self._scratch_full = np.empty((n, n_out), dtype)  # the activation's temporary
            self._ones_full = np.ones(n, dtype)  # db = 1^T dZ as a BLAS product
            if self.dropout:
                self._mask_full = np.empty((n, n_out), dtype)
                self._dropped_full = np.empty((n, n_out), dtype)
            self._rows = n
        self._z, self._dx = self._z_full[:n], self._dx_full[:n]
        self._scratch, self._ones = self._scratch_full[:n], self._ones_full[:n]
        if self.dropout:
            self._mask, self._dropped = self._mask_full[:n], self._dropped_full[:n]
        self._n = n

    def release(self) -> None:
        """Drop the per-batch buffers and the cache: they grow to the largest batch the layer saw
        (a whole validation set, scored each epoch) and the cache holds that batch's input, so a
        fitted network kept beside the next one's training would hold both. The next
        :meth:`forward` makes them again."""
        for name in ("_z", "_dx", "_scratch", "_ones", "_mask", "_dropped"):
            self.__dict__.pop(name, None)
            self.__dict__.pop(f"{name}_full", None)
        self._rows, self._n, self._cache = 0, -1, None

    def forward(self, X: np.ndarray, training: bool, rng: np.random.Generator | None) -> np.ndarray:
        """Activations of this layer for the batch X; the result is a buffer reused next call.

        X must have the layer's dtype (``Network.forward`` sees to it): ``np.dot`` into a
        buffer is a little faster than ``np.matmul`` on small batches but does not cast.
        """
        if X.shape[0] != self._n:
            self._buffers(X.shape[0])
        # Outputs passed positionally: NumPy parses them faster than out= keywords.
        a = np.dot(X, self.W, self._z)
        np.add(a, self.b, a)
        self.activation.forward(a, self._scratch)
        mask = None
        if training and self.dropout:
            assert rng is not None, "dropout in training draws its mask from rng"
            mask = self._mask
            rng.random(dtype=mask.dtype, out=mask)
            keep = 1.0 - self.dropout
            np.greater_equal(mask, self.dropout, out=mask, casting="unsafe")
            mask *= 1.0 / keep
            out = np.multiply(a, mask, out=self._dropped)
        else:
            out = a
        self._cache = (X, a, mask)
        return out

    @overload
    def backward(self, grad: np.ndarray, need_input_grad: Literal[True] = True) -> np.ndarray: ...

    @overload
    def backward(self, grad: np.ndarray, need_input_grad: bool) -> np.ndarray | None: ...

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Fill dW, db from dJ/dA (overwritten) and return dJ/dX when asked."""
        assert self._cache is not None, "backward consumes the cache of forward"
        X, a, mask = self._cache
        if mask is not None:
            grad *= mask
        dz = self.activation.backward(a, grad, self._scratch)
        np.dot(X.T, dz, self.dW)
        np.dot(self._ones, dz, self.db)  # column sums, faster than np.sum(axis=0)
        if not need_input_grad:
            return None
        return np.dot(dz, self._WT, self._dx)


class Network:
    """A multilayer perceptron: hidden Dense layers, a linear output layer and an output loss."""

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str,
        output: OutputLoss,
        dtype: DTypeLike = np.float32,
        dropout: float = 0.0,
    ) -> None:
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.activation_name = activation
        self.output = output
        self.dtype = np.dtype(dtype)
        self.dropout = float(dropout)
        shapes = list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))
        n_weights = sum(i * o for i, o in shapes)
        n_biases = sum(o for _, o in shapes)
        self.n_weights = n_weights
        self.params = np.zeros(n_weights + n_biases, self.dtype)
        self.grads = np.zeros_like(self.params)
        self._bind_layers()

    @property
    def weights(self) -> np.ndarray:
        """All weights as one contiguous slice of the packed parameters (what L2 penalises)."""
        return self.params[: self.n_weights]

    def _bind_layers(self) -> None:
        shapes = list(zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True))
        self.layers: list[Dense] = []
        w_at, b_at = 0, self.n_weights
        for k, (n_in, n_out) in enumerate(shapes):
            last = k == len(shapes) - 1
            views = []
            for flat in (self.params, self.grads):
                views.append(flat[w_at : w_at + n_in * n_out].reshape(n_in, n_out))
                views.append(flat[b_at : b_at + n_out])
            W, b, dW, db = views
            act = Identity() if last else get_activation(self.activation_name)
            self.layers.append(Dense(W, b, dW, db, act, 0.0 if last else self.dropout))
            w_at += n_in * n_out
            b_at += n_out
        self._penalty_grad = np.empty(self.n_weights, self.dtype)  # scratch for (l2 / m) W
        self._weights = self.params[: self.n_weights]
        self._weight_grads = self.grads[: self.n_weights]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["layers"], state["_penalty_grad"], state["_weights"], state["_weight_grads"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind_layers()

    @property
    def coefs(self) -> list[np.ndarray]:
        return [layer.W for layer in self.layers]

    @property
    def intercepts(self) -> list[np.ndarray]:
        return [layer.b for layer in self.layers]

    @property
    def n_params(self) -> int:
        return int(self.params.size)

    def initialize(self, rng: np.random.Generator) -> None:
        """Glorot uniform weights for every layer, W ~ U(-r, r) with r = sqrt(6 / (n_in + n_out));
        zero biases.

        This is scikit-learn's rule for every activation but the logistic one. He initialisation
        (W ~ N(0, 2 / n_in)) for the relu-like layers makes training with Adam learn less per
        epoch at first: Adam's steps are about the learning rate in size whatever a weight's
        scale, so larger initial weights change relatively less per step.
        """
        self.params[:] = 0.0
        for layer in self.layers:
            n_in, n_out = layer.W.shape
            bound = np.sqrt(6.0 / (n_in + n_out))
            layer.W[:] = rng.uniform(-bound, bound, size=(n_in, n_out))

    def set_params(self, coefs: Sequence[np.ndarray], intercepts: Sequence[np.ndarray]) -> None:
        for layer, W, b in zip(self.layers, coefs, intercepts, strict=True):
            layer.W[:] = W
            layer.b[:] = b

    def forward(
        self, X: np.ndarray, training: bool = False, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """Logits of the output layer (a reused buffer) in the network's dtype."""
        a = np.asarray(X, dtype=self.dtype)
        for layer in self.layers:
            a = layer.forward(a, training, rng)
        return a

    def release_buffers(self) -> None:
        """Free every layer's per-batch buffers (see :meth:`Dense.release`)."""
        for layer in self.layers:
            layer.release()

    def loss_and_gradients(
        self, X: np.ndarray, Y: np.ndarray, l2: float = 0.0, rng: np.random.Generator | None = None
    ) -> float:
        """J = (1/m) sum L + (l2 / 2m) sum ||W||^2 on the batch; gradients land in ``self.grads``.

        Dropout is active when ``rng`` is given (training); the biases are not penalised.
        """
        m = X.shape[0]
        z = self.forward(X, training=rng is not None, rng=rng)
        loss, grad = self.output.loss_and_delta(z, Y)
        for k in range(len(self.layers) - 1, 0, -1):
            grad = self.layers[k].backward(grad)
        self.layers[0].backward(grad, need_input_grad=False)  # dJ/dX of the input is not needed
        if l2:
            w = self._weights
            loss += 0.5 * l2 / m * float(np.dot(w, w))
            penalty_grad = np.multiply(w, l2 / m, self._penalty_grad)
            np.add(self._weight_grads, penalty_grad, self._weight_grads)
        return loss

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits computed in float64 with fresh arrays.

        float32 matmuls are not bitwise stable across batch shapes with OpenBLAS; in float64 a row
        gives the same answer alone or inside any batch, which scikit-learn's checks require.
        """
        a = np.asarray(X, dtype=np.float64)
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            a = a @ layer.W.astype(np.float64) + layer.b.astype(np.float64)
            if k < last:
                a = layer.activation.forward(a)
        return a

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        """Network output (probabilities or values) in float64."""
        return self.output.predict(self.predict_logits(X))
