"""What a user of MLPClassifier/MLPRegressor relies on beyond learning well: the defaults, which
hyperparameters are refused and with what message, partial_fit's classes, validation data, the
held-out split of early stopping, the exact stopping epochs, the ConvergenceWarning, target
scaling, scikit-learn's tags, and save/load keeping every fitted attribute.

Issue 16: each test here kills mutants of model/estimators.py that the other model tests let
survive (bench/mutation_survivors.md lists them, and the survivors left as equivalent). The data
are small and the networks tiny, so that the whole file takes a few seconds.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.utils import get_tags

import model
from model import MLPClassifier, MLPRegressor
from tests.helpers import small_classifier, small_regressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: A tiny network trained for a few epochs: these tests check bookkeeping, not accuracy.
TINY = {"hidden_layer_sizes": (4,), "max_epochs": 3, "random_state": 0}


def _data(n: int = 60, n_classes: int = 2, n_features: int = 4, seed: int = 0):
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=3, n_redundant=0,
                               n_classes=n_classes, random_state=seed)
    return X, y


def _regression(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=n)


# ------------------------------------------------------------------------------ hyperparameters


def test_default_hyperparameters():
    """The untuned baseline of the README and the benchmarks is these values (the recipe chosen on
    development data, docs/benchmarks.md): changing one must be a decision, not an accident."""
    expected = {
        "hidden_layer_sizes": (256, 256), "activation": "relu", "optimizer": "adamw",
        "learning_rate": 1e-3, "lr_schedule": "cosine", "batch_size": 256, "max_epochs": 256,
        "tol": 1e-4, "n_iter_no_change": 256, "l2": 0.3, "dropout": 0.3, "early_stopping": False,
        "validation_fraction": 0.1, "patience": 10, "random_state": None, "dtype": "float32",
        "early_stopping_metric": "score", "label_smoothing": 0.0, "robust_scaling": True,
    }
    expected["epoch_rows"] = None  # one pass an epoch
    assert MLPClassifier().get_params() == expected
    assert MLPRegressor().get_params() == expected


@pytest.mark.parametrize("param, value", [
    ("learning_rate", 0.0), ("learning_rate", np.inf), ("learning_rate", "0.1"),
    ("batch_size", 0), ("batch_size", True), ("max_epochs", 0), ("n_iter_no_change", 0),
    ("patience", 0), ("tol", -1e-3), ("l2", -1.0), ("dropout", -0.1),
    ("validation_fraction", 0.0), ("validation_fraction", 1.0),
    ("max_epochs", 2.5), ("patience", 1.5), ("batch_size", 32.0), ("n_iter_no_change", 2.0),
    ("epoch_rows", 0), ("epoch_rows", 2.5), ("epoch_rows", True),
], ids=str)
def test_an_out_of_range_hyperparameter_is_refused_by_name(param, value):
    """The error names the parameter, its type and interval, and the value; bools and strings
    are not numbers, and an integer parameter takes integers only."""
    X, y = _data(n=20)
    with pytest.raises(ValueError, match=rf"^{param} must be (an integer|a real number) in [\[(].*; got {value!r}$"):
        MLPClassifier(**{param: value}).fit(X, y)


@pytest.mark.parametrize("param, value, message", [
    ("batch_size", 0, "batch_size must be an integer in [1, inf); got 0"),
    ("dropout", 1.0, "dropout must be a real number in [0, 1); got 1.0"),
    ("learning_rate", 0.0, "learning_rate must be a real number in (0, inf); got 0.0"),
    ("validation_fraction", 1.0, "validation_fraction must be a real number in (0, 1); got 1.0"),
])
def test_the_refusal_states_the_interval_with_its_ends(param, value, message):
    """An included end is written with a bracket and an excluded one with a parenthesis."""
    X, y = _data(n=20)
    with pytest.raises(ValueError) as info:
        MLPClassifier(**{param: value}).fit(X, y)
    assert str(info.value) == message


def test_an_unknown_early_stopping_metric_is_refused_with_the_choices():
    X, y = _data(n=20)
    with pytest.raises(ValueError, match=r"early_stopping_metric must be one of \['loss', 'score'\], got 'auc'"):
        MLPClassifier(early_stopping_metric="auc").fit(X, y)


@pytest.mark.parametrize("params", [
    {"hidden_layer_sizes": 3}, {"hidden_layer_sizes": (1,)}, {"n_iter_no_change": 1}, {"patience": 1},
    {"tol": 0.0}, {"learning_rate": 1e-9}, {"validation_fraction": 0.5, "early_stopping": True},
], ids=str)
def test_values_at_the_edge_of_the_ranges_are_accepted(params):
    X, y = _data(n=20)
    clf = small_classifier(**{**TINY, "max_epochs": 1, **params}).fit(X, y)
    sizes = params.get("hidden_layer_sizes", TINY["hidden_layer_sizes"])
    assert [W.shape[1] for W in clf.coefs_] == [*np.atleast_1d(sizes).tolist(), 1]


def test_a_random_state_instance_gives_reproducible_fits():
    """A ``RandomState`` seeds the run like an int does: two fits from equal states are equal."""
    X, y = _data()
    a = small_classifier(**{**TINY, "random_state": np.random.RandomState(3)}).fit(X, y)
    b = small_classifier(**{**TINY, "random_state": np.random.RandomState(3)}).fit(X, y)
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(Wa, Wb)


def test_sklearn_tags():
    """What scikit-learn's checks and meta-estimators read: fits are deterministic given
    random_state, the classifier takes multi-label y, the regressor multi-output y."""
    assert get_tags(MLPClassifier()).non_deterministic is False
    assert get_tags(MLPRegressor()).non_deterministic is False
    assert get_tags(MLPClassifier()).classifier_tags.multi_label is True
    assert get_tags(MLPRegressor()).target_tags.multi_output is True


# ------------------------------------------------------------------------------ targets and input


def test_a_column_vector_y_is_raveled_with_a_warning():
    X, y = _data()
    with pytest.warns(DataConversionWarning):
        column = small_classifier(**TINY).fit(X, y.reshape(-1, 1))
    flat = small_classifier(**TINY).fit(X, y)
    np.testing.assert_array_equal(column.predict_proba(X), flat.predict_proba(X))


def test_partial_fit_keeps_the_classes_given_on_the_first_call():
    """A first batch without some class still gives a model of every class; later batches may
    hold any subset; a label outside ``classes`` is named."""
    X, y = _data(n_classes=3)
    clf = small_classifier(**TINY)
    with pytest.raises(ValueError, match="^classes must be passed on the first call to partial_fit$"):
        clf.partial_fit(X, y)
    first = y < 2
    clf.partial_fit(X[first], y[first], classes=[0, 1, 2])
    assert list(clf.classes_) == [0, 1, 2] and clf.predict_proba(X).shape == (60, 3)
    clf.partial_fit(X[first], y[first])
    assert list(clf.classes_) == [0, 1, 2] and clf.n_iter_ == 2
    with pytest.raises(ValueError, match=r"y contains labels not seen in classes: \[5\]"):
        clf.partial_fit(X, np.where(y == 2, 5, y))


def test_partial_fit_refuses_labels_outside_classes_on_later_calls_before_training():
    """After the first call, partial_fit checks only that the labels are among ``classes_``: a
    label outside them, of the same type or another, is refused in one line naming it, before
    any training; ``classes`` that are not class labels are refused on the first call."""
    X, y = _data(n_classes=3)
    names = np.array(["cat", "dog", "eel"])
    clf = MLPClassifier(**TINY).partial_fit(X, names[y], classes=list(names))
    weights = [W.copy() for W in clf.coefs_]
    with pytest.raises(ValueError, match=r"^y contains labels not seen in classes: \['fox'\]$"):
        clf.partial_fit(X, np.where(y == 2, "fox", names[y]))
    with pytest.raises(ValueError, match=r"^y contains labels not seen in classes: \[0, 1, 2\]$"):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and all(np.array_equal(W, V) for W, V in zip(weights, clf.coefs_))
    clf.partial_fit(X[y < 2], names[y[y < 2]])  # any subset of the classes
    assert clf.n_iter_ == 2
    with pytest.raises(ValueError, match="^Unknown label type: continuous"):
        MLPClassifier(**TINY).partial_fit(X, y + 0.5, classes=[0.5, 1.5, 2.5])


def test_partial_fit_learns_one_sample_at_a_time():
    X, y = _data()
    clf = small_classifier(**TINY)
    for i in range(3):
        clf.partial_fit(X[i : i + 1], y[i : i + 1], classes=[0, 1])
    assert clf.n_iter_ == 3 and clf.t_ == 3


def test_partial_fit_refuses_other_features_or_outputs():
    X, y = _data()
    clf = small_classifier(**TINY).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.partial_fit(X[:, :3], y)
    Y = np.column_stack([y, 1 - y, y])
    multilabel = small_classifier(**TINY).partial_fit(X, Y)  # an indicator matrix needs no classes
    assert list(multilabel.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="y has 2 outputs but the model was fitted with 3"):
        multilabel.partial_fit(X, Y[:, :2])


def test_multilabel_predictions_are_integer_indicators_and_survive_saving(tmp_path):
    X, y = _data()
    Y = np.column_stack([y, 1 - y, X[:, 0] > 0]).astype(int)
    clf = small_classifier(**TINY).fit(X, Y)
    assert list(clf.classes_) == [0, 1, 2]
    predicted = clf.predict(X)
    assert predicted.shape == (60, 3) and np.issubdtype(predicted.dtype, np.integer)
    loaded = model.load(model.save(clf, tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.predict(X), predicted)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_validation_data_errors_name_the_problem():
    X, y = _data()
    with pytest.raises(ValueError, match="^X_val was given without y_val$"):
        small_classifier(**TINY).fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        small_classifier(**TINY).fit(X, y, X_val=X[:, :3], y_val=y)


def test_validation_labels_need_not_hold_every_class():
    """y_val is scored against the classes of y; it does not redefine them."""
    X, y = _data(n_classes=3)
    some = y < 2
    clf = small_classifier(**TINY).fit(X, y, X_val=X[some], y_val=y[some])
    assert list(clf.classes_) == [0, 1, 2]
    assert clf.predict_proba(X).shape == (60, 3) and len(clf.validation_scores_) == 3


def test_validation_data_without_early_stopping_does_not_stop_training():
    X, y = _data()
    clf = small_classifier(**{**TINY, "max_epochs": 8}, patience=1, tol=0.0, n_iter_no_change=8)
    clf.fit(X, y, X_val=X, y_val=y)
    assert clf.n_iter_ == 8 and clf.stop_reason_ == "max_epochs" and len(clf.validation_scores_) == 8


def test_a_failed_fit_leaves_the_estimator_unfitted(tmp_path):
    X, y = _data()
    clf = small_classifier(**TINY)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X, np.zeros(len(y)))
    with pytest.raises(NotFittedError):
        clf.predict(X)
    with pytest.raises(NotFittedError):
        model.save(clf, tmp_path / "m.npz")


def test_the_binary_validation_accuracy_is_the_accuracy_of_predict():
    """Logged from the logits (z > 0), it equals predict's accuracy even for an untrained model
    whose logits are all near 0 (float64, so that no rounding can flip a sample)."""
    X, y = _data(n=200)
    seen = []
    clf = small_classifier(**{**TINY, "max_epochs": 1}, learning_rate=1e-6, dtype="float64")
    clf.fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:], callbacks=[lambda epoch, logs: seen.append(logs)])
    assert seen[0]["val_accuracy"] == np.mean(clf.predict(X[100:]) == y[100:])


def test_predict_log_proba_is_the_log_of_predict_proba_and_minus_infinity_quietly():
    """Far from the data a probability can be exactly 0: its log is -inf, without a warning."""
    X, y = _data()
    clf = small_classifier(**TINY).fit(X, y)
    far = np.vstack([X[:5], 1e6 * X[:5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        log_proba = clf.predict_log_proba(far)
    proba = clf.predict_proba(far)
    assert (proba == 0).any()
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(log_proba, np.log(proba))


def test_regressor_partial_fit_trains_one_epoch_per_call():
    X, y = _regression()
    reg = small_regressor(**TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # one epoch is all partial_fit promises
        for _ in range(2):
            reg.partial_fit(X, np.column_stack([y, -y]))
    assert reg.n_iter_ == 2 and len(reg.loss_curve_) == 2 and reg.predict(X).shape == (40, 2)


# ------------------------------------------------------------------------------ regressor targets


def test_regressor_targets_are_standardised_and_predictions_in_their_units():
    """The same data in other units trains the same network (the loss is in standard deviations
    of y) and predicts in those units; a single output predicts a 1-D array."""
    X, y = _regression()
    fits = {scale: small_regressor(**TINY, dtype="float64").fit(X, scale * y + 5.0) for scale in (1.0, 1e3, 1e-3)}
    base = fits[1.0]
    assert base.predict(X).shape == (40,)
    for scale, reg in fits.items():
        np.testing.assert_allclose(reg.loss_curve_, base.loss_curve_, rtol=1e-9)
        np.testing.assert_allclose(reg.predict(X), scale * (base.predict(X) - 5.0) + 5.0, rtol=1e-9)


def test_a_constant_target_is_predicted():
    X, _ = _regression()
    reg = small_regressor(**{**TINY, "max_epochs": 100}, learning_rate=0.01).fit(X, np.full(40, 7.0))
    assert np.all(np.isfinite(reg.loss_curve_))
    np.testing.assert_allclose(reg.predict(X), 7.0, atol=0.5)


# ------------------------------------------------------------------------------ stopping


def test_convergence_stops_exactly_n_iter_no_change_epochs_after_the_last_improvement():
    """With a tol no epoch can beat, epoch 1 (better than nothing) is the last improvement."""
    X, y = _data()
    clf = small_classifier(**{**TINY, "max_epochs": 20}, tol=1e6, n_iter_no_change=3).fit(X, y)
    assert clf.stop_reason_ == "converged" and clf.n_iter_ == 4
    assert clf.best_loss_ == min(clf.loss_curve_)


@pytest.mark.parametrize("metric, best", [("score", np.argmax), ("loss", np.argmin)])
def test_early_stopping_waits_patience_epochs_after_the_best_by_its_metric(metric, best):
    X, y = _data(n=120)
    clf = small_classifier(**{**TINY, "max_epochs": 60}, learning_rate=0.05, early_stopping=True, patience=2,
                        tol=0.0, early_stopping_metric=metric)
    clf.fit(X[:80], y[:80], X_val=X[80:], y_val=y[80:])
    assert clf.stop_reason_ == "early_stopping"
    assert clf.best_epoch_ == best(clf.validation_scores_) + 1
    assert clf.n_iter_ == clf.best_epoch_ + 2


@pytest.mark.parametrize("n_iter_no_change, halved_after", [(3, [2, 3]), (4, [3])])
def test_plateau_schedule_halves_the_rate_after_half_of_n_iter_no_change(n_iter_no_change, halved_after):
    """lr_schedule="plateau" waits n_iter_no_change // 2 epochs without an improvement by more
    than tol, halves the rate, and waits again; the run stops at n_iter_no_change."""
    X, y = _data()
    rates = []
    small_classifier(**{**TINY, "max_epochs": 20}, lr_schedule="plateau", learning_rate=0.01, tol=1e6,
                  n_iter_no_change=n_iter_no_change).fit(X, y, callbacks=[lambda e, logs: rates.append(logs["lr"])])
    expected, lr = [], 0.01
    for epoch in range(1, n_iter_no_change + 2):
        expected.append(lr)
        if epoch in halved_after:
            lr /= 2
    assert rates == expected


def test_the_convergence_warning_is_for_a_fit_that_ran_out_of_epochs_and_points_at_the_caller():
    X, y = _data()
    with pytest.warns(ConvergenceWarning, match=r"^MLPClassifier: reached max_epochs=2 before the loss converged$") as record:
        small_classifier(**{**TINY, "max_epochs": 2}).fit(X, y)
    # It points at the caller (this file), not into model/: warning filters by module work.
    # (Not "== __file__": under mutmut a trampoline frame sits between the test and fit.)
    (warned,) = [w for w in record if w.category is ConvergenceWarning]
    import model

    assert not Path(warned.filename).resolve().is_relative_to(Path(model.__file__).resolve().parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        small_classifier(**{**TINY, "max_epochs": 20}, tol=1e6, n_iter_no_change=1).fit(X, y)  # converged
        small_classifier(**TINY).partial_fit(X, y, classes=[0, 1])  # one epoch is all it promises
    assert [w for w in caught if issubclass(w.category, UserWarning)] == []


# ------------------------------------------------------------------------------ the held-out split


@pytest.fixture
def held_out(monkeypatch):
    """The validation rows that early stopping held out, per fit: (X_val, y_val) pairs."""
    seen = []
    for cls in (MLPClassifier, MLPRegressor):
        original = cls._validation_evaluator

        def recording(self, X_val, y_val, original=original):
            seen.append((X_val.copy(), np.asarray(y_val).copy()))
            return original(self, X_val, y_val)

        monkeypatch.setattr(cls, "_validation_evaluator", recording)
    return seen


def test_early_stopping_holds_out_a_stratified_reproducible_fraction(held_out):
    """Each class in proportion, for every seed (a random draw is rarely exact even once); the
    same rows again for the same random_state."""
    X, _ = _data(n=200)
    y = np.repeat([0, 1, 2, 3], [80, 60, 40, 20])
    for seed in (0, 1, 2, 0):
        small_classifier(**{**TINY, "max_epochs": 1, "random_state": seed}, early_stopping=True,
                      validation_fraction=0.25).fit(X, y)
    assert [np.bincount(y_val).tolist() for _, y_val in held_out] == [[20, 15, 10, 5]] * 4
    np.testing.assert_array_equal(held_out[0][0], held_out[3][0])
    assert not np.array_equal(held_out[0][0], held_out[1][0])


def test_early_stopping_holds_out_a_random_fraction_when_it_cannot_stratify(held_out):
    """A class of one sample cannot be split in proportion: the rows are then drawn at random."""
    X, _ = _data(n=40)
    y = np.array([0, 1] * 19 + [2, 0])
    for _ in range(2):
        small_classifier(**{**TINY, "max_epochs": 1}, early_stopping=True, validation_fraction=0.2).fit(X, y)
    (X_a, y_a), (X_b, _) = held_out
    assert len(y_a) == 8
    np.testing.assert_array_equal(X_a, X_b)


@pytest.mark.filterwarnings("ignore:R\\^2 score is not well-defined")  # one validation sample
def test_early_stopping_holds_out_at_least_one_sample_and_keeps_one(held_out):
    X, y = _regression(n=10)
    small_regressor(**{**TINY, "max_epochs": 1}, early_stopping=True, validation_fraction=0.1).fit(X, y)
    assert len(held_out[-1][1]) == 1
    small_regressor(**{**TINY, "max_epochs": 1}, early_stopping=True, validation_fraction=0.1).fit(X[:2], y[:2])
    assert len(held_out[-1][1]) == 1
    with pytest.raises(ValueError, match=r"early_stopping needs at least 2 samples; got 1 with validation_fraction=0.1"):
        MLPRegressor(early_stopping=True).fit(X[:1], y[:1])


# ------------------------------------------------------------------------------ save and load


def test_save_and_load_keep_every_fitted_attribute(tmp_path):
    """Feature names, the training record (loss curve, validation scores, best epoch), the dtype,
    dropout; a random_state that is not an int is saved as None; training continues the record."""
    X, y = _data(n=80)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = MLPClassifier(hidden_layer_sizes=(5,), dtype="float64", dropout=0.25, early_stopping=True, patience=2,
                        max_epochs=6, random_state=np.random.RandomState(0)).fit(frame, y)
    loaded = model.load(model.save(clf, tmp_path / "m.npz"))
    assert loaded.get_params() == {**clf.get_params(), "random_state": None}
    assert loaded.coefs_[0].dtype == np.float64
    assert loaded.feature_names_in_.dtype == object and list(loaded.feature_names_in_) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(frame.rename(columns={"a": "z"}))
    assert loaded.validation_scores_ == clf.validation_scores_ != []
    assert (loaded.best_epoch_, loaded.n_iter_) == (clf.best_epoch_, clf.n_iter_)
    assert [layer.dropout for layer in loaded._network.layers] == [layer.dropout for layer in clf._network.layers]
    loaded.partial_fit(frame, y)
    assert loaded.loss_curve_[:-1] == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_ + 1
    assert loaded.validation_scores_ == clf.validation_scores_


@pytest.mark.parametrize("labels", [np.array(["no", "yes"], dtype=object), np.array([3, 7], dtype=np.int32),
                                    np.array([1, 2], dtype=np.uint8)], ids=lambda a: str(a.dtype))
def test_save_and_load_keep_the_labels_dtype(tmp_path, labels):
    X, y = _data()
    clf = small_classifier(**TINY).fit(X, labels[y])
    assert clf.classes_.dtype == labels.dtype
    loaded = model.load(model.save(clf, tmp_path / "m.npz"))
    assert loaded.coefs_[0].dtype == np.float32  # the dtype of the weights too (TINY: the default)
    assert loaded.classes_.dtype == labels.dtype and loaded.predict(X).dtype == labels.dtype
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


def test_labels_that_cannot_be_saved_are_refused_by_name(tmp_path):
    """datetime64 labels fit, but the file holds labels as JSON: saving says which labels it
    takes (it failed with json's "Object of type date is not JSON serializable")."""
    X, y = _data()
    days = np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[D]")
    clf = small_classifier(**TINY).fit(X, days[y])
    with pytest.raises(TypeError, match="^only str, int, float or bool class labels can be saved$"):
        model.save(clf, tmp_path / "m.npz")


@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_every_parameter_is_documented_in_numpydoc(cls):
    """Each constructor parameter has an entry ``name : type, default=…`` in the class's
    ``Parameters`` section, in the constructor's order, with the default the constructor has."""
    import ast
    import inspect
    import re

    doc = inspect.getdoc(cls)
    section = doc.split("Parameters\n----------\n", 1)[1]
    entries = re.findall(r"^(\w+) : .*?default=(.+)$", section.replace("\\\n", ""), re.M)
    signature = inspect.signature(cls.__init__).parameters
    assert [name for name, _ in entries] == [p for p in signature if p != "self"]
    for name, default in entries:
        assert ast.literal_eval(default) == signature[name].default, name
