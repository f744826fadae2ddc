"""The MLP learns, its optimizers/schedules/regularisers behave, and bad input is refused."""


import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, make_classification
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from model.optimizers import OPTIMIZERS
from model.schedules import SCHEDULES
from tests.helpers import small_classifier, small_regressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _splits(X, y, stratify):
    for seed in (0, 1, 2):
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y if stratify else None
        )
        scaler = StandardScaler().fit(X_tr)
        yield scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te, seed


def test_learns_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, dtype=float)
    y = np.array([0, 1, 1, 0] * 25)
    clf = small_classifier(hidden_layer_sizes=(8,), activation="tanh", learning_rate=0.05,
                        max_epochs=300, l2=0.0, random_state=0).fit(X, y)
    assert clf.score(X, y) == 1.0


def test_digits_accuracy():
    X, y = load_digits(return_X_y=True)
    scores = [small_classifier(max_epochs=100, random_state=s).fit(a, c).score(b, d)
              for a, b, c, d, s in _splits(X, y, True)]
    assert np.mean(scores) >= 0.96


def test_breast_cancer_accuracy():
    X, y = load_breast_cancer(return_X_y=True)
    scores = [small_classifier(max_epochs=100, random_state=s).fit(a, c).score(b, d)
              for a, b, c, d, s in _splits(X, y, True)]
    assert np.mean(scores) >= 0.95


def test_diabetes_close_to_ridge_on_raw_targets():
    X, y = load_diabetes(return_X_y=True)
    assert y.max() > 300  # raw targets in the hundreds: the regressor standardises them itself
    ours, ridge = [], []
    for a, b, c, d, s in _splits(X, y, False):
        ours.append(small_regressor(hidden_layer_sizes=(16,), l2=1.0, max_epochs=200, random_state=s).fit(a, c).score(b, d))
        ridge.append(Ridge().fit(a, c).score(b, d))
    assert np.mean(ours) >= np.mean(ridge) - 0.05


