"""Weight initialisation: He for relu-like hidden layers, Glorot for saturating ones, zero biases."""

import numpy as np
import pytest

from model.activations import HIDDEN_ACTIVATIONS
from model.losses import SquaredError
from model.network import Network


@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_initialisation_follows_he_or_glorot_with_zero_biases(activation):
    """He: W ~ N(0, 2 / n_in) for relu, leaky_relu and elu; Glorot: W ~ U(-r, r), r = sqrt(6 / (n_in + n_out)),
    for tanh, sigmoid and the linear output layer; every bias 0."""
    net = Network([300, 200, 100], activation, SquaredError(), dtype=np.float64)
    net.params[:] = 7.0  # initialize overwrites everything
    net.initialize(np.random.default_rng(0))
    assert np.all(net.params[net.n_weights :] == 0)
    expected = "he" if activation in ("relu", "leaky_relu", "elu") else "glorot"
    assert [layer.activation.init for layer in net.layers] == [expected, "glorot"]
    for layer in net.layers:
        n_in, n_out = layer.W.shape
        W = layer.W
        if layer.activation.init == "he":
            std = np.sqrt(2 / n_in)
        else:
            bound = np.sqrt(6 / (n_in + n_out))
            assert 0.99 * bound < np.abs(W).max() <= bound
            std = bound / np.sqrt(3)
        # 60,000 or 20,000 draws: the sample std is within 1.5% of the target, the mean near 0
        assert W.std() == pytest.approx(std, rel=0.015)
        assert abs(W.mean()) < 0.05 * std
