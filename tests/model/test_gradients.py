"""Analytic gradients against central finite differences, for every activation x output x L2."""

import numpy as np
import pytest

from model.activations import HIDDEN_ACTIVATIONS
from model.losses import BinaryCrossEntropy, CategoricalCrossEntropy, SquaredError
from model.network import Network


def _targets(kind: str, rng: np.random.Generator, m: int) -> tuple[object, np.ndarray]:
    if kind == "binary":
        return BinaryCrossEntropy(), rng.integers(0, 2, size=(m, 1)).astype(float)
    if kind == "multiclass":
        return CategoricalCrossEntropy(), np.eye(4)[rng.integers(0, 4, size=m)]
    if kind == "multilabel":
        return BinaryCrossEntropy(), rng.integers(0, 2, size=(m, 3)).astype(float)
    if kind == "regression":
        return SquaredError(), rng.normal(size=(m, 1))
    return SquaredError(), rng.normal(size=(m, 2))  # multi-output regression


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression", "multioutput"])
@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_gradients_match_finite_differences(activation, kind, l2):
    rng = np.random.default_rng(42)
    m = 7
    output, Y = _targets(kind, rng, m)
    X = rng.normal(size=(m, 5))
    net = Network([5, 6, 4, Y.shape[1]], activation, output, dtype=np.float64)
    net.initialize(rng)
    net.params[net.n_weights :] = rng.normal(scale=0.1, size=net.params.size - net.n_weights)

    net.loss_and_gradients(X, Y, l2)
    analytic = net.grads.copy()
    numeric = np.empty_like(analytic)
    eps = 1e-6
    for i in range(net.params.size):
        saved = net.params[i]
        net.params[i] = saved + eps
        plus = net.loss_and_gradients(X, Y, l2)
        net.params[i] = saved - eps
        minus = net.loss_and_gradients(X, Y, l2)
        net.params[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)

    relative = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    assert relative < 1e-6, relative
    assert np.linalg.norm(analytic) > 1e-4  # a zero gradient would pass trivially


def test_l2_penalty_matches_formula():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    net = Network([3, 4, 1], "tanh", SquaredError(), dtype=np.float64)
    net.initialize(rng)
    net.params[net.n_weights :] = 1.0  # biases must not be penalised
    plain = net.loss_and_gradients(X, Y, 0.0)
    penalised = net.loss_and_gradients(X, Y, 0.5)
    expected = 0.5 / (2 * 8) * sum(float((W**2).sum()) for W in net.coefs)
    assert penalised - plain == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_activations_are_stable_for_large_inputs(activation):
    from model.activations import get_activation

    z = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        a = get_activation(activation).forward(z.copy())
    assert np.all(np.isfinite(a))


def test_losses_are_stable_for_extreme_logits():
    z = np.array([[1e4, -1e4, 0.0]])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert np.isfinite(CategoricalCrossEntropy().loss(z, np.array([[0.0, 1.0, 0.0]])))
        assert np.isfinite(BinaryCrossEntropy().loss(z, np.array([[0.0, 1.0, 1.0]])))
    assert CategoricalCrossEntropy().loss(z, np.array([[0.0, 1.0, 0.0]])) == pytest.approx(2e4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_backward_masks_exactly_where_the_activation_is_above_zero(dtype):
    """ReLU's backward compares with a 0-d zero of the activations' dtype: the gradient is
    grad * [a > 0] bit for bit, -0.0, NaN and infinities included."""
    from model.activations import ReLU

    rng = np.random.default_rng(0)
    specials = [-0.0, 0.0, np.nan, np.inf, -np.inf, 1e-30, -1.0, 2.0]
    a = np.maximum(rng.choice(specials, size=(9, 40)), 0.0).astype(dtype)
    a[0, :8] = np.array(specials, dtype=dtype)  # -0.0 and NaN as they are
    grad = rng.choice([-3.0, -0.0, 0.0, 1.5, np.nan], size=a.shape).astype(dtype)
    expected = grad * (a > 0.0).astype(dtype)
    got = ReLU().backward(a, grad.copy(), np.empty_like(a))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))


def _softmax_loss_and_delta_by_fancy_indexing(z: np.ndarray, y: np.ndarray):
    """CategoricalCrossEntropy.loss_and_delta as it was before its row maxima were taken from
    cached flat offsets: a fresh arange and fancy indexing every batch."""
    m = z.shape[0]
    row = z[np.arange(m), z.argmax(axis=1)][:, None]
    z -= row
    y_dot_s = float(np.vdot(y, z))
    np.exp(z, out=z)
    np.add.reduce(z, axis=1, keepdims=True, out=row)
    z /= row
    np.log(row, out=row)
    value = (float(np.add.reduce(row, axis=None)) - y_dot_s) / m
    z -= y
    z *= 1.0 / m
    return value, z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_loss_and_delta_is_the_same_bit_for_bit_when_the_batch_shape_changes(dtype):
    """One loss object sees batches of several shapes (the last batch of an epoch is shorter; a
    network of another width): the offsets it caches per shape follow, and each batch's loss and
    gradient are those of fancy indexing bit for bit, ties between logits included."""
    rng = np.random.default_rng(0)
    loss = CategoricalCrossEntropy()
    for m, k in [(32, 10), (7, 10), (32, 10), (5, 3), (1, 3), (32, 10)]:
        z = (5 * rng.normal(size=(m, k))).astype(dtype)
        z[::2, -1] = z[::2, 0]  # ties: argmax takes the first
        y = np.eye(k, dtype=dtype)[rng.integers(0, k, size=m)]
        expected_value, expected = _softmax_loss_and_delta_by_fancy_indexing(z.copy(), y)
        value, delta = loss.loss_and_delta(z, y)
        assert value == expected_value
        np.testing.assert_array_equal(delta.view(np.uint8), expected.view(np.uint8))
