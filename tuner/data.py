"""Loading a study's data and splitting it into train / validation / test, preprocessed on train only."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from model.preprocessing import TabularPreprocessor

from .config import DATA_SUFFIXES, SKLEARN_DATASETS, DataConfig, StudyConfig, check_against_data
from .errors import ConfigError, DataError

MIN_ROWS = 20
MIN_PER_CLASS = 3
#: Delimiters a text file may use, tried by csv.Sniffer on its first bytes (comma when unsure).
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
#: A text column is read as numbers when its other values are at most this many distinct
#: tokens ("unknown", "n/a") filling under half of its non-missing cells.
MAX_STRAY_TOKENS = 5
#: A text column with at least one distinct value per this many rows looks like an identifier.
ROWS_PER_LEVEL_OF_AN_ID = 4
ID_NAME = re.compile(r"(?i)(^|[_\s.-])(id|uuid|guid|key|index)$|^unnamed: \d+$")
NUMBER_WITH_DECIMAL_COMMA = r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?"


class DataWarning(UserWarning):
    """The data loaded, but a column may not be what the study means: numbers with stray tokens
    read as missing, an identifier-like column. The message names the column and the ``[data]``
    key that settles it; the study goes on."""


@dataclass(frozen=True, eq=False)
class Splits:
    """Raw and preprocessed train/validation/test data of one study."""

    X_train: pd.DataFrame
    X_val: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    preprocessor: TabularPreprocessor
    Xt_train: np.ndarray
    Xt_val: np.ndarray
    Xt_test: np.ndarray
    task: str
    n_classes: int | None
    classes: tuple[str, ...] | None
    feature_names: tuple[str, ...]
    target_name: str
    fingerprint: str
    columns: tuple[str, ...] = field(default=())


def load_frame(config: StudyConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of the study's data source, with the ``[data]`` column options applied.

    The source is ``sklearn:<name>`` (bundled, no download) or a .csv/.tsv/.parquet file (the
    delimiter of a text file is detected). ``na_values`` cells become missing; ``drop`` columns
    are left out; ``categorical`` / ``numeric`` columns get that type; a text column that is
    numbers apart from a few tokens is read as numbers with those tokens missing. Columns that
    look wrong get a :class:`DataWarning` (see :func:`type_columns`).
    """
    data = config.data
    source = data.source
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_DATASETS:
            raise DataError(f"unknown sklearn dataset {source!r} (allowed: {', '.join(SKLEARN_DATASETS)})")
        bunch = getattr(datasets, SKLEARN_DATASETS[name].loader)(as_frame=True)
        frame, target = bunch.data.join(bunch.target.rename("target")), "target"
    else:
        frame, target = read_file(Path(source), data.categorical), data.target
        if target is None:
            raise DataError(f"{source}: data.target is required for file sources")
        if target not in frame.columns:
            shown = ", ".join(map(str, list(frame.columns)[:20]))
            hint = ""
            if frame.shape[1] == 1 and any(d in str(frame.columns[0]) for d in DELIMITERS[1:]):
                hint = "; the file seems to use another delimiter than ',' and it was not detected"
            raise DataError(f"{source}: target column {target!r} not found (columns: {shown}){hint}")
    _check_named_columns(config, frame)
    frame = _mark_missing(frame, data.na_values)
    X = type_columns(frame.drop(columns=[target, *data.drop]), data, source)
    return X, frame[target]


def read_file(path: Path, categorical: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """A .csv/.tsv/.parquet file as a DataFrame; DataError with one line if it cannot be read.

    A text file's delimiter is sniffed (comma, semicolon, tab, pipe); semicolon and tab files
    with decimal commas ("1,5") are read as numbers. ``categorical`` columns of a text file are
    read as text, as written.
    """
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataError(f"{path}: unsupported file extension {path.suffix!r} (allowed: .csv, .tsv, .parquet)")
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = "\t" if suffix == ".tsv" else sniff_delimiter(path)
        as_text = {name: "string" for name in categorical}  # names absent from the file are ignored
        frame = pd.read_csv(path, sep=sep, dtype=as_text)
        if sep != "," and _has_decimal_commas(frame):
            frame = pd.read_csv(path, sep=sep, dtype=as_text, decimal=",")
        return frame
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read file: {type(exc).__name__}: {exc}".splitlines()[0]) from None


def sniff_delimiter(path: Path) -> str:
    """The delimiter of a text table (one of :data:`DELIMITERS`), from its first 64 KiB; ','
    when the sample does not tell (a single column, say)."""
    with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
        sample = fh.read(SNIFF_BYTES)
    if len(sample) == SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _has_decimal_commas(frame: pd.DataFrame) -> bool:
    """Whether a text column holds only numbers written with a decimal comma."""
    for name in frame.columns:
        values = _text_values(frame[name])
        if values is not None and len(values) and values.str.fullmatch(NUMBER_WITH_DECIMAL_COMMA).all():
            return True
    return False


def _text_values(series: pd.Series) -> pd.Series | None:
    """The non-missing values of a text column, stripped; None for other columns."""
    if not (pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)):
        return None
    return series.dropna().astype(str).str.strip()


