"""Data loading and splitting: disjoint, stratified, reproducible splits; clear DataErrors."""

import subprocess
import sys
import re
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuner.study.config import StudyConfig, config_from_settings, load_config
from tuner.data.loading import DataWarning, load_splits
from tuner.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]


def config_for(source: str, seed: int = 0, **data) -> StudyConfig:
    space = {"batch_size": [8, 16]}  # the default choices go up to 512, more than small training sets
    return StudyConfig.model_validate({"name": "t", "seed": seed, "data": {"source": source, **data}, "space": space})


@pytest.fixture(scope="module")
def digits():
    return load_splits(config_for("sklearn:digits"))


def test_splits_are_disjoint_and_sized(digits):
    idx = [set(digits.X_train.index), set(digits.X_val.index), set(digits.X_test.index)]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    assert sum(map(len, idx)) == 1797
    assert len(idx[2]) == pytest.approx(0.2 * 1797, abs=2) and len(idx[1]) == pytest.approx(0.2 * 1797, abs=2)
    assert digits.Xt_train.shape == (len(digits.y_train), 64) and digits.Xt_val.dtype == np.float32
    assert digits.task == "classification" and digits.n_classes == 10
    assert digits.classes == tuple(range(10))  # the original labels, not codes
    assert len(digits.feature_names) == 64


def test_splits_are_stratified(digits):
    overall = np.bincount(np.concatenate([digits.y_train, digits.y_val, digits.y_test])) / 1797
    for y in (digits.y_train, digits.y_val, digits.y_test):
        np.testing.assert_allclose(np.bincount(y, minlength=10) / len(y), overall, atol=0.01)


def test_validation_and_test_differ_and_seed_fixes_split(digits):
    assert not digits.X_val.index.equals(digits.X_test.index)
    again = load_splits(config_for("sklearn:digits"))
    assert digits.X_test.index.equals(again.X_test.index) and digits.X_val.index.equals(again.X_val.index)
    np.testing.assert_array_equal(digits.Xt_train, again.Xt_train)
    assert again.fingerprint == digits.fingerprint and len(digits.fingerprint) == 64
    other = load_splits(config_for("sklearn:digits", seed=1))
    assert not other.X_test.index.equals(digits.X_test.index)
    assert other.fingerprint != digits.fingerprint


def test_preprocessor_fitted_on_train_only(digits):
    np.testing.assert_allclose(digits.Xt_train.mean(axis=0, dtype=np.float64), 0.0, atol=1e-6)
    assert np.abs(digits.Xt_val.mean(axis=0)).max() > 1e-3  # val statistics were not used


def test_fingerprints_are_the_same_in_another_process(digits):
    """Digits, and the wine CSV's string labels: object arrays, whose fingerprint must hash text,
    not pointers. One other process computes both (a process start costs seconds)."""
    code = (
        "from tuner.data.loading import load_splits; from tuner.study.config import StudyConfig, load_config; "
        "config = StudyConfig.model_validate({'name': 't', 'data': {'source': 'sklearn:digits'}}); "
        "print(load_splits(config, check=False).fingerprint); "
        "print(load_splits(load_config('studies/wine_mixed.toml')).fingerprint)"
    )
    wine = load_splits(load_config(ROOT / "studies/wine_mixed.toml")).fingerprint
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [digits.fingerprint, wine]


def test_regression_dataset():
    splits = load_splits(config_for("sklearn:diabetes"))
    assert splits.task == "regression" and splits.n_classes is None and splits.classes is None
    assert splits.y_train.dtype == np.float64
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 442