def test_multilabel_and_multioutput():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    clf = small_classifier(max_epochs=100, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == (300, 2)
    assert np.mean(clf.predict(X) == Y) > 0.95
    T = np.column_stack([3 * X[:, 0] + 100, X[:, 1] * X[:, 2]])
    reg = small_regressor(max_epochs=200, random_state=0).fit(X, T)
    assert reg.predict(X).shape == (300, 2)
    assert reg.score(X, T) > 0.9


def test_string_labels_and_dataframes():
    X, y = make_classification(n_samples=200, n_features=5, n_informative=3, n_classes=3, random_state=0)
    labels = np.array(["cat", "dog", "owl"])[y]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    clf = small_classifier(max_epochs=100, random_state=0).fit(frame, labels)
    assert list(clf.classes_) == ["cat", "dog", "owl"]
    assert set(clf.predict(frame)) <= {"cat", "dog", "owl"}
    assert clf.score(frame, labels) > 0.85
    assert list(clf.feature_names_in_) == list(frame.columns)


def _fixed_problem():
    X, y = make_classification(n_samples=256, n_features=10, random_state=1)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_optimizer_lowers_the_loss(optimizer):
    X, y = _fixed_problem()
    lr = 0.05 if optimizer in ("sgd", "momentum", "nesterov") else 0.005
    clf = small_classifier(optimizer=optimizer, learning_rate=lr, max_epochs=20, random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < 0.7 * clf.loss_curve_[0]


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_every_schedule_lowers_the_loss(schedule):
    X, y = _fixed_problem()
    clf = small_classifier(lr_schedule=schedule, learning_rate=0.01, max_epochs=20, random_state=0).fit(X, y)
    assert clf.loss_curve_[-1] < 0.7 * clf.loss_curve_[0]


def test_schedules_decrease_the_rate():
    from model.schedules import make_schedule

    for name in ("step", "exponential", "inverse_time", "cosine"):
        s = make_schedule(name, 0.1, 40)
        rates = [s.rate(e) for e in range(40)]
        assert rates[0] == pytest.approx(0.1)
        assert all(b <= a for a, b in zip(rates, rates[1:])) and rates[-1] < 0.05, name
    plateau = make_schedule("plateau", 0.1, 40, patience=2)
    for loss in [1.0, 0.5, 0.5, 0.5]:
        plateau.observe(loss)
    assert plateau.rate(4) == pytest.approx(0.05)


def test_dropout_is_off_in_predict():
    X, y = _fixed_problem()
    clf = small_classifier(dropout=0.5, max_epochs=5, random_state=0).fit(X, y)
    first = clf.predict_proba(X)
    assert np.array_equal(first, clf.predict_proba(X))
    # and the prediction is the plain forward pass with the learnt weights
    a = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        a = np.maximum(a @ W.astype(float) + b, 0)
    z = (a @ clf.coefs_[-1].astype(float) + clf.intercepts_[-1]).ravel()
    np.testing.assert_allclose(first[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-10)


def test_dropout_changes_training():
    X, y = _fixed_problem()
    with_dropout = small_classifier(dropout=0.5, max_epochs=5, random_state=0).fit(X, y)
    without = small_classifier(dropout=0.0, max_epochs=5, random_state=0).fit(X, y)
    assert not np.allclose(with_dropout.coefs_[0], without.coefs_[0])


def test_early_stopping_restores_the_best_epoch():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    # a large learning rate makes validation accuracy wander, so the last epoch is not the best
    clf = small_classifier(learning_rate=0.05, optimizer="sgd", early_stopping=True, patience=5,
                        max_epochs=60, random_state=0)
    clf.fit(X_tr, y_tr, X_val=X_val, y_val=y_val)
    best = int(np.argmax(clf.validation_scores_))
    assert clf.best_epoch_ == best + 1
    assert clf.best_epoch_ < clf.n_iter_  # so restoring is not a no-op
    assert clf.score(X_val, y_val) == pytest.approx(max(clf.validation_scores_))


def test_early_stopping_with_validation_fraction():
    X, y = _fixed_problem()
    clf = small_classifier(early_stopping=True, validation_fraction=0.2, patience=3, max_epochs=200, random_state=0).fit(X, y)
    assert clf.stop_reason_ == "early_stopping"
    assert len(clf.validation_scores_) == clf.n_iter_


def test_convergence_stops_on_tol():
    X, y = _fixed_problem()
    clf = small_classifier(tol=0.5, n_iter_no_change=2, max_epochs=100, random_state=0).fit(X, y)
    assert clf.stop_reason_ == "converged" and clf.n_iter_ < 100


def test_callbacks_see_each_epoch_and_can_stop():
    X, y = _fixed_problem()
    seen = []

    def callback(epoch, logs):
        seen.append((epoch, logs))
        return epoch == 3

    clf = small_classifier(max_epochs=50, random_state=0).fit(X[:200], y[:200], X_val=X[200:], y_val=y[200:], callbacks=[callback])
    assert [e for e, _ in seen] == [1, 2, 3]
    assert clf.n_iter_ == 3 and clf.stop_reason_ == "callback"
    assert set(seen[0][1]) >= {"loss", "lr", "val_loss", "val_accuracy"}
    assert seen[-1][1]["loss"] == clf.loss_curve_[-1]


def _last_logs(estimator, X_tr, y_tr, X_val, y_val) -> dict[str, float]:
    seen = []
    estimator.fit(X_tr, y_tr, X_val=X_val, y_val=y_val, callbacks=[lambda epoch, logs: seen.append(logs)])
    return seen[-1]


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_epoch_validation_metrics_match_the_fitted_model(kind):
    """The per-epoch validation metrics (float32, from the logits) are what predict gives."""
    from sklearn.metrics import accuracy_score, log_loss

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    if kind == "binary":
        y = y % 2
    elif kind == "multilabel":
        y = np.column_stack([y % 2, y >= 5, y == 0]).astype(int)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    clf = small_classifier(hidden_layer_sizes=(16,), max_epochs=5, random_state=0)
    logs = _last_logs(clf, X_tr, y_tr, X_val, y_val)
    proba = clf.predict_proba(X_val)
    assert logs["val_accuracy"] == pytest.approx(accuracy_score(y_val, clf.predict(X_val)), abs=1.5 / len(y_val))
    if kind == "multilabel":  # summed over labels, as the training loss is
        expected = -np.mean(np.sum(y_val * np.log(proba) + (1 - y_val) * np.log(1 - proba), axis=1))
    else:
        expected = log_loss(y_val, proba, labels=clf.classes_)
    assert logs["val_loss"] == pytest.approx(expected, rel=1e-4)


def test_epoch_validation_metrics_match_the_fitted_regressor():
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    X, y = load_diabetes(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(StandardScaler().fit_transform(X), y, test_size=0.3, random_state=0)
    reg = small_regressor(hidden_layer_sizes=(16,), max_epochs=5, random_state=0)
    logs = _last_logs(reg, X_tr, y_tr, X_val, y_val)
    pred = reg.predict(X_val)
    assert logs["val_rmse"] == pytest.approx(root_mean_squared_error(y_val, pred), rel=1e-4)
    assert logs["val_mae"] == pytest.approx(mean_absolute_error(y_val, pred), rel=1e-4)
    assert logs["val_r2"] == pytest.approx(r2_score(y_val, pred), rel=1e-4)


def test_same_random_state_same_weights():
    X, y = _fixed_problem()
    a = small_classifier(dropout=0.2, max_epochs=5, random_state=7).fit(X, y)
    b = small_classifier(dropout=0.2, max_epochs=5, random_state=7).fit(X, y)
    c = small_classifier(dropout=0.2, max_epochs=5, random_state=8).fit(X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_):
        assert np.array_equal(Wa, Wb)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize("batch_size", [1, 17, 10_000])
def test_batch_sizes_from_stochastic_to_full_batch(batch_size):
    X, y = _fixed_problem()
    clf = small_classifier(batch_size=batch_size, learning_rate=0.01 if batch_size > 1 else 0.001, max_epochs=10, random_state=0).fit(X, y)
    assert clf.t_ == 10 * -(-256 // min(batch_size, 256))
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_float64_and_float32():
    X, y = _fixed_problem()
    c32 = small_classifier(dtype="float32", max_epochs=5, random_state=0).fit(X, y)
    c64 = small_classifier(dtype="float64", max_epochs=5, random_state=0).fit(X, y)
    assert c32.coefs_[0].dtype == np.float32 and c64.coefs_[0].dtype == np.float64
    np.testing.assert_allclose(c32.loss_curve_, c64.loss_curve_, rtol=1e-3)


def test_partial_fit_continues_training():
    X, y = _fixed_problem()
    clf = small_classifier(random_state=0)
    for _ in range(5):
        clf.partial_fit(X, y, classes=[0, 1])
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_divergence_is_reported():
    from model import DivergenceError

    X, y = _fixed_problem()
    with pytest.raises(DivergenceError, match="diverged"):
        small_regressor(optimizer="sgd", learning_rate=1e6, max_epochs=50, random_state=0).fit(X * 1e3, y)


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y), "NaN"),
        (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y), "infinity"),
        (lambda X, y: (X[:0], y[:0]), "0 sample"),
        (lambda X, y: (X, np.linspace(0, 1, len(y))), "Unknown label type"),
        (lambda X, y: (X, np.ones(len(y))), "class"),
    ],
    ids=["nan", "inf", "empty", "regression-target", "one-class"],
)
def test_bad_input_raises_clear_errors(make_input, message):
    X, y = _fixed_problem()
    Xb, yb = make_input(X, y)
    with pytest.raises(ValueError, match=message):
        small_classifier(max_epochs=2).fit(Xb, yb)


def test_wrong_number_of_features_at_predict():
    X, y = _fixed_problem()
    clf = small_classifier(max_epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 9 features, but MLPClassifier is expecting 10"):
        clf.predict(X[:, :9])


@pytest.mark.parametrize("param, value, message", [
    ("activation", "swish", "unknown activation 'swish'"),
    ("optimizer", "lbfgs", "unknown optimizer 'lbfgs'"),
    ("lr_schedule", "warmup", "unknown lr_schedule 'warmup'"),
    ("dropout", 1.0, "dropout must be"),
    ("hidden_layer_sizes", (0,), "hidden_layer_sizes"),
    ("dtype", "float16", "dtype must be"),
])
def test_bad_hyperparameters_raise_clear_errors(param, value, message):
    X, y = _fixed_problem()
    with pytest.raises(ValueError, match=message):
        small_classifier(max_epochs=2, **{param: value}).fit(X, y)
