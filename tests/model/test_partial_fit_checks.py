"""A fitted estimator's partial_fit skips scikit-learn's ``validate_data`` for plain arrays that
it would return unchanged (model/checks.py): the skip must never accept what ``validate_data``
refuses or converts, and every call, on the same arrays or others, is checked again."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.validation import validate_data

from model import MLPClassifier, MLPRegressor
from model.checks import X_DTYPES, accepted_as_is
from tests.helpers import small_classifier, small_regressor

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning"),
]

TINY = {"hidden_layer_sizes": (4,), "max_epochs": 2, "random_state": 0}


def _data(n: int = 40, n_features: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    return X, (X[:, 0] > 0).astype(int)


def _fitted_classifier():
    X, y = _data()
    return small_classifier(**TINY).partial_fit(X, y, classes=[0, 1]), X, y


def _candidates(X, y):
    """Inputs of all sorts for a classifier fitted on 4 features: (name, X, y)."""
    nan, inf = X.copy(), X.copy()
    nan[3, 1], inf[5, 2] = np.nan, -np.inf
    y_nan = y.astype(float)
    y_nan[2] = np.nan
    return [
        ("float64", X, y),
        ("float32", X.astype(np.float32), y),
        ("Fortran order", np.asfortranarray(X), y),
        ("strided view", X[::2], y[::2]),
        ("one row", X[:1], y[:1]),
        ("bool y", X, y.astype(bool)),
        ("str y", X, np.array(["a", "b"])[y]),
        ("float y", X, y.astype(float)),
        ("column y", X, y[:, None]),
        ("float16 X", X.astype(np.float16), y),
        ("int X", X.astype(int), y),
        ("big-endian X", X.astype(">f8"), y),
        ("matrix X", np.asmatrix(X), y),
        ("list X", X.tolist(), y),
        ("list y", X, y.tolist()),
        ("frame X", pd.DataFrame(X, columns=list("abcd")), y),
        ("object y", X, y.astype(object)),
        ("NaN X", nan, y),
        ("inf X", inf, y),
        ("NaN y", X, y_nan),
        ("3 features", X[:, :3], y),
        ("no rows", X[:0], y[:0]),
        ("fewer labels", X, y[:-1]),
        ("3-D X", X[:, :, None], y),
        ("3-D y", X, y[:, None, None]),
        ("y of no column", X, np.empty((X.shape[0], 0))),
        ("0-D y", X, np.array(1)),
    ]


def test_the_skip_accepts_only_what_validate_data_returns_unchanged_and_silently():
    clf, X, y = _fitted_classifier()
    accepted = []
    for name, Xc, yc in _candidates(X, y):
        if not accepted_as_is(clf, Xc, yc):
            continue
        accepted.append(name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            X_out, y_out = validate_data(
                clf, Xc, yc, reset=False, dtype=X_DTYPES, multi_output=True
            )
        assert X_out is Xc and y_out is yc, name
    assert accepted == [
        "float64", "float32", "Fortran order", "strided view", "one row", "bool y", "str y",
        "float y", "column y",
    ]


def test_the_skip_needs_a_fitted_estimator_without_feature_names():
    X, y = _data()
    assert not accepted_as_is(small_classifier(**TINY), X, y)  # not fitted
    frame = pd.DataFrame(X, columns=list("abcd"))
    clf = small_classifier(**TINY).partial_fit(frame, y, classes=[0, 1])
    assert not accepted_as_is(clf, X, y)  # validate_data warns that X has no feature names
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        clf.partial_fit(X, y)


@pytest.mark.parametrize("value, message", [
    (np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity"),
])
def test_every_call_checks_its_input_again_with_scikit_learns_messages(value, message):
    """The same array, accepted on one call and changed in place, is refused on the next."""
    clf, X, y = _fitted_classifier()
    clf.partial_fit(X, y)
    X[7, 0] = value
    with pytest.raises(ValueError, match=message):
        clf.partial_fit(X, y)


def test_a_fitted_estimator_refuses_bad_shapes_with_scikit_learns_messages():
    clf, X, y = _fitted_classifier()
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        clf.partial_fit(X, y[:-1])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        clf.partial_fit(X[:0], y[:0])


def test_a_fitted_regressor_refuses_nan_targets_with_scikit_learns_message():
    X, y = _data()
    reg = small_regressor(**TINY).partial_fit(X, y.astype(float))
    y_nan = y.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        reg.partial_fit(X, y_nan)


def test_a_converted_input_trains_as_before():
    """What the skip leaves to validate_data (lists, float16) is converted and trained on."""
    clf, X, y = _fitted_classifier()
    clf.partial_fit(X.tolist(), y.tolist())
    clf.partial_fit(X.astype(np.float16), y)
    assert clf.n_iter_ == 3


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_hyperparameters_changed_between_calls_are_checked(estimator):
    X, y = _data()
    est = estimator(**TINY)
    est.partial_fit(X, y, classes=[0, 1]) if estimator is MLPClassifier else est.partial_fit(X, y)
    est.set_params(batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size must be an integer in \[1, inf\); got 0"):
        est.partial_fit(X, y)
    est.set_params(batch_size=8)
    est.l2 = -1.0  # set as an attribute, as get_params() reads it
    with pytest.raises(ValueError, match=r"l2 must be a real number in \[0, inf\); got -1.0"):
        est.partial_fit(X, y)
