"""Inverted dropout: the gradient with the mask held fixed matches finite differences, and the
scaled mask keeps every unit's expected activation."""

import numpy as np
import pytest

from model.activations import HIDDEN_ACTIVATIONS
from model.losses import CategoricalCrossEntropy
from model.network import Network


def _dropout_network(activation: str, rng: np.random.Generator, p: float = 0.4) -> Network:
    net = Network([5, 6, 4, 3], activation, CategoricalCrossEntropy(), dtype=np.float64, dropout=p)
    net.initialize(rng)
    net.params[net.n_weights :] = rng.normal(scale=0.1, size=net.params.size - net.n_weights)
    return net


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_dropout_gradients_match_finite_differences(activation, l2):
    """Every pass draws its masks from a generator seeded alike, so all of them drop the same units."""
    rng = np.random.default_rng(7)
    m = 9
    X, Y = rng.normal(size=(m, 5)), np.eye(3)[rng.integers(0, 3, size=m)]
    net = _dropout_network(activation, rng)

    def loss() -> float:
        return net.loss_and_gradients(X, Y, l2, rng=np.random.default_rng(123))

    loss()
    analytic = net.grads.copy()
    masks = [layer._cache[2].copy() for layer in net.layers[:-1]]
    # the masks drop some units and keep others (scaled by 1/keep), so the check is not vacuous
    for mask in masks:
        assert 0 < np.count_nonzero(mask) < mask.size
        np.testing.assert_allclose(mask[mask != 0], 1 / 0.6, rtol=1e-15)
    numeric = np.empty_like(analytic)
    eps = 1e-6
    for i in range(net.params.size):
        saved = net.params[i]
        net.params[i] = saved + eps
        plus = loss()
        net.params[i] = saved - eps
        minus = loss()
        net.params[i] = saved
        numeric[i] = (plus - minus) / (2 * eps)
    for layer, mask in zip(net.layers, masks):
        np.testing.assert_array_equal(layer._cache[2], mask)  # same mask in every pass

    relative = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    assert relative < 1e-6, relative
    assert np.linalg.norm(analytic) > 1e-4


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inverted_dropout_keeps_the_expected_activation(p, dtype):
    """Each unit is kept with probability 1 - p and then scaled by 1 / (1 - p): the values kept are
    exactly a / (1 - p), about a share p is dropped, and the mean over many masks is a."""
    rng = np.random.default_rng(0)
    net = Network([8, 50, 1], "sigmoid", CategoricalCrossEntropy(), dtype=dtype, dropout=p)
    net.initialize(rng)
    layer = net.layers[0]
    X = rng.normal(size=(200, 8)).astype(dtype)
    a = layer.forward(X, training=False, rng=None).copy()  # sigmoid: every a in (0, 1)
    assert a.min() > 0

    n_masks = 100
    total = np.zeros(a.shape)
    dropped = 0
    for _ in range(n_masks):
        out = layer.forward(X, training=True, rng=rng)
        kept = out != 0
        dropped += a.size - np.count_nonzero(kept)
        np.testing.assert_allclose(out[kept], a[kept] / (1 - p), rtol=4 * np.finfo(dtype).eps)
        total += out
    mean = total / n_masks
    # 100 masks x 10,000 units: the dropped share is within 0.003 of p (over 5 standard errors)
    assert dropped / (n_masks * a.size) == pytest.approx(p, abs=0.003)
    # the mean activation over all units: relative standard error sqrt(p / (1 - p) / 1e6) <= 0.002
    assert mean.sum() / a.sum() == pytest.approx(1.0, abs=0.01)
    # and unit by unit, within 6 standard errors of a
    se = a * np.sqrt(p / (1 - p) / n_masks)
    assert np.all(np.abs(mean - a) < 6 * se)


def test_dropout_is_only_on_hidden_layers_and_only_in_training():
    rng = np.random.default_rng(1)
    net = _dropout_network("tanh", rng, p=0.5)
    assert [layer.dropout for layer in net.layers] == [0.5, 0.5, 0.0]
    X = rng.normal(size=(4, 5))
    plain = net.forward(X).copy()
    np.testing.assert_array_equal(net.forward(X, training=False, rng=rng), plain)
    assert not np.allclose(net.forward(X, training=True, rng=rng), plain)
