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
    assert Xt.dtype == np.float32 and Xt.shape == (40, len(names))
    assert np.isfinite(Xt).all()
    for col in ("size", "count"):
        values = Xt[:, names.index(col)].astype(np.float64)
        assert values.mean() == pytest.approx(0.0, abs=1e-6) and values.std() == pytest.approx(1.0)
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
    pre = TabularPreprocessor(missing="error", dates=("d",))
    assert clone(pre).get_params() == {"missing": "error", "dates": ("d",), "dtype": "float32"}
    fitted = TabularPreprocessor().fit(mixed_frame())
    assert list(fitted.feature_names_in_) == list(mixed_frame().columns)


def test_date_columns_are_days_since_1970_and_round_trip():
    """ISO text (dates, times, offsets) or datetime values -> days since 1970-01-01 UTC,
    standardised; the state keeps the column a date, so a rebuilt preprocessor takes the text."""
    train = pd.DataFrame({
        "d": pd.array(["1970-01-02", "1970-01-04", None, "1970-01-02T12:00:00+00:00"], dtype="string"),
        "x": [1.0, 2.0, 3.0, 4.0],
    })
    pre = TabularPreprocessor(dates=("d",)).fit(train)
    state = pre.to_dict()["columns"][0]
    assert state == {"name": "d", "kind": "date", "median": 1.5, "mean": 1.75, "std": state["std"]}
    assert pre.date_columns_ == ["d"] and list(pre.get_feature_names_out()) == ["d", "x"]
    rebuilt = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert rebuilt.get_params() == pre.get_params()
    np.testing.assert_array_equal(rebuilt.transform(train), pre.transform(train))
    as_datetimes = train.assign(d=pd.to_datetime(["1970-01-02", "1970-01-04", None, "1970-01-02 12:00"], format="ISO8601"))
    np.testing.assert_allclose(pre.transform(as_datetimes), pre.transform(train))
    assert TabularPreprocessor().fit(as_datetimes).to_dict()["columns"][0]["kind"] == "date"  # by dtype
    with pytest.raises(ValueError, match=r"column 'd' should be a date \(ISO 8601, e.g. 2024-01-31\) but holds 'soon'"):
        pre.transform(train.assign(d=["soon", None, None, None]))
    with pytest.raises(ValueError, match=r"dates names column\(s\) not in the data: 'e'"):
        TabularPreprocessor(dates=("e",)).fit(train)


# Issue 16: the tests below kill mutants of model/preprocessing.py that the ones above let survive
# (bench/mutation_survivors.md).


def test_fitted_attributes_follow_scikit_learn():
    """Names are object arrays of str; feature_names_in_ only for a DataFrame, as in scikit-learn."""
    pre = TabularPreprocessor().fit(mixed_frame())
    assert pre.n_features_in_ == 6
    assert pre.categorical_columns_ == ["colour", "flag", "grade"]
    assert pre.feature_names_in_.dtype == object and pre.get_feature_names_out().dtype == object
    assert pre.input_was_frame_ is True and pre.to_dict()["input_was_frame"] is True
    from_array = TabularPreprocessor().fit(np.arange(6.0).reshape(3, 2))
    assert not hasattr(from_array, "feature_names_in_") and from_array.input_was_frame_ is False


def test_round_trip_of_a_preprocessor_fitted_on_an_array():
    X = np.arange(12.0).reshape(4, 3)
    pre = TabularPreprocessor().fit(X)
    rebuilt = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert rebuilt.to_dict() == pre.to_dict() and rebuilt.to_dict()["input_was_frame"] is False
    assert not hasattr(rebuilt, "feature_names_in_")
    np.testing.assert_array_equal(rebuilt.transform(X), pre.transform(X))


def test_no_columns_and_one_row():
    """A frame of no columns encodes as (rows, 0); a single row fits (std 0 -> divided by 1)."""
    empty = TabularPreprocessor().fit(pd.DataFrame(index=range(3)))
    Xt = empty.transform(pd.DataFrame(index=range(5)))
    assert Xt.shape == (5, 0) and Xt.dtype == np.float32
    one = TabularPreprocessor().fit(pd.DataFrame({"x": [4.0], "c": ["a"]}))
    np.testing.assert_array_equal(one.transform(pd.DataFrame({"x": [4.0, 6.0], "c": ["a", "b"]})), [[0.0, 1.0], [2.0, 0.0]])
    with pytest.raises(ValueError, match="^cannot fit on zero rows$"):
        TabularPreprocessor().fit(pd.DataFrame({"x": []}))


def test_user_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"column 'took' has unsupported dtype timedelta64\[\w+\] \(numeric, date or categorical\)"):
        TabularPreprocessor().fit(pd.DataFrame({"took": pd.to_timedelta(["1 day", "2 days"])}))
    with pytest.raises(ValueError, match=r"duplicate column name\(s\): '1'"):
        TabularPreprocessor().fit(pd.DataFrame([[1.0, 2.0]], columns=[1, "1"]))  # equal once made str
    with pytest.raises(ValueError, match=r"column 'x' holds infinite values"):
        TabularPreprocessor().fit(pd.DataFrame({"x": [1.0, np.inf]}))
    pre = TabularPreprocessor().fit(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"expected a 2-D array or a DataFrame \(got 1 dimension\(s\)\)"):
        pre.transform(np.ones(2))


