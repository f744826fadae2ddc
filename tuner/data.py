"""Loading a study's data and splitting it into train / validation / test, preprocessed on train only."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from model.preprocessing import TabularPreprocessor

from .config import StudyConfig, check_against_data
from .errors import DataError

SKLEARN_LOADERS = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
    "diabetes": datasets.load_diabetes,
}
FILE_READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}
MIN_ROWS = 20
MIN_PER_CLASS = 3


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


def load_frame(source: str, target: str | None) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of `sklearn:<name>` (bundled, no download) or a .csv/.parquet file."""
    if source.startswith("sklearn:"):
        name = source.removeprefix("sklearn:")
        if name not in SKLEARN_LOADERS:
            raise DataError(f"unknown sklearn dataset {source!r} (allowed: {', '.join(SKLEARN_LOADERS)})")
        bunch = SKLEARN_LOADERS[name](as_frame=True)
        return bunch.data, bunch.target.rename("target")
    path = Path(source)
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported file extension {path.suffix!r} (allowed: .csv, .parquet)")
    try:
        frame = reader(path)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read file: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if target is None:
        raise DataError(f"{path}: data.target is required for file sources")
    if target not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:20]))
        raise DataError(f"{path}: target column {target!r} not found (columns: {shown})")
    return frame.drop(columns=[target]), frame[target]


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
    X, y_raw = load_frame(config.data.source, config.data.target)
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
