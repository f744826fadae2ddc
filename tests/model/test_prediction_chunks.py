"""Prediction on large inputs runs in chunks of rows, and gives the same output, bit for bit, as
predicting every row at once."""

import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from model import MLPClassifier
from model.estimators import prediction_chunks
from tests.helpers import small_classifier, small_regressor


@pytest.mark.parametrize("n_rows, chunk", [(10, 4), (11, 4), (12, 4), (13, 4), (3, 4), (4, 4), (0, 4), (1, 1), (100_001, 32_768)])
def test_chunks_cover_the_rows_in_order_and_none_is_small(n_rows, chunk):
    chunks = prediction_chunks(n_rows, chunk)
    assert chunks[0].start == 0 and chunks[-1].stop == n_rows
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))  # in order, no gap, no overlap
    assert all(c.start % chunk == 0 for c in chunks)
    if n_rows >= chunk:  # a short remainder joins the chunk before it
        assert all(chunk // 2 <= c.stop - c.start < 2 * chunk for c in chunks)
    else:
        assert len(chunks) == 1


def fitted(estimator, n_features=16, n_classes=3):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, n_features)).astype(np.float32)
    y = np.argmax(X[:, :n_classes], axis=1) if isinstance(estimator, MLPClassifier) else X[:, 0] - X[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X, y)


@pytest.mark.parametrize("make, method", [
    (lambda: small_classifier(hidden_layer_sizes=(64,), max_epochs=2, random_state=0), "predict_proba"),
    (lambda: small_classifier(hidden_layer_sizes=(32, 32), max_epochs=2, random_state=0), "predict"),
    (lambda: small_regressor(hidden_layer_sizes=(64,), max_epochs=2, random_state=0), "predict"),
])
def test_chunked_prediction_equals_unchunked_bit_for_bit(make, method, monkeypatch):
    estimator = fitted(make())
    X = np.random.default_rng(1).normal(size=(100_001, 16)).astype(np.float32)
    calls = []
    network_predict = type(estimator._network).predict_output
    monkeypatch.setattr(type(estimator._network), "predict_output",
                        lambda self, rows: calls.append(len(rows)) or network_predict(self, rows))
    # One BLAS thread, as a study trains and scores (tuner.threads): see prediction_chunks.
    with threadpool_limits(limits=1, user_api="blas"):
        estimator.prediction_chunk_rows = 10**9
        whole = getattr(estimator, method)(X)
        estimator.prediction_chunk_rows = 32_768
        chunked = getattr(estimator, method)(X)
    assert calls == [100_001, 32_768, 32_768, 34_465]  # whole, then three chunks
    assert chunked.dtype == whole.dtype and chunked.shape == whole.shape
    np.testing.assert_array_equal(chunked, whole)