def test_from_dict_names_what_it_cannot_read():
    state = TabularPreprocessor().fit(pd.DataFrame({"c": ["a", "b"]})).to_dict()
    with pytest.raises(ValueError, match=r"unsupported tabular-preprocessor version 2 \(this code reads 1\)"):
        TabularPreprocessor.from_dict({**state, "version": 2})
    state["columns"][0]["kind"] = "text"
    with pytest.raises(ValueError, match="column 'c' has unknown kind 'text'"):
        TabularPreprocessor.from_dict(state)


def test_pandas_nullable_columns_are_imputed():
    frame = pd.DataFrame({"i": pd.array([1, None, 3, 5], dtype="Int64"), "f": pd.array([0.5, 1.5, None, 2.5], dtype="Float64")})
    pre = TabularPreprocessor().fit(frame)
    state = {c["name"]: c for c in pre.to_dict()["columns"]}
    assert (state["i"]["median"], state["f"]["median"]) == (3.0, 1.5)
    plain = pd.DataFrame({"i": [1.0, 3.0, 3.0, 5.0], "f": [0.5, 1.5, 1.5, 2.5]})  # the same, filled
    np.testing.assert_array_equal(pre.transform(frame), TabularPreprocessor().fit(plain).transform(plain))


def test_categories_of_mixed_objects_and_imputation_by_the_most_frequent():
    """Values are compared as text; the most frequent fills a gap (ties: the first in order)."""
    pre = TabularPreprocessor().fit(pd.DataFrame({"c": ["b", 1.5, "b", None, "a"], "t": ["y", "x", "x", "y", None]}))
    assert pre.categories_ == {"c": ["1.5", "a", "b"], "t": ["x", "y"]}
    assert {c["name"]: c["most_frequent"] for c in pre.to_dict()["columns"]} == {"c": "b", "t": "x"}
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"c": [None, 1.5], "t": [None, "y"]})),
                                  [[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]])


def test_columns_without_information_at_fit():
    """All missing: a numeric column passes values through (centre 0, scale 1), a categorical one
    has the single category "missing". Constant: centred on the constant, scale 1."""
    train = pd.DataFrame({"x": [np.nan, np.nan], "c": [None, None], "k": [7.0, 7.0]})
    pre = TabularPreprocessor().fit(train)
    assert list(pre.get_feature_names_out()) == ["x", "c_missing", "k"]
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"x": [5.0], "c": [None], "k": [9.0]})), [[5.0, 1.0, 2.0]])


def test_integer_categories_read_with_a_gap_match_those_read_without():
    """A column of integer codes with an empty cell reads as floats: its 1.0 is category 1."""
    import pandas as pd

    from model.preprocessing import TabularPreprocessor

    train = pd.DataFrame({"code": pd.Series(["1", "2", "3", "1"], dtype=object)})
    pre = TabularPreprocessor().fit(train)
    gapped = pd.DataFrame({"code": [1.0, np.nan, 3.0]})
    ints = pd.DataFrame({"code": pd.Series(["1", "2", "3"], dtype=object)})
    out = pre.transform(gapped)
    assert out[0].tolist() == pre.transform(ints)[0].tolist()
    assert out[2].tolist() == pre.transform(ints)[2].tolist()


def test_output_is_the_float64_encoding_rounded_once_to_float32():
    """The default float32 output is, bit for bit, the float64 encoding rounded once: each column is
    computed in float64 and written into one float32 array, with no float64 copy of the whole."""
    frame = mixed_frame()
    single = TabularPreprocessor().fit(frame)
    double = TabularPreprocessor(dtype="float64").fit(frame)
    out64 = double.transform(frame)
    assert out64.dtype == np.float64
    np.testing.assert_array_equal(single.transform(frame), out64.astype(np.float32))
    assert single.transform(frame).flags["C_CONTIGUOUS"]


def test_saved_dtype_round_trips_and_a_state_without_one_transforms_as_float64():
    """A state saved before the output dtype was stored (no "dtype") keeps its float64 output, so a
    model saved then predicts as it did; a bad dtype is refused in one line."""
    frame = mixed_frame()
    pre = TabularPreprocessor().fit(frame)
    state = json.loads(json.dumps(pre.to_dict()))
    assert state["dtype"] == "float32" and TabularPreprocessor.from_dict(state).transform(frame).dtype == np.float32
    del state["dtype"]
    old = TabularPreprocessor.from_dict(state)
    np.testing.assert_array_equal(old.transform(frame), TabularPreprocessor(dtype="float64").fit(frame).transform(frame))
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        TabularPreprocessor.from_dict({**state, "dtype": "int8"})
    with pytest.raises(ValueError, match="dtype must be one of"):
        TabularPreprocessor(dtype="float16").fit(frame)
