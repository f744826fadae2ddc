"""Activations and output losses for |z| up to 1e4: the exact values, forward and backward, not
only finite ones. References are written out with the math module, one number at a time."""

import math

import numpy as np
import pytest

from model.activations import HIDDEN_ACTIVATIONS, LEAKY_SLOPE, get_activation
from model.losses import BinaryCrossEntropy, CategoricalCrossEntropy, SquaredError

Z = [-1e4, -1e3, -101.0, -100.0, -50.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 30.0, 50.0, 100.0, 101.0, 1e3, 1e4]
DTYPES = [np.float64, np.float32]


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def _softplus(z: float) -> float:
    """log(1 + e^z)"""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


#: name -> (g(z), g'(z)) as plain Python functions of one float.
REFERENCE = {
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * _sigmoid(-z)),
    "tanh": (math.tanh, lambda z: 4 * math.exp(-2 * abs(z)) / (1 + math.exp(-2 * abs(z))) ** 2),  # 1/cosh^2
    "relu": (lambda z: max(z, 0.0), lambda z: 1.0 if z > 0 else 0.0),
    "leaky_relu": (lambda z: z if z > 0 else LEAKY_SLOPE * z, lambda z: 1.0 if z > 0 else LEAKY_SLOPE),
    "elu": (lambda z: z if z > 0 else math.expm1(z), lambda z: 1.0 if z > 0 else math.exp(z)),
}


def _close(actual, expected, dtype):
    """Equal to the reference up to a few units in the last place (absolute near 0, relative else)."""
    tol = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=tol, atol=tol)


def test_every_activation_is_covered():
    assert set(REFERENCE) == set(HIDDEN_ACTIVATIONS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(HIDDEN_ACTIVATIONS))
def test_activation_values_and_slopes_at_the_extremes(name, dtype):
    g, slope = REFERENCE[name]
    act = get_activation(name)
    z = np.array(Z, dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        a = act.forward(z.copy())
        grad = act.backward(a.copy(), np.full_like(z, 3.0))
    assert a.dtype == dtype and grad.dtype == dtype
    _close(a, [g(v) for v in Z], dtype)
    _close(grad, [3.0 * slope(v) for v in Z], dtype)
    # the ends saturate exactly where the function does
    ends = {"sigmoid": (0, 1, 0, 0), "tanh": (-1, 1, 0, 0), "relu": (0, 1e4, 0, 3),
            "leaky_relu": (-100, 1e4, 3 * LEAKY_SLOPE, 3), "elu": (-1, 1e4, 0, 3)}[name]
    assert (a[0], a[-1], grad[0], grad[-1]) == pytest.approx(ends, rel=1e-6, abs=0)


@pytest.mark.parametrize("name", sorted(HIDDEN_ACTIVATIONS))
def test_a_reused_scratch_array_leaves_no_trace_in_the_result(name):
    """A layer passes the same scratch array every batch, still holding the last batch's values."""
    act = get_activation(name)
    z = np.array(Z, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        a = act.forward(z.copy())
        grad = act.backward(a.copy(), np.full_like(z, 3.0))
        for dirty in (np.nan, 7.0, -7.0):
            np.testing.assert_array_equal(act.forward(z.copy(), np.full_like(z, dirty)), a)
            np.testing.assert_array_equal(act.backward(a.copy(), np.full_like(z, 3.0), np.full_like(z, dirty)), grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_at_the_extremes(dtype):
    z = [[1e4, -1e4, 101.0, -101.0, 0.0, 30.0], [-1e4, 1e4, -1e3, 1e3, -30.0, 5.0]]
    y = [[1.0, 1.0, 0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]]
    expected_loss = sum(_softplus(zi) - yi * zi for zr, yr in zip(z, y) for zi, yi in zip(zr, yr)) / 2
    assert expected_loss == pytest.approx((3e4 + 1e3 + 101 + 30 + math.log(2) + math.log1p(math.exp(-5))) / 2, rel=1e-12)
    expected_p = [[_sigmoid(v) for v in row] for row in z]
    _check_loss(BinaryCrossEntropy(), z, y, expected_loss, expected_p, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_cross_entropy_at_the_extremes(dtype):
    z = [[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [101.0, -101.0, 100.0], [1e3, 1e3, 1e3]]
    y = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    rows = []
    for zr, yr in zip(z, y):
        top = max(zr)
        total = sum(math.exp(v - top) for v in zr)
        log_norm = top + math.log(total)
        rows.append(([math.exp(v - top) / total for v in zr], log_norm - sum(v * w for v, w in zip(zr, yr))))
    expected_p = [p for p, _ in rows]
    expected_loss = sum(loss for _, loss in rows) / 4
    assert expected_loss == pytest.approx((2e4 + 0 + 1 + math.log1p(math.exp(-1)) + math.log(3)) / 4, rel=1e-12)
    _check_loss(CategoricalCrossEntropy(), z, y, expected_loss, expected_p, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squared_error_at_the_extremes(dtype):
    z, y = [[1e4, -1e4], [-1e4, 0.5], [3.0, 1e3]], [[0.0, 1.0], [1e4, 0.5], [1.0, -1e3]]
    expected_loss = 0.5 * (1e8 + 10001.0**2 + 4e8 + 0.0 + 4.0 + 4e6) / 3
    _check_loss(SquaredError(), z, y, expected_loss, z, dtype)


def _check_loss(output, z, y, expected_loss, expected_prediction, dtype):
    """``loss``, ``predict`` and ``loss_and_delta`` (loss, and dJ/dz = (y_hat - y) / m) on logits z."""
    z, y = np.array(z, dtype=dtype), np.array(y, dtype=dtype)
    m = z.shape[0]
    expected_delta = (np.array(expected_prediction) - np.array(y, dtype=np.float64)) / m
    tol = 8 * float(np.finfo(dtype).eps)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        assert output.loss(z, y) == pytest.approx(expected_loss, rel=tol)
        prediction = output.predict(z)
        _close(prediction, expected_prediction, dtype)
        assert not np.shares_memory(prediction, z)  # a new array: the logits are left alone
        value, delta = output.loss_and_delta(z.copy(), y)
    assert value == pytest.approx(expected_loss, rel=tol)
    _close(delta, expected_delta, dtype)
