"""Tabular preprocessing: standardise numeric and date columns, one-hot encode categorical ones.

Missing values are imputed (or refused). The fitted state is plain numbers and strings, so it
round-trips through JSON (`to_dict`/`from_dict`) without pickle and transforms bit-identically
afterwards.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .parameters import DTYPES

FORMAT = "tabular-preprocessor"
VERSION = 1
MISSING_POLICIES = ("impute", "error")
#: The day date columns count from: a date is encoded as its (fractional) days since this one, UTC.
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )


def _is_date(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series.dtype)


def _is_categorical(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _names(columns: list[str]) -> str:
    return ", ".join(repr(c) for c in columns)


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Numeric columns -> (x - mean) / std; categorical ones -> one-hot; missing -> median / mode.

    Missing numbers become the column's median and missing categories its most frequent one.
    Categorical columns are those of object, string, category or bool dtype. Categories unseen at
    fit time encode as all zeros. With missing="error", missing values raise ValueError instead.
    Date columns (the names in ``dates``, written as ISO 8601 text such as "2024-01-31" or
    "2024-01-31T08:15:00+01:00", and columns of datetime dtype) become their days since
    1970-01-01 UTC, standardised like numbers: the fitted state keeps them as dates, so a saved
    model takes the raw date text it was trained on.

    ``transform`` writes its output (``dtype``, float32 by default: what the network trains on)
    into one array, column by column, each computed in float64 and rounded once.
    """

    def __init__(
        self, missing: str = "impute", dates: tuple[str, ...] = (), dtype: str = "float32"
    ) -> None:
        self.missing = missing
        self.dates = dates
        self.dtype = dtype

    def fit(self, X: pd.DataFrame | np.ndarray, y: Any = None) -> TabularPreprocessor:
        """Learn the column kinds, statistics and categories from X."""
        if self.missing not in MISSING_POLICIES:
            raise ValueError(
                f"missing must be one of {', '.join(MISSING_POLICIES)} (got {self.missing!r})"
            )
        self._output_dtype()
        frame, is_frame = _as_frame(X, None)
        if frame.shape[0] == 0:
            raise ValueError("cannot fit on zero rows")
        if self.missing == "error":
            self._refuse_missing(frame)
        absent = [name for name in self.dates if name not in frame.columns]
        if absent:
            raise ValueError(f"dates names column(s) not in the data: {_names(absent)}")
        columns: list[dict[str, Any]] = []
        for name in frame.columns:
            series = frame[name]
            if name in self.dates or _is_date(series):
                columns.append(_fit_date(name, series))
            elif _is_numeric(series):
                columns.append(_fit_numeric(name, series))
            elif _is_categorical(series):
                columns.append(_fit_categorical(name, series))
            else:
                raise ValueError(
                    f"column {name!r} has unsupported dtype {series.dtype} "
                    "(numeric, date or categorical)"
                )
        self._set_state(columns, is_frame)
        return self

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Encode X: a DataFrame with the fitted columns in any order, or an array in that order."""
        check_is_fitted(self, "columns_")
        frame, _ = _as_frame(X, self.columns_)
        absent = [c["name"] for c in self.columns_state_ if c["name"] not in frame.columns]
        if absent:
            raise ValueError(f"missing column(s): {_names(absent)}")
        if self.missing == "error":
            self._refuse_missing(frame[self.columns_])
        widths = [
            len(s["categories"]) if s["kind"] == "categorical" else 1 for s in self.columns_state_
        ]
        out = np.empty((frame.shape[0], sum(widths)), dtype=self._output_dtype())
        start = 0
        for state, width in zip(self.columns_state_, widths, strict=True):
            series = frame[state["name"]]
            if state["kind"] == "numeric":
                out[:, start] = _transform_numeric(state, series)
            elif state["kind"] == "date":
                out[:, start] = _transform_date(state, series)
            else:
                out[:, start : start + width] = _transform_categorical(state, series)
            start += width
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names.

        Numeric and date columns keep their name; one-hot columns are '<column>_<category>'.
        """
        check_is_fitted(self, "columns_")
        names: list[str] = []
        for state in self.columns_state_:
            if state["kind"] in ("numeric", "date"):
                names.append(state["name"])
            else:
                names.extend(f"{state['name']}_{cat}" for cat in state["categories"])
        return np.asarray(names, dtype=object)

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-safe plain data (lists, floats, strings; no NaN)."""
        check_is_fitted(self, "columns_")
        return {
            "format": FORMAT,
            "version": VERSION,
            "missing": self.missing,
            "dtype": self.dtype,
            "input_was_frame": self.input_was_frame_,
            "columns": [dict(state) for state in self.columns_state_],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularPreprocessor:
        """Rebuild a fitted preprocessor from `to_dict()` output."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        if d.get("version") != VERSION:
            raise ValueError(
                f"unsupported {FORMAT} version {d.get('version')!r} (this code reads {VERSION})"
            )
        columns: list[dict[str, Any]] = []
        for state in d["columns"]:
            if state.get("kind") in ("numeric", "date"):
                columns.append(
                    {k: (str(v) if k in ("name", "kind") else float(v)) for k, v in state.items()}
                )
            elif state.get("kind") == "categorical":
                columns.append(
                    {
                        "name": str(state["name"]),
                        "kind": "categorical",
                        "categories": [str(c) for c in state["categories"]],
                        "most_frequent": str(state["most_frequent"]),
                    }
                )
            else:
                raise ValueError(
                    f"column {state.get('name')!r} has unknown kind {state.get('kind')!r}"
                )
        pre = cls(
            missing=d["missing"],
            dates=tuple(c["name"] for c in columns if c["kind"] == "date"),
            dtype=str(d.get("dtype", "float64")),  # a state without one was written as float64
        )
        pre._output_dtype()
        pre._set_state(columns, bool(d.get("input_was_frame", True)))
        return pre

    def _set_state(self, columns: list[dict[str, Any]], is_frame: bool) -> None:
        self.columns_state_ = columns
        self.columns_ = [c["name"] for c in columns]
        self.n_features_in_ = len(columns)
        self.input_was_frame_ = is_frame
        self.numeric_columns_ = [c["name"] for c in columns if c["kind"] == "numeric"]
        self.categorical_columns_ = [c["name"] for c in columns if c["kind"] == "categorical"]
        self.date_columns_ = [c["name"] for c in columns if c["kind"] == "date"]
        self.categories_ = {
            c["name"]: list(c["categories"]) for c in columns if c["kind"] == "categorical"
        }
        if is_frame:
            self.feature_names_in_ = np.asarray(self.columns_, dtype=object)

    def _output_dtype(self) -> type[np.floating]:
        if str(self.dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})")
        return DTYPES[str(self.dtype)]

    def _refuse_missing(self, frame: pd.DataFrame) -> None:
        with_missing = [name for name in frame.columns if frame[name].isna().any()]
        if with_missing:
            raise ValueError(
                f"missing values in column(s) {_names(with_missing)} "
                "(missing='error'; missing='impute' fills them)"
            )


