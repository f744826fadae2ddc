"""Weight initialisation: Glorot uniform for every layer (scikit-learn's rule), zero biases; and
one training step from given weights equal to scikit-learn's (loss, L2 scaling, Adam)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

from model.activations import HIDDEN_ACTIVATIONS
from model.losses import CategoricalCrossEntropy, SquaredError
from model.network import Network
from model.optimizers import Adam


@pytest.mark.parametrize("activation", sorted(HIDDEN_ACTIVATIONS))
def test_initialisation_is_glorot_uniform_with_zero_biases(activation):
    """W ~ U(-r, r), r = sqrt(6 / (n_in + n_out)), for hidden and output layers whatever the
    activation (relu included: He's N(0, 2 / n_in) has a 29% larger std here and is unbounded);
    every bias 0."""
    net = Network([300, 200, 100], activation, SquaredError(), dtype=np.float64)
    net.params[:] = 7.0  # initialize overwrites everything
    net.initialize(np.random.default_rng(0))
    assert np.all(net.params[net.n_weights :] == 0)
    for layer in net.layers:
        n_in, n_out = layer.W.shape
        W = layer.W
        bound = np.sqrt(6 / (n_in + n_out))
        assert 0.99 * bound < np.abs(W).max() <= bound
        # 60,000 or 20,000 draws: the sample std is within 1.5% of r / sqrt(3), the mean near 0
        std = bound / np.sqrt(3)
        assert W.std() == pytest.approx(std, rel=0.015)
        assert abs(W.mean()) < 0.05 * std


def test_training_steps_from_the_same_weights_match_scikit_learn():
    """Six Adam steps (three epochs of two unshuffled batches) from the same weights give
    scikit-learn's weights and epoch losses: the same mean cross-entropy, the same L2 penalty
    (alpha / 2 ||W||^2 divided by the batch size, biases unpenalised) and the same Adam.
    A large alpha makes an L2 scaled by the training-set size, or one on the biases, visible."""
    X, y = make_classification(n_samples=40, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    alpha, batch, epochs = 0.5, 20, 3
    sk = SkMLPClassifier(hidden_layer_sizes=(8, 5), activation="relu", solver="adam", alpha=alpha,
                         batch_size=batch, learning_rate_init=0.01, max_iter=1, shuffle=False,
                         tol=0.0, n_iter_no_change=10**9, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y)  # builds the network; its weights are replaced below
        net = Network([6, 8, 5, 3], "relu", CategoricalCrossEntropy(), dtype=np.float64)
        net.initialize(np.random.default_rng(1))
        for layer, W, b in zip(net.layers, sk.coefs_, sk.intercepts_, strict=True):
            layer.b[:] = np.linspace(-0.1, 0.1, layer.b.size)  # nonzero biases: are they penalised?
            W[:], b[:] = layer.W, layer.b
        sk.set_params(max_iter=epochs)
        sk.fit(X, y)  # warm start: a fresh Adam, 3 epochs from the weights set above

    Y = np.eye(3)[y]
    adam, losses = Adam(net.params), []
    for _ in range(epochs):
        total = 0.0
        for lo in range(0, len(X), batch):
            total += batch * net.loss_and_gradients(X[lo : lo + batch], Y[lo : lo + batch], alpha)
            adam.step(net.grads, 0.01)
        losses.append(total / len(X))
    np.testing.assert_allclose(losses, sk.loss_curve_[-epochs:], rtol=1e-10)
    for ours, theirs in zip([*net.coefs, *net.intercepts], [*sk.coefs_, *sk.intercepts_]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
