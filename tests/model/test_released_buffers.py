"""A fitted network holds no per-batch buffers: they grow to the largest batch it saw (the
validation set, scored every epoch), and the tuner keeps the best trial's network while the next
one trains."""

import numpy as np

from tests.helpers import small_classifier, small_regressor


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


def _buffer_bytes(est):
    total = 0
    for layer in est._network.layers:
        for value in vars(layer).values():
            if isinstance(value, np.ndarray) and value.base is None and value is not layer.W:
                total += value.nbytes
        if layer._cache is not None:
            total += sum(a.nbytes for a in layer._cache if a is not None)
    return total


def test_fit_with_a_large_validation_set_leaves_no_buffers_behind():
    X, y = _data()
    est = small_classifier(hidden_layer_sizes=(32,), max_epochs=3, batch_size=64, random_state=0)
    est.fit(X[:500], y[:500], X_val=X[500:], y_val=y[500:])
    assert _buffer_bytes(est) == 0
    assert all(layer._rows == 0 and layer._cache is None for layer in est._network.layers)


def test_a_released_network_predicts_and_trains_on_as_before():
    X, y = _data()
    kwargs = dict(hidden_layer_sizes=(16, 8), max_epochs=4, batch_size=32, random_state=1,
                  dropout=0.2)
    a = small_classifier(**kwargs).fit(X[:800], y[:800], X_val=X[800:], y_val=y[800:])
    b = small_classifier(**kwargs).fit(X[:800], y[:800], X_val=X[800:], y_val=y[800:])
    b._network.release_buffers()  # twice is harmless
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    for est in (a, b):
        est.partial_fit(X[:800], y[:800])
    np.testing.assert_array_equal(a._network.params, b._network.params)
    assert _buffer_bytes(a) > 0  # partial_fit keeps its buffers for the next call


def test_regressor_releases_too():
    X, _ = _data(1000)
    y = X[:, 0] * 2.0
    est = small_regressor(hidden_layer_sizes=(8,), max_epochs=2, random_state=0).fit(X, y)
    assert _buffer_bytes(est) == 0
