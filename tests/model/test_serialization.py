"""Saving without pickle: round trips are bit-identical, bad files get clear errors."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

import model
from model import MLPClassifier
from model.serialization import ModelFileError
from tests.helpers import small_classifier, small_regressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fitted_classifier(labels):
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=len(labels), random_state=0)
    return small_classifier(hidden_layer_sizes=(8, 5), max_epochs=5, random_state=0).fit(X, np.asarray(labels)[y]), X


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
    reg = small_regressor(max_epochs=5, random_state=0, dtype="float64").fit(X, y)
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
    pipe = Pipeline([("preprocess", pre), ("mlp", small_classifier(max_epochs=3, random_state=0).fit(pre.transform(frame), y))])
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


# Issue 16: the tests below kill mutants of model/serialization.py that the ones above let survive
# (bench/mutation_survivors.md).


def _arrays_and_header(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, json.loads(str(arrays.pop("__meta__")))


def _write(path, meta, arrays):
    """An .npz with ``meta`` (an array, or a dict written as JSON) as its header and ``arrays``."""
    if isinstance(meta, dict):
        meta = np.array(json.dumps(meta))
    with open(path, "wb") as fh:
        np.savez(fh, __meta__=meta, **arrays)


def test_weights_changed_with_their_checksum_are_refused_by_the_header_checksum(tmp_path):
    """The header's checksum covers the arrays' checksums: an edit of a weight that also rewrites
    its checksum (but not the header's) is caught."""
    import hashlib

    clf, X = _fitted_classifier([0, 1])
    path = model.save(clf, tmp_path / "m.npz")
    arrays, header = _arrays_and_header(path)
    arrays["coef_0"] = arrays["coef_0"] * 2
    header["sha256"]["coef_0"] = hashlib.sha256(np.ascontiguousarray(arrays["coef_0"]).tobytes()).hexdigest()
    _write(path, header, arrays)
    with pytest.raises(ModelFileError, match="header was changed after saving"):
        model.load(path)


def test_the_header_checksum_is_of_its_content_not_its_layout(tmp_path):
    """The same header written with its keys in another order and indented still loads."""
    clf, X = _fitted_classifier(["a", "b", "c"])
    path = model.save(clf, tmp_path / "m.npz", metadata={"trial": 3, "study": "s"})
    arrays, header = _arrays_and_header(path)

    def reordered(value):
        if isinstance(value, dict):
            return {k: reordered(value[k]) for k in reversed(list(value))}
        return [reordered(v) for v in value] if isinstance(value, list) else value

    _write(path, np.array(json.dumps(reordered(header), indent=2)), arrays)
    np.testing.assert_array_equal(model.load(path).predict_proba(X), clf.predict_proba(X))


def _without_sha256(header):
    del header["sha256"]


def _without_header_digest(header):
    from model.serialization import HEADER_DIGEST

    del header["sha256"][HEADER_DIGEST]


def _other_format(header):
    header["format"] = "someone-elses-model"


def _version_3(header):
    header["version"] = 3


@pytest.mark.parametrize("change, message", [
    (_without_sha256, "header was changed after saving"),
    (_without_header_digest, "header was changed after saving"),
    (_other_format, r"not a model saved by model.save$"),
    (_version_3, "unsupported model format version 3$"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_header_changed_in_its_structure_gets_a_model_file_error(tmp_path, change, message):
    clf, _ = _fitted_classifier([0, 1])
    path = model.save(clf, tmp_path / "m.npz")
    _rewrite_header(path, change)
    with pytest.raises(ModelFileError, match=message):
        model.load(path)


@pytest.mark.parametrize("meta, message", [
    (np.array(["{}"]), r"not a model saved by model.save \(no header\)"),  # 1-D, not 0-d
    (np.array(5), r"not a model saved by model.save \(no header\)"),  # not text
    (np.array("{not json"), "corrupted model header"),
], ids=["one-dimensional", "a-number", "not-json"])
def test_a_file_without_a_readable_header_gets_a_model_file_error(tmp_path, meta, message):
    path = tmp_path / "m.npz"
    _write(path, meta, {"coef_0": np.ones(2)})
    with pytest.raises(ModelFileError, match=message):
        model.load(path)


def test_an_array_added_to_the_file_is_refused(tmp_path):
    clf, _ = _fitted_classifier([0, 1])
    path = model.save(clf, tmp_path / "m.npz")
    arrays, header = _arrays_and_header(path)
    _write(path, header, {**arrays, "extra": np.zeros(3)})
    with pytest.raises(ModelFileError, match="the arrays in the file do not match its header"):
        model.load(path)


def test_a_consistent_file_describing_an_unknown_model_is_malformed(tmp_path):
    """A version 1 file (no header checksum) naming a class that load does not know."""
    from model.serialization import HEADER_DIGEST

    clf, _ = _fitted_classifier([0, 1])
    path = model.save(clf, tmp_path / "m.npz")

    def unknown_class(header):
        header["version"] = 1
        del header["sha256"][HEADER_DIGEST]
        header["estimator"]["class"] = "GradientBoosting"

    _rewrite_header(path, unknown_class)
    with pytest.raises(ModelFileError, match=r"malformed model file \(KeyError\('GradientBoosting'\)\)"):
        model.load(path)


def test_save_creates_the_folders_and_keeps_the_metadata(tmp_path):
    from model.serialization import read_header

    clf, X = _fitted_classifier([0, 1])
    path = model.save(clf, tmp_path / "a" / "b" / "m.npz", metadata={"trial": 3})
    assert path == tmp_path / "a" / "b" / "m.npz"
    assert read_header(path)["metadata"] == {"trial": 3}
    assert read_header(model.save(clf, tmp_path / "plain.npz"))["metadata"] == {}
    np.testing.assert_array_equal(model.load(path).predict(X), clf.predict(X))


def test_a_pipeline_keeps_its_step_names_and_other_objects_are_refused_by_name(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from model.preprocessing import TabularPreprocessor
    from model.serialization import read_header

    clf, X = _fitted_classifier([0, 1])
    pre = TabularPreprocessor().fit(X)
    pipe = Pipeline([("prep", pre), ("net", small_classifier(max_epochs=2, random_state=0).fit(pre.transform(X), clf.predict(X)))])
    path = model.save(pipe, tmp_path / "p.npz")
    assert read_header(path)["pipeline"]["preprocessor"]["class"] == "TabularPreprocessor"
    loaded = model.load(path)
    assert list(loaded.named_steps) == ["prep", "net"]
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    three = Pipeline([("prep", pre), ("again", TabularPreprocessor()), ("net", pipe[-1])])
    with pytest.raises(TypeError, match=r"^only a Pipeline of \(TabularPreprocessor, estimator\) can be saved$"):
        model.save(three, tmp_path / "three.npz")
    with pytest.raises(TypeError, match=r"^cannot save a LogisticRegression \(saveable: MLPClassifier, MLPEnsemble, MLPRegressor\)$"):
        model.save(LogisticRegression().fit(X, clf.predict(X)), tmp_path / "lr.npz")


def test_the_header_checksum_follows_the_documented_rule(tmp_path):
    """SHA-256 of the header as JSON with sorted keys, its own checksum left out: a file saved by
    another version of this code, or checked by another tool, gets the same answer."""
    import hashlib

    from model.serialization import HEADER_DIGEST

    clf, _ = _fitted_classifier([0, 1])
    _, header = _arrays_and_header(model.save(clf, tmp_path / "m.npz", metadata={"run": "r1"}))
    stored = header["sha256"].pop(HEADER_DIGEST)
    assert stored == hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()


# --- hostile files: refused quickly and in bounded memory --------------------------------------

def _write_with_fresh_checksums(path, header, arrays):
    """What a deliberate editor can do: recompute every checksum after changing the file."""
    from model.serialization import HEADER_DIGEST, _digest, _header_digest

    header["sha256"] = {name: _digest(a) for name, a in arrays.items()}
    header["sha256"][HEADER_DIGEST] = _header_digest(header)
    _write(path, header, arrays)


def _refusal_and_peak_memory(path) -> tuple[str, int]:
    """The ModelFileError message of loading ``path`` and the most memory the load held."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as refused:
            model.load(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return str(refused.value), peak


def test_an_array_header_claiming_a_huge_shape_is_refused_before_allocating(tmp_path):
    import io
    import zipfile

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)})
    buffer.write(b"\0" * 64)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("coef_0.npy", buffer.getvalue())
    with pytest.raises(ModelFileError, match="declares shape"):
        model.load(path)


def test_layer_sizes_the_weights_do_not_have_are_refused_before_allocating(tmp_path):
    clf, _ = _fitted_classifier([0, 1])
    arrays, header = _arrays_and_header(model.save(clf, tmp_path / "clf.npz"))
    header["estimator"]["layer_sizes"] = [10**6, 10**6, 10**6, 2]
    path = tmp_path / "sizes.npz"
    _write_with_fresh_checksums(path, header, arrays)
    message, peak = _refusal_and_peak_memory(path)
    assert peak < 20 * 2**20 and "layer sizes" in message


def test_a_deeply_nested_header_is_refused_as_corrupted(tmp_path):
    deep = "[" * 200_000 + "]" * 200_000
    path = tmp_path / "deep.npz"
    np.savez(path, __meta__=np.array(deep))
    with pytest.raises(ModelFileError, match="nested too deeply"):
        model.load(path)


def test_a_zip_bomb_is_refused_without_expanding_it(tmp_path):
    import zipfile

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("coef_0.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (2**25,)})
            block = b"\0" * 2**20
            for _ in range(256):
                member.write(block)
    assert path.stat().st_size < 2**20
    message, peak = _refusal_and_peak_memory(path)
    assert peak < 20 * 2**20 and "compressed" in message
