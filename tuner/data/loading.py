"""A study's data: loaded, split into train / validation / test, preprocessed on train only."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from model.preprocessing import TabularPreprocessor

# DataWarning is re-exported: this module's warnings are DataWarnings, and callers filter them.
from tuner.data.reading import DataWarning as DataWarning
from tuner.data.reading import (
    check_target,
    check_target_has_values,
    mark_missing,
    read_file,
    text_values,
)
from tuner.data.reading import warn as _warn
from tuner.errors import ConfigError, DataError
from tuner.study.config import StudyConfig, check_against_data
from tuner.study.sections import SKLEARN_DATASETS, DataConfig

MIN_ROWS = 20
MIN_PER_CLASS = 3
#: A text column is read as numbers when its other values are at most this many distinct
#: tokens ("unknown", "n/a") filling under half of its non-missing cells.
MAX_STRAY_TOKENS = 5
#: A text column with at least one distinct value per this many rows looks like an identifier.
ROWS_PER_LEVEL_OF_AN_ID = 4
ID_NAME = re.compile(r"(?i)(^|[_\s.-])(id|uuid|guid|key|index)$|^unnamed: \d+$")
#: An ISO 8601 date, with a time and a UTC offset or not ("2024-01-31", "2024-01-31T08:15:00Z").
ISO_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
#: A text column is read as dates when at least this share of its values are ISO dates (the
#: others are read as missing values, with a warning).
DATE_SHARE = 0.95


@dataclass(frozen=True, eq=False)
class Splits:
    """Raw and preprocessed train/validation/test data of one study.

    The study's rows are held once, in split order: ``X_train``, ``X_val`` and ``X_test`` are
    consecutive slices of one frame, and ``Xt_train``, ``Xt_val`` and ``Xt_test`` consecutive
    slices of one float32 array, which every trial trains and scores on without a copy.
    """

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
    #: Every row in split order: training, validation, test (the raw splits are its slices).
    rows: pd.DataFrame
    columns: tuple[str, ...] = field(default=())

    def train_and_validation(self) -> pd.DataFrame:
        """The training rows, then the validation rows: a slice of :attr:`rows`, not a copy."""
        return self.rows.iloc[: len(self.y_train) + len(self.y_val)]


class Frame(NamedTuple):
    """A study's feature columns, typed, its target, and which feature columns hold dates."""

    X: pd.DataFrame
    y: pd.Series
    dates: tuple[str, ...]


def load_frame(config: StudyConfig) -> Frame:
    """Features and target of the study's data source, with the ``[data]`` column options applied.

    The source is ``sklearn:<name>`` (bundled, no download) or a .csv/.tsv/.parquet file (the
    delimiter of a text file is detected). ``na_values`` cells become missing; rows without a
    target are dropped; ``drop`` columns are left out; ``categorical`` / ``numeric`` columns get
    that type; a text column that is numbers apart from a few tokens is read as numbers with
    those tokens missing; a text column of ISO dates is a date column (see :func:`type_columns`);
    identifier-like columns are left out unless named in ``keep`` (see
    :func:`leave_out_identifiers`). What may surprise gets a :class:`DataWarning`.
    """
    data = config.data
    source = data.source
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_DATASETS:
            raise DataError(
                f"unknown sklearn dataset {source!r} (allowed: {', '.join(SKLEARN_DATASETS)})"
            )
        bunch = getattr(datasets, SKLEARN_DATASETS[name].loader)(as_frame=True)
        frame, target = bunch.data.join(bunch.target.rename("target")), "target"
    else:
        if data.target is None:
            raise DataError(f"{source}: data.target is required for file sources")
        frame, target = read_file(Path(source), data.categorical), data.target
        check_target(source, [str(c) for c in frame.columns], target)
    _check_named_columns(config, frame)
    frame = _rows_with_target(mark_missing(frame, data.na_values), target, source)
    X, dates = type_columns(frame.drop(columns=[target, *data.drop]), data, source)
    X = leave_out_empty(leave_out_identifiers(X, data, source, dates), source)
    return Frame(X, frame[target], dates)