def test_shipped_csv_study_with_categories_and_missing_values():
    config = load_config(ROOT / "studies" / "wine_mixed.toml")
    splits = load_splits(config)
    assert splits.X_train["alcohol_level"].isna().any() or splits.X_val["alcohol_level"].isna().any()
    assert {"alcohol_level_high", "alcohol_level_low", "alcohol_level_medium"} <= set(splits.feature_names)
    assert np.isfinite(splits.Xt_train).all() and np.isfinite(splits.Xt_test).all()
    assert splits.classes == ("barbera", "barolo", "grignolino") and splits.n_classes == 3
    assert splits.target_name == "cultivar"
    with pytest.raises(DataError, match=r"missing values in column\(s\) 'alcohol_level', 'malic_acid'"):
        load_splits(config.model_copy(update={"data": config.data.model_copy(update={"missing": "error"})}))


def test_make_csv_is_deterministic():
    sys.path.insert(0, str(ROOT / "data"))
    try:
        import make_csv
    finally:
        sys.path.pop(0)
    shipped = pd.read_csv(ROOT / "data" / "wine_mixed.csv")
    pd.testing.assert_frame_equal(pd.read_csv(ROOT / "data" / "wine_mixed.csv"), shipped)
    rebuilt = make_csv.build()
    assert list(rebuilt.columns) == list(shipped.columns)
    assert rebuilt.isna().sum().to_dict() == shipped.isna().sum().to_dict()
    assert (ROOT / "data" / "wine_mixed.csv").stat().st_size < 200_000


def write_csv(tmp_path: Path, frame: pd.DataFrame, name: str = "d.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def file_config(path: str, target: str = "y", task: str = "classification", **data) -> StudyConfig:
    return config_for(path, target=target, task=task, **data)


def frame_rows(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.choice(["p", "q"], n), "y": rng.integers(0, 2, n)})


def test_missing_target_column(tmp_path):
    path = write_csv(tmp_path, frame_rows())
    with pytest.raises(DataError, match="target column 'label' not found \\(columns: a, b, y\\)"):
        load_splits(file_config(path, target="label"))


def test_single_class_target(tmp_path):
    path = write_csv(tmp_path, frame_rows().assign(y=1))
    with pytest.raises(DataError, match="target column 'y' has a single class"):
        load_splits(file_config(path))


def test_too_few_rows_and_rare_classes(tmp_path):
    with pytest.raises(DataError, match=r"too few rows \(10\)"):
        load_splits(file_config(write_csv(tmp_path, frame_rows(10))))
    rare = frame_rows()
    rare.loc[:1, "y"] = 7
    rare.loc[2:, "y"] = rare.loc[2:, "y"].clip(0, 1)
    with pytest.raises(DataError, match="class\\(es\\) 7 have fewer than 3 rows"):
        load_splits(file_config(write_csv(tmp_path, rare)))


def test_unreadable_and_unsupported_files(tmp_path):
    bad = tmp_path / "d.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="d.parquet: cannot read file"):
        load_splits(file_config(str(bad)))
    xlsx = tmp_path / "d.xlsx"
    xlsx.write_text("x")
    with pytest.raises(DataError, match="unsupported file extension '.xlsx' \\(allowed: .csv, .tsv, .parquet\\)"):
        load_splits(file_config(str(xlsx)))


def test_task_mismatches(tmp_path):
    continuous = frame_rows().assign(y=lambda f: f["a"] * 2.5)
    with pytest.raises(DataError, match="non-integer numbers; use task = \"regression\""):
        load_splits(file_config(write_csv(tmp_path, continuous)))
    with pytest.raises(DataError, match="target column 'b' is not numeric"):
        load_splits(file_config(write_csv(tmp_path, frame_rows()), target="b", task="regression"))


def test_parquet_source(tmp_path):
    path = tmp_path / "d.parquet"
    frame_rows(80).to_parquet(path)
    splits = load_splits(file_config(str(path)))
    assert splits.n_classes == 2 and list(splits.feature_names) == ["a", "b_p", "b_q"]


