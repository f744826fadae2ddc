"""Label smoothing: the targets it trains on against their formula, the gradient of the smoothed
loss against finite differences, what it does to a fitted classifier's confidence, its refusal by
regressors, and saving a smoothed classifier."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

import model
from model.losses import BinaryCrossEntropy, CategoricalCrossEntropy
from model.network import Network
from tests.helpers import small_classifier, small_regressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EPS = 0.2


def _targets_seen_in_training(clf, X, y):
    """The target rows of the first (and only) full batch of one epoch, in the row order of y."""
    seen = {}
    original = Network.loss_and_gradients

    def spy(network, Xb, Yb, l2=0.0, rng=None):
        seen["X"], seen["Y"] = Xb.copy(), Yb.copy()
        return original(network, Xb, Yb, l2, rng)

    Network.loss_and_gradients = spy
    try:
        clf.set_params(max_epochs=1, batch_size=len(y)).fit(X, y)
    finally:
        Network.loss_and_gradients = original
    order = [int(np.flatnonzero(np.all(np.isclose(X.astype(np.float32), row), axis=1))[0]) for row in seen["X"]]
    return seen["Y"], np.asarray(order)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_training_targets_are_one_hot_mixed_with_the_uniform_distribution(n_classes):
    X, y = make_classification(n_samples=40, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=n_classes, random_state=0)
    Y, order = _targets_seen_in_training(small_classifier(hidden_layer_sizes=(3,), label_smoothing=EPS, random_state=0), X, y)
    if n_classes == 2:  # one sigmoid: y becomes (1 - eps) y + eps / 2, so 0.1 and 0.9
        expected = np.where(y[order] == 1, 1 - EPS / 2, EPS / 2)[:, None]
    else:  # (1 - eps) one_hot + eps / 4: 0.85 for the true class, 0.05 for the others
        expected = np.full((len(y), n_classes), EPS / n_classes)
        expected[np.arange(len(y)), y[order]] = 1 - EPS + EPS / n_classes
    np.testing.assert_allclose(Y, expected, rtol=1e-6)
    np.testing.assert_allclose(Y.sum(axis=1), 1.0 if n_classes > 2 else Y[:, 0], rtol=1e-6)


def test_without_smoothing_the_targets_stay_one_hot():
    X, y = make_classification(n_samples=40, n_features=5, n_informative=3, n_redundant=0, n_classes=3,
                               random_state=0)
    Y, order = _targets_seen_in_training(small_classifier(hidden_layer_sizes=(3,), random_state=0), X, y)
    np.testing.assert_array_equal(Y, np.eye(3)[y[order]])


@pytest.mark.parametrize("output, k", [(CategoricalCrossEntropy(), 4), (BinaryCrossEntropy(), 1)])
def test_the_smoothed_loss_and_its_gradient(output, k):
    """With smoothed targets the loss is -sum_k y~_k log p_k (its value checked against that sum
    written out), and the gradient returned is that loss's: central finite differences."""
    rng = np.random.default_rng(3)
    m = 6
    hard = np.eye(4)[rng.integers(0, 4, m)] if k == 4 else rng.integers(0, 2, (m, 1)).astype(float)
    smooth = (1 - EPS) * hard + EPS / (4 if k == 4 else 2)
    X = rng.normal(size=(m, 5))
    net = Network([5, 6, k], "tanh", output, dtype=np.float64)
    net.initialize(rng)
    net.params[net.n_weights :] = rng.normal(scale=0.1, size=net.params.size - net.n_weights)

    p = output.predict(net.predict_logits(X))
    if k == 4:
        written_out = -np.sum(smooth * np.log(p)) / m
    else:
        written_out = -np.sum(smooth * np.log(p) + (1 - smooth) * np.log(1 - p)) / m
    assert net.loss_and_gradients(X, smooth) == pytest.approx(written_out, rel=1e-12)

    analytic = net.grads.copy()
    numeric = np.empty_like(analytic)
    for i in range(net.params.size):
        saved = net.params[i]
        net.params[i] = saved + 1e-6
        plus = net.loss_and_gradients(X, smooth)
        net.params[i] = saved - 1e-6
        minus = net.loss_and_gradients(X, smooth)
        net.params[i] = saved
        numeric[i] = (plus - minus) / 2e-6
    relative = np.linalg.norm(analytic - numeric) / (np.linalg.norm(analytic) + np.linalg.norm(numeric))
    assert relative < 1e-6, relative
    assert np.linalg.norm(analytic) > 1e-4


def test_smoothing_caps_the_confidence_of_a_fitted_classifier():
    """On separable data the smoothed loss is lowest at p = 1 - eps / 2 = 0.9 for the true class,
    so training long does not push the probabilities to 0 and 1 as it does without smoothing."""
    X, y = make_classification(n_samples=80, n_features=4, n_informative=2, n_redundant=0, class_sep=3.0,
                               random_state=1)
    kw = {"hidden_layer_sizes": (16,), "learning_rate": 1e-2, "max_epochs": 300, "n_iter_no_change": 300,
          "random_state": 0}
    plain = small_classifier(**kw).fit(X, y).predict_proba(X).max(axis=1)
    smoothed = small_classifier(label_smoothing=EPS, **kw).fit(X, y).predict_proba(X).max(axis=1)
    assert plain.max() > 0.999
    assert smoothed.max() < 0.98
    assert np.median(smoothed) == pytest.approx(1 - EPS / 2, abs=0.03)


def test_a_regressor_refuses_label_smoothing_and_out_of_range_values_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="^label_smoothing applies to classifiers only; got 0.1$"):
        small_regressor(label_smoothing=0.1, max_epochs=1).fit(X, X[:, 0])
    for bad in (1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match=r"^label_smoothing must be a real number in \[0, 1\); got"):
            small_classifier(label_smoothing=bad, max_epochs=1).fit(X, X[:, 0] > 0)


def test_a_smoothed_classifier_saves_and_loads_with_identical_predictions(tmp_path):
    X, y = make_classification(n_samples=60, n_features=5, n_classes=3, n_informative=3, random_state=0)
    clf = small_classifier(hidden_layer_sizes=(6,), label_smoothing=EPS, max_epochs=5, random_state=0).fit(X, y)
    clf.save(tmp_path / "clf.npz")
    loaded = model.load(tmp_path / "clf.npz")
    assert loaded.get_params()["label_smoothing"] == EPS
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