def _rows_with_target(frame: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """``frame`` without the rows whose target is missing (a warning counts them); DataError
    when no row has one. A target of whole numbers that the gaps made floats is whole numbers
    again, so that its classes read as in a file without gaps (``1``, not ``1.0``)."""
    missing = frame[target].isna()
    if not missing.any():
        return frame
    check_target_has_values(source, frame[target])
    n, lost = len(frame), int(missing.sum())
    _warn(f"{source}: dropped {lost} of {n} rows whose target {target!r} is missing")
    frame = frame[~missing]
    values = (
        frame[target].to_numpy(dtype=np.float64)
        if pd.api.types.is_float_dtype(frame[target].dtype)
        else None
    )
    if values is not None and np.all(np.mod(values, 1) == 0) and np.abs(values).max() < 2**53:
        frame = frame.astype({target: "int64"})
    return frame


def _check_named_columns(config: StudyConfig, frame: pd.DataFrame) -> None:
    """ConfigError, one line per key, for ``[data]`` column names that are not in the data."""
    columns = [str(c) for c in frame.columns]
    problems = []
    for key in ("drop", "keep", "categorical", "numeric"):
        unknown = [name for name in getattr(config.data, key) if name not in columns]
        if unknown:
            shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
            problems.append(
                f"{config.path}: data.{key}: no column {', '.join(map(repr, unknown))} in "
                f"{config.data.source} (columns: {shown})"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def type_columns(
    X: pd.DataFrame, data: DataConfig, source: str
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``X`` with each feature column's type settled, and its date columns; a
    :class:`DataWarning` for cells read as missing.

    - ``categorical`` columns: text (their categories are the values as written);
    - ``numeric`` columns, and text columns that are numbers apart from at most
      :data:`MAX_STRAY_TOKENS` distinct tokens in under half of their cells: numbers, the tokens
      missing, with a warning naming the column and the tokens unless ``na_values`` declared them;
    - text columns whose values are ISO dates (at least :data:`DATE_SHARE` of them): dates, kept
      as text (the preprocessing encodes them as days, and a served model takes the same text),
      the other cells missing, with a warning naming them.
    """
    X = X.copy(deep=False)  # columns are replaced, never written into: no need to copy data
    dates = []
    for name in X.columns:
        series = X[name]
        if name in data.categorical:
            if text_values(series) is None:
                X[name] = series.astype("string")
            continue
        values = text_values(series)
        if values is None or not len(values):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        stray = values[numbers.isna()]
        tokens = sorted(set(stray))
        if name in data.numeric or (
            len(tokens) <= MAX_STRAY_TOKENS and 2 * len(stray) < len(values)
        ):
            if numbers.notna().sum() == 0:
                raise DataError(
                    f"{source}: column {name!r} is declared numeric but holds no number"
                )
            X[name] = pd.to_numeric(series.astype("string").str.strip(), errors="coerce").astype(
                "float64"
            )
            if tokens:
                _warn(
                    f"{source}: column {name!r} is numeric apart from {len(stray)} cell(s) "
                    f"holding {_listed(tokens)}: read them as missing values (declare them with "
                    "[data] na_values, or keep the column as categories with [data] categorical = "
                    f"[{name!r}])"
                )
        elif _is_date_column(values):
            X[name] = _as_dates(name, series, source)
            dates.append(str(name))
    return X, tuple(dates)


def _is_date_column(values: pd.Series) -> bool:
    """Whether nearly all of a text column's values (stripped, not missing) are ISO dates."""
    dated = values.str.fullmatch(ISO_DATE)
    if dated.mean() < DATE_SHARE:
        return False
    parsed = pd.to_datetime(values[dated], format="ISO8601", utc=True, errors="coerce")
    return parsed.notna().sum() >= DATE_SHARE * len(values)


def _as_dates(name: str, series: pd.Series, source: str) -> pd.Series:
    """A date column's text, stripped, with the cells that are not ISO dates missing (a warning
    names them)."""
    text = series.astype("string").str.strip()
    iso = text.where(text.str.fullmatch(ISO_DATE).fillna(False).astype(bool))
    parsed = pd.to_datetime(iso, format="ISO8601", utc=True, errors="coerce")
    stray = text[parsed.isna() & text.notna()]
    if len(stray):
        _warn(
            f"{source}: column {name!r} holds dates apart from {len(stray)} cell(s) holding "
            f"{_listed(sorted(set(stray)))}: read them as missing values (or keep the column as "
            f"categories with [data] categorical = [{name!r}])"
        )
    return text.mask(parsed.isna())


def leave_out_identifiers(
    X: pd.DataFrame, data: DataConfig, source: str, dates: tuple[str, ...] = ()
) -> pd.DataFrame:
    """``X`` without the columns that look like row identifiers (see :func:`_looks_like_an_id`),
    as if ``[data] drop`` named them: their values cannot carry to new rows, and one-hot encoded
    they make the network large for nothing. A :class:`DataWarning` names them. Columns named in
    ``keep``, ``categorical`` or ``numeric`` and date columns stay."""
    settled = {*data.keep, *data.categorical, *data.numeric, *dates}
    found = {
        name: why
        for name in X.columns
        if name not in settled and (why := _looks_like_an_id(str(name), X[name]))
    }
    if not found:
        return X
    if len(found) == X.shape[1]:
        raise DataError(
            f"{source}: every feature column looks like an identifier ({_whys(found)}); "
            f"keep them with [data] keep = {[str(n) for n in found]!r} if they are features"
        )
    _warn(
        f"{source}: left out column(s) that look like identifiers, whose values cannot carry to "
        f"new rows: {_whys(found)}; keep them with [data] keep = {[str(n) for n in found]!r}"
    )
    return X.drop(columns=list(found))


def leave_out_empty(X: pd.DataFrame, source: str) -> pd.DataFrame:
    """``X`` without the columns that hold no value at all, with a :class:`DataWarning` naming
    them: imputed, such a column would be a constant the network learns nothing from, and the
    served model would require it."""
    empty = [name for name in X.columns if X[name].isna().all()]
    if not empty or len(empty) == X.shape[1]:
        return X
    names = ", ".join(repr(str(n)) for n in empty)
    _warn(f"{source}: left out column(s) with no values at all: {names}")
    return X.drop(columns=empty)


def _whys(found: dict) -> str:
    return ", ".join(f"{str(name)!r} ({why})" for name, why in found.items())


def _looks_like_an_id(name: str, series: pd.Series) -> str:
    """Why ``series`` looks like a row identifier ('' if it does not)."""
    present = series.dropna()
    n = len(present)
    if n < MIN_ROWS:
        return ""
    levels = present.nunique()
    if text_values(series) is not None:
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
        return "distinct integers under an id-like name"
    return ""


def _listed(tokens: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(t) for t in tokens[:limit])
    return shown + (f" and {len(tokens) - limit} more" if len(tokens) > limit else "")


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
            raise DataError(f'target column {name!r} is not numeric; use task = "classification"')
        values = y.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"target column {name!r} holds infinite values")
        return values, None
    if pd.api.types.is_float_dtype(y.dtype) and not np.all(
        np.mod(y.to_numpy(dtype=np.float64), 1) == 0
    ):
        raise DataError(
            f'target column {name!r} holds non-integer numbers; use task = "regression"'
        )
    codes, uniques = pd.factorize(y, sort=True)
    labels = np.asarray(uniques.to_numpy())
    if labels.dtype.kind in "OUT":
        labels = labels.astype(str).astype(object)
    classes = tuple(labels.tolist())
    if len(classes) < 2:
        raise DataError(
            f"target column {name!r} has a single class ({classes[0]!r}); "
            "classification needs two or more"
        )
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


def split_rows(y: np.ndarray, task: str, config: StudyConfig) -> tuple[np.ndarray, ...]:
    """The positions of the training, validation and test rows: ``test_fraction`` of the rows
    for test, ``validation_fraction`` for validation, stratified for classification, fixed by
    the study's seed (scikit-learn's ``train_test_split``, twice)."""
    d = config.data
    stratify = y if task == "classification" else None
    rest, test = train_test_split(
        np.arange(len(y)), test_size=d.test_fraction, random_state=config.seed, stratify=stratify
    )
    val_share = d.validation_fraction / (1.0 - d.test_fraction)
    train, val = train_test_split(
        rest,
        test_size=val_share,
        random_state=config.seed,
        stratify=y[rest] if stratify is not None else None,
    )
    return train, val, test


def in_split_order(X: pd.DataFrame, order: np.ndarray) -> pd.DataFrame:
    """``X``'s rows at positions ``order``, taken one column at a time and removed from ``X`` as
    they are: the data is held about once, not twice, while its rows are reordered."""
    columns, index = X.columns, X.index[order]
    taken = {i: X.pop(name).iloc[order].array for i, name in enumerate(list(columns))}
    ordered = pd.DataFrame(taken, index=index, copy=False)
    ordered.columns = columns
    return ordered


def load_splits(config: StudyConfig, check: bool = True) -> Splits:
    """Load, split and preprocess a study's data.

    The split is stratified for classification and fixed by ``config.seed``. With ``check``, also
    runs :func:`tuner.study.config.check_against_data` (batch sizes, binary-only metrics), which
    raises ConfigError.
    """
    task = config.task
    X, y_raw, dates = load_frame(config)
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
                f"{config.data.source}: class(es) {', '.join(map(repr, rare))} have fewer than "
                f"{MIN_PER_CLASS} rows; stratified train/validation/test splits need at least "
                "that many per class"
            )
    try:
        rows = split_rows(y, task, config)
    except ValueError as exc:
        raise DataError(f"{config.data.source}: cannot split the data: {exc}") from None
    columns = tuple(str(c) for c in X.columns)
    order = np.concatenate(rows)
    X, y = in_split_order(X, order), y[order]
    ends = np.cumsum([len(r) for r in rows])
    train, val, test = slice(0, ends[0]), slice(ends[0], ends[1]), slice(ends[1], ends[2])
    pre = TabularPreprocessor(missing=config.data.missing, dates=dates)
    try:
        pre.fit(X.iloc[train])
        Xt = pre.transform(X)  # row by row, the same as transforming each split on its own
    except ValueError as exc:
        raise DataError(f"{config.data.source}: {exc}") from None
    n_classes = len(classes) if classes is not None else None
    if check:
        check_against_data(config, len(rows[0]), n_classes)
    return Splits(
        X_train=X.iloc[train],
        X_val=X.iloc[val],
        X_test=X.iloc[test],
        y_train=y[train],
        y_val=y[val],
        y_test=y[test],
        preprocessor=pre,
        Xt_train=Xt[train],
        Xt_val=Xt[val],
        Xt_test=Xt[test],
        task=task,
        n_classes=n_classes,
        classes=classes,
        feature_names=tuple(str(n) for n in pre.get_feature_names_out()),
        target_name=str(y_raw.name),
        fingerprint=fingerprint(X.iloc[train], y[train]),
        columns=columns,
        rows=X,
    )