def _as_frame(X: Any, columns: list[str] | None) -> tuple[pd.DataFrame, bool]:
    """X as a DataFrame with string column names; arrays get x0.. (at fit) or the fitted names."""
    if isinstance(X, pd.DataFrame):
        frame = X.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        if frame.columns.duplicated().any():
            duplicated = list(frame.columns[frame.columns.duplicated()])
            raise ValueError(f"duplicate column name(s): {_names(duplicated)}")
        return frame, True
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array or a DataFrame (got {array.ndim} dimension(s))")
    if columns is None:
        names = [f"x{i}" for i in range(array.shape[1])]
    elif array.shape[1] != len(columns):
        raise ValueError(f"expected {len(columns)} columns (got {array.shape[1]})")
    else:
        names = list(columns)
    return pd.DataFrame(array, columns=names), False


def _numeric_values(name: str, series: pd.Series) -> np.ndarray:
    if not _is_numeric(series) and not pd.api.types.is_bool_dtype(series.dtype):
        try:
            series = pd.to_numeric(series, errors="raise")
        except (ValueError, TypeError):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            example = bad.iloc[0] if len(bad) else None
            raise ValueError(f"column {name!r} should be numeric but holds {example!r}") from None
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(values).any():
        raise ValueError(f"column {name!r} holds infinite values")
    return values


