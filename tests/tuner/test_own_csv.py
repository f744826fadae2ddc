"""A user's own CSV with a minimal study file (name, source, target): the task is inferred and
said, identifier-like columns are left out, dates become numbers, rows without a target are
dropped, duplicate column names are refused; and the study runs through to a model that takes
the file's raw rows."""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuner.study.config import StudyConfig, load_config
from tuner.data.loading import DataWarning, load_splits
from tuner.errors import DataError

MINIMAL = 'name = "customers"\n[data]\nsource = "customers.csv"\ntarget = "segment"\n'


def customers(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """An id column, a date, integer columns (one with gaps), a text column and a text target
    with a few empty cells, as a user's export from a database looks."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 700, n)
    age = rng.integers(18, 80, n)
    visits = rng.integers(0, 12, n)
    score = age / 20 + visits - days / 200 + rng.normal(0, 1, n)
    segment = np.where(score > np.median(score), "gold", "basic").astype(object)
    segment[[i for i in (3, 50, 120) if i < n]] = None
    frame = pd.DataFrame({
        "customer_id": np.arange(1000, 1000 + n),
        "signup": (pd.Timestamp("2023-01-01") + pd.to_timedelta(days, "D")).strftime("%Y-%m-%d"),
        "age": age,
        "visits": visits.astype(float),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "segment": segment,
    })
    frame.loc[[5, 9], "visits"] = np.nan
    return frame


def write(tmp_path: Path, frame: pd.DataFrame, study: str = MINIMAL) -> Path:
    frame.to_csv(tmp_path / "customers.csv", index=False)
    (tmp_path / "customers.toml").write_text(study)
    return tmp_path / "customers.toml"


def messages(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_a_minimal_study_file_reads_the_csv_as_meant(tmp_path):
    study = write(tmp_path, customers())
    csv = tmp_path / "customers.csv"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = load_config(study)
        splits = load_splits(config)
    assert messages(caught) == [
        f"{csv}: no data.task given: the target 'segment' holds text, so the task is classification "
        '(set [data] task = "regression" to change it)',
        f"{csv}: dropped 3 of 200 rows whose target 'segment' is missing",
        f"{csv}: left out column(s) that look like identifiers, whose values cannot carry to new rows: "
        "'customer_id' (distinct integers under an id-like name); keep them with [data] keep = ['customer_id']",
    ]
    assert (config.task, config.metric, splits.task, splits.classes) == (
        "classification", "accuracy", "classification", ("basic", "gold"))
    assert splits.columns == ("signup", "age", "visits", "plan")
    assert splits.feature_names == ("signup", "age", "visits", "plan_basic", "plan_plus", "plan_pro")
    assert splits.preprocessor.dates == ("signup",)
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 197
    every = pd.concat([splits.X_train, splits.X_val, splits.X_test])
    assert not {3, 50, 120} & set(every.index)  # the rows without a target, by their row number
    assert every["signup"].iloc[0] == customers()["signup"].iloc[every.index[0]]  # dates stay text
    assert np.isfinite(splits.Xt_train).all() and np.isfinite(splits.Xt_test).all()


def test_dates_are_days_since_1970_and_stray_cells_missing(tmp_path):
    frame = customers().assign(segment=lambda f: f["segment"].fillna("basic"))
    frame["signup"] = frame["signup"].astype(object)
    frame.loc[[7, 8], "signup"] = "soon"
    frame.loc[11, "signup"] = None
    path = write(tmp_path, frame, MINIMAL + "keep = ['customer_id']\n")
    with pytest.warns(DataWarning, match=re.escape(
        "column 'signup' holds dates apart from 2 cell(s) holding 'soon': read them as missing values "
        "(or keep the column as categories with [data] categorical = ['signup'])"
    )):
        splits = load_splits(load_config(path))
    pre = splits.preprocessor
    state = pre.to_dict()["columns"][pre.columns_.index("signup")]
    assert state["kind"] == "date"
    train = splits.X_train["signup"]
    days = (pd.to_datetime(train.dropna()) - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    assert state["median"] == np.median(days) and 19358 <= days.min() and days.max() < 19358 + 700
    one_row = splits.X_train.head(1)
    expected = (days.iloc[0] - state["mean"]) / state["std"] if pd.notna(train.iloc[0]) else None
    if expected is not None:
        assert pre.transform(one_row)[0, pre.columns_.index("signup")] == pytest.approx(expected)
    declared = load_splits(load_config(write(tmp_path, frame, MINIMAL + "keep = ['customer_id']\ncategorical = ['signup']\n")))
    assert declared.preprocessor.dates == () and any(n.startswith("signup_2023") for n in declared.feature_names)


def test_a_text_column_that_is_mostly_not_dates_is_not_a_date(tmp_path):
    frame = customers().assign(segment=lambda f: f["segment"].fillna("basic"))
    frame["when"] = np.where(np.arange(len(frame)) % 10 == 0, "later", "2024-05-01")  # 90% dates
    with pytest.warns(DataWarning):
        splits = load_splits(load_config(write(tmp_path, frame)))
    assert "when" not in splits.preprocessor.dates and "when_later" in splits.feature_names


def test_rows_without_a_target_are_dropped_and_counted(tmp_path):
    frame = customers()
    frame.loc[[0, 1], "segment"] = "?"
    path = write(tmp_path, frame, MINIMAL + "task = 'classification'\nna_values = ['?']\n")
    with pytest.warns(DataWarning, match="dropped 5 of 200 rows whose target 'segment' is missing"):
        splits = load_splits(load_config(path))
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 195
    codes = frame.assign(segment=np.where(frame["segment"] == "gold", 2, 1)).astype({"segment": "float64"})
    codes.loc[[4, 6], "segment"] = np.nan  # a column of whole numbers with gaps: floats in pandas
    with pytest.warns(DataWarning, match="dropped 2 of 200 rows"):
        assert load_splits(load_config(write(tmp_path, codes))).classes == (1, 2)  # not 1.0, 2.0
    path = write(tmp_path, frame.assign(segment=None), MINIMAL + "task = 'classification'\n")
    with pytest.raises(DataError, match=r"customers.csv: target column 'segment' has no values \(all 200 rows are missing\)$"):
        load_splits(load_config(path))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_duplicate_column_names_are_refused_in_one_line(tmp_path, suffix):
    frame = customers(60).assign(segment="a")
    frame.columns = ["customer_id", "age", "age", "visits", "plan", "segment"]
    path = tmp_path / f"d{suffix}"
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_arrays([pa.array(frame.iloc[:, i]) for i in range(6)], names=list(frame.columns)), path)
    else:
        frame.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    expected = f"{path}: duplicate column name(s) 'age' (2 times): give each column its own name in the header"
    for task in ({"task": "classification"}, {}):  # reading the data, or reading the target for the task
        with pytest.raises(DataError) as info:
            load_splits(StudyConfig.model_validate({"name": "t", "data": {"source": str(path), "target": "segment", **task}}))
        assert str(info.value) == expected


def test_an_explicit_task_wins_over_the_inferred_one(tmp_path):
    frame = customers().assign(segment=lambda f: np.arange(len(f)) % 3)  # 3 whole numbers: classes
    with pytest.warns(DataWarning, match="holds whole numbers with 3 distinct value"):
        assert load_config(write(tmp_path, frame)).task == "classification"
    config = load_config(write(tmp_path, frame, MINIMAL + "task = 'regression'\n"))
    assert (config.task, config.metric) == ("regression", "rmse")
    with pytest.warns(DataWarning, match="left out"):
        assert load_splits(config).y_train.dtype == np.float64


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_minimal_study_runs_and_its_model_takes_the_raw_rows(tmp_path):
    """Three trials on the CSV with the minimal study file; the final model, saved as the export
    saves it, predicts from ``pd.read_csv`` rows that still hold the id column, the date text,
    integers and gaps, and its signature asks for neither the id nor the target."""
    import mlflow
    from mlflow.models import Model
    from sklearn.pipeline import Pipeline

    import model
    from tuner import runner
    from tuner.result.model_folder import write_model_folder

    study = write(tmp_path, customers())
    with pytest.warns(DataWarning):
        result = runner.run_study(
            study, n_trials=3, storage=f"sqlite:///{tmp_path}/o.db", tracking_uri=f"sqlite:///{tmp_path}/m.db"
        )
    assert result.config.task == "classification" and len(result.study.trials) == 3
    assert result.study.user_attrs["definition"]["task"] == "classification"
    assert 0 < result.test_scores["accuracy"] <= 1
    pipeline = result.final.pipeline
    assert isinstance(pipeline, Pipeline) and pipeline.steps[0][1].dates == ("signup",)
    new_rows = pd.read_csv(tmp_path / "customers.csv").drop(columns=["segment"]).tail(20)
    assert new_rows["age"].dtype == np.int64 and new_rows["signup"].dtype != np.float64
    saved = model.load(model.save(pipeline, tmp_path / "model.npz"))
    labels = saved.predict(new_rows)
    assert set(labels) <= {"basic", "gold"}
    np.testing.assert_array_equal(labels, pipeline.predict(new_rows))
    with pytest.warns(DataWarning):
        splits = load_splits(result.config)
    folder = write_model_folder(tmp_path / "exported", pipeline, splits, {"study": "customers"})
    inputs = [c.name for c in Model.load(str(folder)).signature.inputs.inputs]
    assert inputs == ["signup", "age", "visits", "plan"]
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(str(folder)).predict(new_rows), labels)


def test_a_column_with_no_values_is_left_out_with_a_warning(tmp_path):
    frame = customers()
    frame["notes"] = np.nan
    study = write(tmp_path, frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_splits(load_config(study))
    assert "notes" not in splits.X_train.columns
    assert any("left out column(s) with no values at all: 'notes'" in m for m in messages(caught))


def test_numbers_too_large_to_scale_are_refused_before_a_study_starts(tmp_path):
    """A value near the largest float passes a finiteness check but overflows the column's mean
    and spread: every trial would diverge. It is refused while the data is read, naming the column."""
    frame = customers()
    frame["age"] = frame["age"].astype(float)
    frame.loc[7, "age"] = 1e308
    frame.loc[8, "age"] = 1e308
    study = write(tmp_path, frame)
    with pytest.raises(DataError, match=r"column 'age' holds numbers too large to scale \(up to 1e\+308\)"):
        load_splits(load_config(study))