def test_batch_size_checked_against_training_rows(tmp_path):
    path = write_csv(tmp_path, frame_rows())
    config = StudyConfig.model_validate({
        "name": "t", "data": {"source": path, "target": "y", "task": "classification"},
        "space": {"batch_size": [16, 64]},
    })
    with pytest.raises(ConfigError, match=r"space.batch_size: 64 exceed\(s\) the training set \(36 rows\)"):
        load_splits(config)
    assert len(load_splits(config, check=False).y_train) == 36


# ------------------------------------------------------------------ how columns are read (issue 12)


@contextmanager
def no_data_warning():
    """A DataWarning inside fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        yield


def test_numeric_column_with_stray_tokens_is_read_as_numbers(tmp_path):
    frame = frame_rows(90).astype({"a": object})
    frame.loc[[3, 40, 77], "a"] = "unknown"
    path = write_csv(tmp_path, frame)
    with pytest.warns(DataWarning, match=r"column 'a' is numeric apart from 3 cell\(s\) holding 'unknown': read"):
        splits = load_splits(file_config(path))
    assert splits.X_train["a"].dtype == np.float64 and "a" in splits.feature_names
    assert not any(name.startswith("a_") for name in splits.feature_names)  # not one-hot categories
    everything = pd.concat([splits.X_train, splits.X_val, splits.X_test])
    assert everything["a"].isna().sum() == 3
    # Declared as missing: the same numbers, no warning.
    with no_data_warning():
        declared = load_splits(file_config(path, na_values=["unknown"]))
    pd.testing.assert_frame_equal(declared.X_train, splits.X_train)


def test_na_values_match_numbers_and_text(tmp_path):
    frame = frame_rows(60).assign(c=lambda f: np.where(f.index % 7 == 0, -999, f.index))
    frame.loc[[1, 2], "b"] = "?"
    with no_data_warning():
        splits = load_splits(file_config(write_csv(tmp_path, frame), na_values=["-999", "?"]))
    everything = pd.concat([splits.X_train, splits.X_val, splits.X_test])
    assert everything["c"].isna().sum() == 9 and (everything["c"] != -999).all()
    assert everything["b"].isna().sum() == 2 and "b_?" not in splits.feature_names


def test_identifier_columns_are_left_out_like_dropped_ones_unless_kept(tmp_path):
    frame = frame_rows(60).assign(row=range(1, 61), name=[f"wine {i}" for i in range(60)])
    path = write_csv(tmp_path, frame)
    with pytest.warns(DataWarning) as caught:
        splits = load_splits(file_config(path))
    (message,) = [str(w.message) for w in caught]
    assert message == (
        f"{path}: left out column(s) that look like identifiers, whose values cannot carry to new rows: "
        "'row' (distinct consecutive integers 1 to 60), 'name' (60 distinct values in 60 rows); "
        "keep them with [data] keep = ['row', 'name']"
    )
    with no_data_warning():
        dropped = load_splits(file_config(path, drop=["row", "name"]))
    assert splits.columns == dropped.columns == ("a", "b") and list(splits.X_train.columns) == ["a", "b"]
    assert splits.fingerprint == dropped.fingerprint  # the same study as with [data] drop
    np.testing.assert_array_equal(splits.Xt_train, dropped.Xt_train)
    with no_data_warning():
        kept = load_splits(file_config(path, keep=["row", "name"]))
    assert kept.columns == ("a", "b", "row", "name") and any(n.startswith("name_wine") for n in kept.feature_names)
    with pytest.warns(DataWarning, match=r": 'name' \(60 distinct values in 60 rows\); keep them with \[data\] keep = \['name'\]"):
        assert load_splits(file_config(path, keep=["row"])).columns == ("a", "b", "row")


def test_keep_names_are_checked(tmp_path):
    path = write_csv(tmp_path, frame_rows())
    with pytest.raises(ConfigError, match=r"data.keep: no column 'id' in .*d.csv \(columns: a, b, y\)"):
        load_splits(file_config(path, keep=["id"]))
    for data, expected in [
        ({"keep": ["a"], "drop": ["a"]}, "data.keep: column 'a' is named also in data.drop"),
        ({"keep": ["a", "a"]}, "data.keep: column 'a' is named twice"),
        ({"keep": ["y"]}, "data.keep: 'y' is the target column"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(f"s.toml: {expected}")):
            config_from_settings({"name": "t", "data": {"source": path, "target": "y", **data}}, "s.toml")
    file_config(path, keep=["a"], numeric=["a"])  # redundant, not contradictory


def test_every_feature_an_identifier_is_one_line(tmp_path):
    path = write_csv(tmp_path, pd.DataFrame({"id": range(40), "y": [0, 1] * 20}))
    with pytest.raises(DataError, match=r"every feature column looks like an identifier \('id' \(distinct consecutive"
                                        r" integers 0 to 39\)\); keep them with \[data\] keep = \['id'\] if they are features"):
        load_splits(file_config(path))


def test_declared_column_types(tmp_path):
    rng = np.random.default_rng(1)
    frame = frame_rows(80).assign(
        code=rng.choice([10, 20, 30], 80),  # numbers that name categories
        level=np.where(rng.random(80) < 0.6, "unrecorded", rng.normal(size=80).round(3).astype(str)),
    )
    path = write_csv(tmp_path, frame)
    with pytest.warns(DataWarning, match=r"left out .*: 'level' \(38 distinct values in 80 rows\)"):
        inferred = load_splits(file_config(path))  # mostly text: categories, one per few rows
    assert "code" in inferred.feature_names and "level" not in inferred.columns
    with pytest.warns(DataWarning, match=r"column 'level' is numeric apart from \d+ cell\(s\) holding 'unrecorded'"):
        declared = load_splits(file_config(path, categorical=["code"], numeric=["level"]))
    assert {"code_10", "code_20", "code_30", "level"} <= set(declared.feature_names)
    assert declared.X_train["level"].dtype == np.float64


def test_unknown_column_names_are_one_line_per_key(tmp_path):
    path = write_csv(tmp_path, frame_rows())
    with pytest.raises(ConfigError) as info:
        load_splits(file_config(path, drop=["id", "a"], categorical=["colour"]))
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"data.drop: no column 'id' in {path} (columns: a, b, y)")
    assert "data.categorical: no column 'colour'" in lines[1]


@pytest.mark.parametrize("sep,suffix", [(";", ".csv"), ("\t", ".csv"), ("\t", ".tsv"), ("|", ".csv")])
def test_delimiters_are_detected(tmp_path, sep, suffix):
    frame = frame_rows(60)
    path = tmp_path / f"d{suffix}"
    frame.to_csv(path, sep=sep, index=False)
    splits = load_splits(file_config(str(path)))
    assert splits.columns == ("a", "b") and splits.X_train["a"].dtype == np.float64


def test_semicolon_file_with_decimal_commas(tmp_path):
    frame = frame_rows(60)
    path = tmp_path / "d.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    assert "," in path.read_text()
    splits = load_splits(file_config(str(path)))
    everything = pd.concat([splits.X_train, splits.X_val, splits.X_test]).sort_index()
    np.testing.assert_allclose(everything["a"].to_numpy(), frame["a"].to_numpy())


def test_training_and_validation_rows_are_one_slice_of_the_rows_not_a_copy(digits):
    """The final model's refit reads the training then validation rows as one slice of the frame
    the splits are cut from, equal to concatenating them."""
    both = digits.train_and_validation()
    pd.testing.assert_frame_equal(both, pd.concat([digits.X_train, digits.X_val]))
    assert np.shares_memory(both["pixel_0_1"].to_numpy(), digits.rows["pixel_0_1"].to_numpy())
    assert np.shares_memory(digits.X_test["pixel_0_1"].to_numpy(), digits.rows["pixel_0_1"].to_numpy())