def _category_strings(series: pd.Series) -> np.ndarray:
    """Each cell as the text of its category, None where missing. A whole float is written as
    the integer it is: a column of integer codes with an empty cell reads as floats, and its
    ``1.0`` is the category ``1`` of rows read without gaps."""
    # pandas-stubs leave None out of na_value's types; pandas documents it (missing -> None).
    values = series.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    return np.asarray([_category_string(v) for v in values], dtype=object)


def _category_string(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _date_values(name: str, series: pd.Series) -> np.ndarray:
    """Days since :data:`EPOCH` (NaN where missing); ValueError naming the column for a value
    that is not a date."""
    if _is_date(series):
        parsed = pd.to_datetime(series, utc=True)
    else:
        text = series.astype("string").str.strip()
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        bad = text[parsed.isna() & text.notna() & (text != "")]
        if len(bad):
            raise ValueError(
                f"column {name!r} should be a date (ISO 8601, e.g. 2024-01-31) "
                f"but holds {bad.iloc[0]!r}"
            )
    days = (parsed - EPOCH) / pd.Timedelta(days=1)
    return days.to_numpy(dtype=np.float64, na_value=np.nan)


def _fit_date(name: str, series: pd.Series) -> dict[str, Any]:
    return _fit_numeric(name, series, _date_values(name, series), "date")


def _transform_date(state: dict[str, Any], series: pd.Series) -> np.ndarray:
    values = _date_values(state["name"], series)
    values = np.where(np.isnan(values), state["median"], values)
    return (values - state["mean"]) / state["std"]


def _fit_numeric(
    name: str, series: pd.Series, values: np.ndarray | None = None, kind: str = "numeric"
) -> dict[str, Any]:
    """The state of a numeric column (``values``: its numbers when already computed, e.g. a
    date column's days)."""
    values = _numeric_values(name, series) if values is None else values
    present = values[~np.isnan(values)]
    median = float(np.median(present)) if present.size else 0.0
    filled = np.where(np.isnan(values), median, values)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(filled.mean())
        std = float(filled.std())
    if not (np.isfinite(mean) and np.isfinite(std)):
        largest = float(np.abs(present).max())
        raise ValueError(
            f"column {name!r} holds numbers too large to scale (up to {largest:.3g}): "
            "their mean or spread overflows; rescale the column"
        )
    if std == 0.0:
        std = 1.0
    return {"name": name, "kind": kind, "median": median, "mean": mean, "std": std}


def _fit_categorical(name: str, series: pd.Series) -> dict[str, Any]:
    values = _category_strings(series)
    counts = Counter(v for v in values if v is not None)
    most_frequent = min(counts, key=lambda c: (-counts[c], c)) if counts else "missing"
    categories = sorted(set(counts) | {most_frequent})
    return {
        "name": name,
        "kind": "categorical",
        "categories": categories,
        "most_frequent": most_frequent,
    }


def _transform_numeric(state: dict[str, Any], series: pd.Series) -> np.ndarray:
    values = _numeric_values(state["name"], series)
    values = np.where(np.isnan(values), state["median"], values)
    return (values - state["mean"]) / state["std"]


def _transform_categorical(state: dict[str, Any], series: pd.Series) -> np.ndarray:
    values = _category_strings(series)
    # Whole floats, as a saved state may list them.
    if any(c.endswith(".0") for c in state["categories"]):
        raw = series.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
        values = np.asarray(
            [
                str(r) if str(r) in state["categories"] else v
                for r, v in zip(raw, values, strict=True)
            ],
            dtype=object,
        )
    values = np.where(values == None, state["most_frequent"], values)  # noqa: E711 (elementwise)
    categories = np.asarray(state["categories"], dtype=object)
    return values[:, None] == categories[None, :]