def _check_named_columns(config: StudyConfig, frame: pd.DataFrame) -> None:
    """ConfigError, one line per key, for ``[data]`` column names that are not in the data."""
    columns = [str(c) for c in frame.columns]
    problems = []
    for key in ("drop", "categorical", "numeric"):
        unknown = [name for name in getattr(config.data, key) if name not in columns]
        if unknown:
            shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            problems.append(
                f"{config.path}: data.{key}: no column {', '.join(map(repr, unknown))} in "
                f"{config.data.source} (columns: {shown})"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def _mark_missing(frame: pd.DataFrame, tokens: list[str]) -> pd.DataFrame:
    """``frame`` with cells equal to one of ``tokens`` missing: text cells by their stripped text,
    numeric cells by value (so "-999" matches -999 and -999.0)."""
    if not tokens:
        return frame
    texts = {t.strip() for t in tokens}
    numbers = pd.to_numeric(pd.Series(sorted(texts)), errors="coerce").dropna().tolist()
    frame = frame.copy()
    for name in frame.columns:
        series = frame[name]
        if _text_values(series) is not None:
            frame[name] = series.mask(series.astype("string").str.strip().isin(texts))
        elif numbers and pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            hit = series.isin(numbers)
            if hit.any():
                frame[name] = series.astype("float64").mask(hit)
    return frame


def type_columns(X: pd.DataFrame, data: DataConfig, source: str) -> pd.DataFrame:
    """``X`` with each feature column's type settled, warning (:class:`DataWarning`) about columns
    that may be read wrongly.

    - ``categorical`` columns: text (their categories are the values as written);
    - ``numeric`` columns, and text columns that are numbers apart from at most
      :data:`MAX_STRAY_TOKENS` distinct tokens in under half of their cells: numbers, the tokens
      missing, with a warning naming the column and the tokens unless ``na_values`` declared them;
    - a column that looks like an identifier (text with a distinct value per few rows, or
      distinct consecutive integers, or integers under an id-like name) is kept, with a warning:
      its values cannot carry to new rows.
    """
    X = X.copy()
    for name in X.columns:
        series = X[name]
        if name in data.categorical:
            if _text_values(series) is None:
                X[name] = series.astype("string")
            continue
        values = _text_values(series)
        if values is not None and len(values):
            numbers = pd.to_numeric(values, errors="coerce")
            stray = values[numbers.isna()]
            tokens = sorted(set(stray))
            declared = name in data.numeric
            if declared or (len(tokens) <= MAX_STRAY_TOKENS and 2 * len(stray) < len(values)):
                if numbers.notna().sum() == 0:
                    raise DataError(f"{source}: column {name!r} is declared numeric but holds no number")
                X[name] = pd.to_numeric(series.astype("string").str.strip(), errors="coerce").astype("float64")
                if tokens:
                    _warn(
                        f"{source}: column {name!r} is numeric apart from {len(stray)} cell(s) holding "
                        f"{_listed(tokens)}: read them as missing values (declare them with [data] na_values, "
                        f"or keep the column as categories with [data] categorical = [{name!r}])"
                    )
                continue
        if name not in data.numeric:
            why = _looks_like_an_id(str(name), X[name])
            if why:
                _warn(
                    f"{source}: column {name!r} looks like an identifier ({why}): a model cannot learn from "
                    f"it for new rows; leave it out with [data] drop = [{name!r}]"
                )
    return X


def _looks_like_an_id(name: str, series: pd.Series) -> str:
    """Why ``series`` looks like a row identifier ('' if it does not)."""
    present = series.dropna()
    n = len(present)
    if n < MIN_ROWS:
        return ""
    levels = present.nunique()
    if _text_values(series) is not None:
        if levels * ROWS_PER_LEVEL_OF_AN_ID >= n:
            return f"{levels} distinct values in {n} rows"
        return ""
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return ""
    values = present.to_numpy(dtype=np.float64)
    if levels < n or not np.all(np.mod(values, 1) == 0):
        return ""
    if values.max() - values.min() == n - 1:
        return f"distinct consecutive integers {values.min():.0f} to {values.max():.0f}"
    if ID_NAME.search(name):
        return f"distinct integers under an id-like name"
    return ""


def _listed(tokens: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(t) for t in tokens[:limit])
    return shown + (f" and {len(tokens) - limit} more" if len(tokens) > limit else "")


def _warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def encode_target(y: pd.Series, task: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Class labels as they are in the data (with the sorted classes) or float64 values.

    The model is trained on the original labels, so what it predicts (and exports) is a label
    a user recognises, not a code.
    """
    name = y.name
    if y.isna().any():
        raise DataError(f"target column {name!r} has {int(y.isna().sum())} missing value(s)")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
            raise DataError(f"target column {name!r} is not numeric; use task = \"classification\"")
        values = y.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"target column {name!r} holds infinite values")
        return values, None
    if pd.api.types.is_float_dtype(y.dtype) and not np.all(np.mod(y.to_numpy(dtype=np.float64), 1) == 0):
        raise DataError(f"target column {name!r} holds non-integer numbers; use task = \"regression\"")
    codes, uniques = pd.factorize(y, sort=True)
    labels = np.asarray(uniques.to_numpy())
    if labels.dtype.kind in "OUT":
        labels = labels.astype(str).astype(object)
    classes = tuple(labels.tolist())
    if len(classes) < 2:
        raise DataError(f"target column {name!r} has a single class ({classes[0]!r}); classification needs two or more")
    return labels[codes], classes


def fingerprint(X: pd.DataFrame, y: np.ndarray) -> str:
    """sha256 of a training frame and its target: column names, dtypes, values and index."""
    h = hashlib.sha256()
    h.update(json.dumps([[str(c), str(t)] for c, t in X.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(X, index=True).to_numpy().tobytes())
    y = np.asarray(y)
    if y.dtype == object:  # the bytes of an object array are pointers: hash the labels' text
        y = y.astype(str)
    h.update(str(y.dtype).encode())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def _split(X: pd.DataFrame, y: np.ndarray, task: str, config: StudyConfig) -> tuple:
    d = config.data
    stratify = y if task == "classification" else None
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=d.test_fraction, random_state=config.seed, stratify=stratify
    )
    val_share = d.validation_fraction / (1.0 - d.test_fraction)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_share, random_state=config.seed,
        stratify=y_rest if stratify is not None else None,
    )
    return X_train, X_val, X_test, y_train, y_val, y_test


def load_splits(config: StudyConfig, check: bool = True) -> Splits:
    """Load, split (stratified for classification, fixed by config.seed) and preprocess a study's data.

    With `check`, also runs config.check_against_data (batch sizes, binary-only metrics), which raises
    ConfigError.
    """
    task = config.task
    X, y_raw = load_frame(config)
    if X.shape[1] == 0:
        raise DataError(f"{config.data.source}: no feature columns besides the target")
    if len(X) < MIN_ROWS:
        raise DataError(f"{config.data.source}: too few rows ({len(X)}); need at least {MIN_ROWS}")
    y, classes = encode_target(y_raw, task)
    if classes is not None:
        counts = np.array([np.sum(y == c) for c in classes])
        rare = [classes[i] for i in np.flatnonzero(counts < MIN_PER_CLASS)]
        if rare:
            raise DataError(
                f"{config.data.source}: class(es) {', '.join(map(repr, rare))} have fewer than {MIN_PER_CLASS} rows; "
                "stratified train/validation/test splits need at least that many per class"
            )
    try:
        X_train, X_val, X_test, y_train, y_val, y_test = _split(X, y, task, config)
    except ValueError as exc:
        raise DataError(f"{config.data.source}: cannot split the data: {exc}") from None
    pre = TabularPreprocessor(missing=config.data.missing)
    try:
        Xt_train = pre.fit_transform(X_train)
        Xt_val, Xt_test = pre.transform(X_val), pre.transform(X_test)
    except ValueError as exc:
        raise DataError(f"{config.data.source}: {exc}") from None
    n_classes = len(classes) if classes is not None else None
    if check:
        check_against_data(config, len(X_train), n_classes)
    return Splits(
        X_train=X_train, X_val=X_val, X_test=X_test,
        y_train=y_train, y_val=y_val, y_test=y_test,
        preprocessor=pre, Xt_train=Xt_train, Xt_val=Xt_val, Xt_test=Xt_test,
        task=task, n_classes=n_classes, classes=classes,
        feature_names=tuple(str(n) for n in pre.get_feature_names_out()),
        target_name=str(y_raw.name), fingerprint=fingerprint(X_train, y_train),
        columns=tuple(str(c) for c in X.columns),
    )
