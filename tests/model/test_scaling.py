"""Robust scaling with smooth clipping (model/scaling.py) against its formulas, and the estimators'
``robust_scaling`` option: what the network sees, continued training, saving."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

import model
from model import MLPClassifier, MLPRegressor
from model.scaling import fit_robust_scale, robust_scale, smooth_clip
from tests.helpers import small_classifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_smooth_clip_matches_its_formula_and_stays_inside_three():
    x = np.array([-300.0, -30.0, -3.0, -0.01, 0.0, 0.01, 1.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(smooth_clip(x), x / np.sqrt(1 + (x / 3) ** 2), rtol=1e-15)
    assert smooth_clip(np.array([3.0]))[0] == pytest.approx(3 / np.sqrt(2), rel=1e-15)
    assert smooth_clip(np.array([4.0]))[0] == pytest.approx(4 / np.sqrt(1 + 16 / 9), rel=1e-15)  # 2.4
    assert np.all(np.abs(smooth_clip(x)) < 3.0)  # strictly inside while 1 + (x / 3)^2 > 1 in floats
    # far out it tends to 3, also where (x / 3)^2 overflows a float64
    np.testing.assert_allclose(smooth_clip(np.array([1e9, -1e200, 1e308])), [3.0, -3.0, 3.0], rtol=1e-12)
    assert smooth_clip(np.array([0.01]))[0] == pytest.approx(0.01, rel=1e-5)  # about x near 0
    assert np.all(np.diff(smooth_clip(x)) > 0)  # increasing: the order of values is kept


def test_robust_scale_centres_on_the_median_and_divides_by_the_interquartile_range():
    column = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])  # quartiles 2.25, 4.75 (linear), median 3.5
    tied = np.array([0.0, 5.0, 5.0, 5.0, 5.0, 9.0])  # quartiles equal: the half range 4.5 instead
    constant = np.full(6, 7.0)
    X = np.column_stack([column, tied, constant])
    center, factor = fit_robust_scale(X)
    np.testing.assert_allclose(center, [3.5, 5.0, 7.0])
    np.testing.assert_allclose(factor, [1 / 2.5, 1 / 4.5, 0.0])
    scaled = robust_scale(X, center, factor)
    np.testing.assert_allclose(scaled[:, 0], smooth_clip((column - 3.5) / 2.5), rtol=1e-15)
    assert scaled[5, 0] < 3.0 and scaled[0, 0] == pytest.approx(-1 / np.sqrt(1 + 1 / 9))  # -1 clipped
    np.testing.assert_array_equal(scaled[:, 2], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_robust_scale_in_pieces_equals_the_formula_on_the_whole_array_bit_for_bit(monkeypatch, dtype):
    """The scaling works through X a piece of rows at a time; the pieces' edges (a piece of 3
    rows here, 10 rows in all, so a short last piece) change no value: each is the float64
    formula rounded once into the output's dtype."""
    import model.scaling

    rng = np.random.default_rng(0)
    X = (rng.standard_normal((10, 4)) * 5).astype(dtype)
    X[0, 0] = 1e30  # far out: clipped to about 3
    center, factor = fit_robust_scale(X)
    whole = smooth_clip((X.astype(np.float64) - center) * factor)
    monkeypatch.setattr(model.scaling, "CHUNK_VALUES", 12)  # 3 rows of 4 columns
    for out_dtype in (np.float32, np.float64):
        scaled = robust_scale(X, center, factor, dtype=out_dtype)
        assert scaled.dtype == out_dtype
        np.testing.assert_array_equal(scaled, whole.astype(out_dtype))
    assert robust_scale(X[:0], center, factor).shape == (0, 4)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_the_network_sees_the_scaled_inputs(Estimator):
    """A model with robust_scaling is the same model trained and asked on the inputs scaled by
    the formula: same seed, identical predictions."""
    X, y = make_classification(n_samples=80, n_features=5, n_informative=3, random_state=0)
    X[:, 0] = np.exp(3 * X[:, 0])  # skewed, with a long tail
    X[3, 1] = 1e6  # one outlier
    q1, median, q3 = np.percentile(X, [25, 50, 75], axis=0)
    X_scaled = (X - median) / (q3 - q1)
    X_scaled /= np.sqrt(1 + (X_scaled / 3) ** 2)
    target = y if Estimator is MLPClassifier else X[:, 2] + y
    kw = {"hidden_layer_sizes": (6,), "max_epochs": 5, "random_state": 0}
    scaled = Estimator(robust_scaling=True, **kw).fit(X, target)
    plain = Estimator(robust_scaling=False, **kw).fit(X_scaled, target)
    predict = "predict_proba" if Estimator is MLPClassifier else "predict"
    np.testing.assert_allclose(getattr(scaled, predict)(X), getattr(plain, predict)(X_scaled), rtol=1e-6)
    np.testing.assert_allclose(scaled.loss_curve_, plain.loss_curve_, rtol=1e-6)


def test_continued_training_and_validation_rows_use_the_first_fits_scaling():
    X, y = make_classification(n_samples=60, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    clf = small_classifier(hidden_layer_sizes=(5,), robust_scaling=True, max_epochs=3, random_state=0)
    clf.fit(X[:30], y[:30], X_val=X[30:], y_val=y[30:])
    center, factor = clf._input_scaling
    np.testing.assert_allclose(center, np.median(X[:30], axis=0))
    clf.partial_fit(100 * X[30:], y[30:])  # other rows, another scale: the fitted scaling is kept
    np.testing.assert_array_equal(clf._input_scaling[0], center)
    np.testing.assert_array_equal(clf._input_scaling[1], factor)


def test_a_scaled_model_saves_and_loads_with_identical_predictions_and_others_have_no_scaling_arrays(tmp_path):
    X, y = make_classification(n_samples=60, n_features=4, n_informative=3, n_redundant=0, random_state=2)
    X[0, 0] = 1e5
    clf = small_classifier(hidden_layer_sizes=(5,), robust_scaling=True, max_epochs=5, random_state=0).fit(X, y)
    assert "input_center" in clf.get_state()[1]
    clf.save(tmp_path / "clf.npz")
    loaded = model.load(tmp_path / "clf.npz")
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert "input_center" not in small_classifier(max_epochs=1).fit(X, y).get_state()[1]


def test_robust_scaling_must_be_a_boolean():
    X, y = make_classification(n_samples=20, n_features=4, random_state=0)
    with pytest.raises(ValueError, match="^robust_scaling must be True or False, got 'yes'$"):
        small_classifier(robust_scaling="yes", max_epochs=1).fit(X, y)
