"""Saving without pickle: round trips are bit-identical, bad files get clear errors."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import model
from model import MLPClassifier, MLPRegressor
from model.serialization import ModelFileError

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fitted_classifier(labels):
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=len(labels), random_state=0)
    return MLPClassifier(hidden_layer_sizes=(8, 5), max_epochs=5, random_state=0).fit(X, np.asarray(labels)[y]), X


@pytest.mark.parametrize("labels", [[0, 1], ["a", "b", "c"], [1.0, 2.0, 3.0], [True, False]], ids=str)
def test_classifier_round_trip_is_bit_identical(tmp_path, labels):
    clf, X = _fitted_classifier(labels)
    path = tmp_path / "clf.npz"
    clf.save(path)
    loaded = model.load(path)
    assert type(loaded) is MLPClassifier
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    assert list(loaded.classes_) == list(clf.classes_)
    assert loaded.get_params() == clf.get_params()
    assert loaded.loss_curve_ == clf.loss_curve_


def test_regressor_round_trip_and_pickle_free_loading(tmp_path):
    X, y = make_regression(n_samples=100, n_features=4, n_targets=2, random_state=0)
    reg = MLPRegressor(max_epochs=5, random_state=0, dtype="float64").fit(X, y)
    path = model.save(reg, tmp_path)  # a directory gets model.npz inside
    assert path.name == "model.npz"
    with np.load(path, allow_pickle=False) as data:  # nothing in the file needs pickle
        assert data["coef_0"].dtype == np.float64
        header = json.loads(str(data["__meta__"]))
    assert header["estimator"]["class"] == "MLPRegressor"
    assert np.array_equal(model.load(tmp_path).predict(X), reg.predict(X))


def test_loaded_model_continues_training(tmp_path):
    clf, X = _fitted_classifier([0, 1])
    clf.save(tmp_path / "m.npz")
    loaded = model.load(tmp_path / "m.npz")
    loaded.partial_fit(X, clf.predict(X))
    assert loaded.n_iter_ == clf.n_iter_ + 1


def test_tampered_weights_are_refused(tmp_path):
    clf, _ = _fitted_classifier([0, 1])
    path = tmp_path / "m.npz"
    clf.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["coef_0"] = arrays["coef_0"] + 1.0
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="coef_0.*changed after saving"):
        model.load(path)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04garbage"])
def test_corrupted_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="not a readable model file"):
        model.load(path)


def test_foreign_npz_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(ModelFileError, match="not a model saved by model.save"):
        model.load(path)
    with pytest.raises(ModelFileError, match="no such model file"):
        model.load(tmp_path / "missing.npz")


def test_truncated_file_is_refused(tmp_path):
    clf, _ = _fitted_classifier([0, 1])
    path = tmp_path / "m.npz"
    clf.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        model.load(path)


def test_pickled_object_array_is_never_loaded(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array([{"format": "mlp-tuner-model"}], dtype=object))
    with pytest.raises(ModelFileError):
        model.load(path)


def _rewrite_header(path, change):
    """The file at ``path`` with its JSON header changed by ``change(header)`` (arrays kept)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(str(arrays.pop("__meta__")))
    change(header)
    with open(path, "wb") as fh:
        np.savez(fh, __meta__=np.array(json.dumps(header)), **arrays)


def test_an_altered_header_is_refused_and_version_1_files_still_load(tmp_path):
    """Issue 12, case 9: reversed class labels or a shifted preprocessing mean in the header
    inverted or ruined every prediction and were accepted; the header is now checksummed too."""
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from model.preprocessing import TabularPreprocessor
    from model.serialization import HEADER_DIGEST

    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd"))
    pre = TabularPreprocessor().fit(frame)
    pipe = Pipeline([("preprocess", pre), ("mlp", MLPClassifier(max_epochs=3, random_state=0).fit(pre.transform(frame), y))])
    path = model.save(pipe, tmp_path / "m.npz")
    good = path.read_bytes()

    def reverse_labels(h):
        h["estimator"]["classes"]["values"].reverse()

    def shift_a_mean(h):
        h["pipeline"]["preprocessor"]["state"]["columns"][0]["mean"] += 1.0

    for change in (reverse_labels, shift_a_mean):
        path.write_bytes(good)
        _rewrite_header(path, change)
        with pytest.raises(ModelFileError, match="header was changed after saving"):
            model.load(path)
    # a version 1 file (checksums of the arrays only) still loads and predicts the same
    path.write_bytes(good)

    def as_version_1(h):
        h["version"] = 1
        del h["sha256"][HEADER_DIGEST]

    _rewrite_header(path, as_version_1)
    np.testing.assert_array_equal(model.load(path).predict_proba(frame), pipe.predict_proba(frame))
