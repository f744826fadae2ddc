"""TabularPreprocessor: encoding, imputation fitted on train only, errors naming columns, JSON round trip."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from model.preprocessing import TabularPreprocessor


def mixed_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "size": rng.normal(10.0, 3.0, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "count": rng.integers(0, 5, n),
        "flag": rng.random(n) > 0.5,
        "grade": pd.Categorical(rng.choice(["a", "b"], n)),
        "constant": np.full(n, 7.0),
    })
    frame.loc[[1, 5], "size"] = np.nan
    frame.loc[[2, 6, 9], "colour"] = None
    return frame


def test_encodes_numeric_and_categorical_columns():
    frame = mixed_frame()
    pre = TabularPreprocessor().fit(frame)
    Xt = pre.transform(frame)
    names = list(pre.get_feature_names_out())
    assert names == ["size", "colour_blue", "colour_green", "colour_red", "count",
                     "flag_False", "flag_True", "grade_a", "grade_b", "constant"]
    assert Xt.dtype == np.float64 and Xt.shape == (40, len(names))
    assert np.isfinite(Xt).all()
    for col in ("size", "count"):
        values = Xt[:, names.index(col)]
        assert values.mean() == pytest.approx(0.0, abs=1e-12) and values.std() == pytest.approx(1.0)
    np.testing.assert_array_equal(Xt[:, names.index("constant")], 0.0)  # std 0 -> divided by 1
    one_hot = Xt[:, 1:4]
    assert set(one_hot.sum(axis=1)) == {1.0}
    assert pre.numeric_columns_ == ["size", "count", "constant"]
    assert pre.categories_["colour"] == ["blue", "green", "red"]


def test_columns_in_any_order_and_extra_columns_ignored():
    frame = mixed_frame()
    pre = TabularPreprocessor().fit(frame)
    shuffled = frame[frame.columns[::-1]].assign(extra=1.0)
    np.testing.assert_array_equal(pre.transform(shuffled), pre.transform(frame))


def test_imputation_fitted_on_train_only():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "c": ["u", "u", "v", None]})
    test = pd.DataFrame({"x": [np.nan, 1000.0], "c": [None, "v"]})
    pre = TabularPreprocessor().fit(train)
    state = {c["name"]: c for c in pre.to_dict()["columns"]}
    assert state["x"]["median"] == 2.0 and state["c"]["most_frequent"] == "u"
    Xt = pre.transform(test)
    filled = pre.transform(pd.DataFrame({"x": [2.0], "c": ["u"]}))
    np.testing.assert_array_equal(Xt[0], filled[0])  # NaN -> train median, None -> train mode
    assert Xt[1, 0] > 100  # the test outlier did not move the train statistics


def test_missing_error_policy_names_columns():
    frame = mixed_frame()
    with pytest.raises(ValueError, match=r"missing values in column\(s\) 'size', 'colour'"):
        TabularPreprocessor(missing="error").fit(frame)
    clean = frame.dropna()
    pre = TabularPreprocessor(missing="error").fit(clean)
    with pytest.raises(ValueError, match="'size'"):
        pre.transform(frame)
    with pytest.raises(ValueError, match="missing must be one of impute, error"):
        TabularPreprocessor(missing="drop").fit(clean)


def test_unknown_category_encodes_as_zeros():
    pre = TabularPreprocessor().fit(pd.DataFrame({"c": ["a", "b", "a"]}))
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"c": ["zzz", "b"]})), [[0.0, 0.0], [0.0, 1.0]])


def test_missing_and_mistyped_columns_are_named():
    pre = TabularPreprocessor().fit(mixed_frame())
    with pytest.raises(ValueError, match=r"missing column\(s\): 'colour', 'grade'"):
        pre.transform(mixed_frame().drop(columns=["colour", "grade"]))
    bad = mixed_frame().astype({"size": object})
    bad.loc[3, "size"] = "ten"
    with pytest.raises(ValueError, match="column 'size' should be numeric but holds 'ten'"):
        pre.transform(bad)
    as_text = mixed_frame().astype({"count": str})  # numbers written as text still convert
    np.testing.assert_array_equal(pre.transform(as_text), pre.transform(mixed_frame()))


def test_arrow_string_columns():
    frame = pd.DataFrame({"s": pd.array(["x", "y", None, "x"], dtype="string[pyarrow]"), "n": [1.0, 2.0, 3.0, 4.0]})
    Xt = TabularPreprocessor().fit_transform(frame)
    np.testing.assert_array_equal(Xt[:, :2], [[1, 0], [0, 1], [1, 0], [1, 0]])


def test_ndarray_input():
    X = np.arange(12.0).reshape(4, 3)
    pre = TabularPreprocessor().fit(X)
    assert list(pre.get_feature_names_out()) == ["x0", "x1", "x2"]
    assert pre.transform(X).shape == (4, 3)
    with pytest.raises(ValueError, match="expected 3 columns"):
        pre.transform(X[:, :2])
    framed = TabularPreprocessor().fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    np.testing.assert_array_equal(framed.transform(X), pre.transform(X))  # arrays use the fitted order


def test_to_dict_from_dict_round_trip_is_bit_identical():
    train, other = mixed_frame(seed=0), mixed_frame(n=25, seed=1)
    pre = TabularPreprocessor().fit(train)
    text = json.dumps(pre.to_dict(), allow_nan=False)
    rebuilt = TabularPreprocessor.from_dict(json.loads(text))
    for frame in (train, other):
        a, b = pre.transform(frame), rebuilt.transform(frame)
        assert a.tobytes() == b.tobytes()
    assert list(rebuilt.get_feature_names_out()) == list(pre.get_feature_names_out())
    assert rebuilt.to_dict() == pre.to_dict()


def test_round_trip_with_all_missing_column_has_no_nan():
    frame = pd.DataFrame({"x": [np.nan, np.nan, np.nan], "y": [1.0, 2.0, 3.0]})
    pre = TabularPreprocessor().fit(frame)
    json.dumps(pre.to_dict(), allow_nan=False)
    np.testing.assert_array_equal(pre.transform(frame)[:, 0], 0.0)


def test_from_dict_rejects_foreign_documents():
    with pytest.raises(ValueError, match="not a tabular-preprocessor document"):
        TabularPreprocessor.from_dict({"format": "other"})


def test_sklearn_compatible():
    pre = TabularPreprocessor(missing="error")
    assert clone(pre).get_params() == {"missing": "error"}
    fitted = TabularPreprocessor().fit(mixed_frame())
    assert list(fitted.feature_names_in_) == list(mixed_frame().columns)
