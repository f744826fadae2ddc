"""Reading a study's data file: its columns, its delimiter, missing-value tokens, and the task
its target column implies when the study file names none.

:mod:`tuner.study.sections` uses :func:`infer_task` while it validates a study file, and
:mod:`tuner.data.loading` reads the whole file with :func:`read_file`; this module imports neither.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from tuner.errors import DataError

#: What a study learns: class labels or numbers.
Task = Literal["classification", "regression"]
#: The file types a data source may have.
DATA_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
#: Delimiters a text file may use, tried by csv.Sniffer on its first bytes (comma when unsure).
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
#: A text file is parsed in pieces of about this many bytes of float64 columns
#: (:func:`read_csv_chunked`).
CHUNK_BYTES = 64 * 1024 * 1024
NUMBER_WITH_DECIMAL_COMMA = r"[+-]?\d*,\d+(?:[eE][+-]?\d+)?"
#: A target of whole numbers with at most this many distinct values is read as class labels
#: when the study file gives no task (scikit-learn's ``type_of_target`` calls any whole numbers
#: "multiclass"; beyond a few dozen values they are far more often counts or amounts).
MAX_INFERRED_CLASSES = 20


class DataWarning(UserWarning):
    """The data loaded, but it may not be read as the study means: numbers or dates with stray
    tokens read as missing, identifier-like columns left out, rows without a target dropped, a
    task inferred from the target. The message names the columns and the ``[data]`` key that
    settles it; the study goes on."""


def warn(message: str) -> None:
    warnings.warn(message, DataWarning, stacklevel=3)


def check_target(source: str, columns: list[str], target: str) -> None:
    """DataError naming the file's columns when ``target`` is not one of them."""
    if target in columns:
        return
    shown = ", ".join(columns[:20])
    hint = ""
    if len(columns) == 1 and any(d in columns[0] for d in DELIMITERS[1:]):
        hint = "; the file seems to use another delimiter than ',' and it was not detected"
    raise DataError(f"{source}: target column {target!r} not found (columns: {shown}){hint}")


def read_file(
    path: Path, categorical: list[str] | tuple[str, ...] = (), columns: list[str] | None = None
) -> pd.DataFrame:
    """A .csv/.tsv/.parquet file as a DataFrame (only ``columns``, if given); DataError with one
    line if it cannot be read or names a column twice (pandas would rename the second ``x.1``).

    A text file's delimiter is sniffed (comma, semicolon, tab, pipe); semicolon and tab files
    with decimal commas ("1,5") are read as numbers. ``categorical`` columns of a text file are
    read as text, as written.
    """
    names = column_names(path)  # refuses a file that names a column twice
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path, columns=columns)
        sep = _delimiter(path)
        as_text = {name: "string" for name in categorical}  # names absent from the file are ignored
        rows = max(1_000, CHUNK_BYTES // (8 * max(1, len(columns or names))))
        options = {"sep": sep, "dtype": as_text, "usecols": columns}
        frame = read_csv_chunked(path, rows, **options)
        if sep != "," and _has_decimal_commas(frame):
            frame = read_csv_chunked(path, rows, **options, decimal=",")
        return frame
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise _unreadable(path, exc) from None


def read_csv_chunked(path: Path, chunk_rows: int, **options) -> pd.DataFrame:
    """``pd.read_csv(path, **options)``, the same frame, read ``chunk_rows`` rows at a time so that
    the peak memory is the frame and one piece, not the frame twice (:func:`read_file` sizes the
    pieces to about :data:`CHUNK_BYTES` of float64 columns).

    A whole-file ``read_csv`` holds every parsed piece and the columns built from them at once
    (about twice the frame). Here each piece's columns are copied out one by one and the piece
    dropped; each column is then joined from its pieces and its pieces dropped. A column whose
    pieces were typed differently (numbers in one, text in another; whole numbers, then gaps) is
    read again alone, so that pandas types it from all its values as a whole-file read does.
    """
    pieces: dict[str, list[pd.Series]] = {}
    for chunk in pd.read_csv(path, chunksize=chunk_rows, **options):
        for name in chunk.columns:
            pieces.setdefault(name, []).append(chunk[name].copy(deep=True))
        del chunk
    if not pieces:  # a header without rows
        return pd.read_csv(path, **options)
    columns = {}
    for name in list(pieces):
        parts = pieces.pop(name)
        if len({str(part.dtype) for part in parts}) == 1:
            columns[name] = pd.concat(parts, ignore_index=True)
        else:
            columns[name] = pd.read_csv(path, **{**options, "usecols": [name]})[name]
        del parts
    return pd.DataFrame(columns, copy=False)


def column_names(path: Path) -> list[str]:
    """The column names of a data file as written (a text file's first line, a Parquet file's
    schema); DataError with one line if it cannot be read or names a column twice."""
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file extension {path.suffix!r} (allowed: .csv, .tsv, .parquet)"
        )
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = list(pq.read_schema(path).names)
        else:
            with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as fh:
                names = next(csv.reader(fh, delimiter=_delimiter(path)), [])
    except Exception as exc:  # pyarrow and the csv module raise several types for unreadable files
        raise _unreadable(path, exc) from None
    _refuse_duplicates(path, names)
    return names


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else sniff_delimiter(path)


def _unreadable(path: Path, exc: Exception) -> DataError:
    return DataError(f"{path}: cannot read file: {type(exc).__name__}: {exc}".splitlines()[0])


def _refuse_duplicates(path: Path, names: list[str]) -> None:
    """DataError naming the column names a file uses more than once (empty names aside: the
    reader numbers those)."""
    counts = Counter(name for name in names if name.strip())
    twice = [f"{name!r} ({n} times)" for name, n in counts.items() if n > 1]
    if twice:
        raise DataError(
            f"{path}: duplicate column name(s) {', '.join(twice)}: "
            "give each column its own name in the header"
        )


def check_target_has_values(source: str, y: pd.Series) -> None:
    """DataError when the target column ``y`` has no value at all (every row missing)."""
    if y.notna().sum() == 0:
        raise DataError(
            f"{source}: target column {y.name!r} has no values (all {len(y)} rows are missing)"
        )


def infer_task(source: str, target: str | None, na_values: list[str]) -> Task:
    """The task of a file source whose study file gives none, from its target column as
    scikit-learn's ``type_of_target`` reads it: text, true/false or categories are classes;
    numbers with fractions are a regression; whole numbers are classes when at most
    :data:`MAX_INFERRED_CLASSES` distinct values, else a regression. A :class:`DataWarning`
    says what was inferred and how to set it."""
    path = Path(source)
    if target is None:
        raise DataError(f"{source}: data.target is required for file sources")
    check_target(source, column_names(path), target)  # before reading that one column
    y = mark_missing(read_file(path, columns=[target]), na_values)[target]
    check_target_has_values(source, y)
    y = y.dropna()
    task, why = _task_of(y)
    other = "regression" if task == "classification" else "classification"
    warn(
        f"{source}: no data.task given: the target {target!r} holds {why}, so the task is {task} "
        f'(set [data] task = "{other}" to change it)'
    )
    return task


def _task_of(y: pd.Series) -> tuple[Task, str]:
    """(task, what the values are) of a target's non-missing values."""
    dtype = y.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "classification", "true/false values"
    if isinstance(dtype, pd.CategoricalDtype):
        return "classification", "categories"
    if not pd.api.types.is_numeric_dtype(dtype):
        return "classification", "text"
    values = y.to_numpy(dtype=np.float64)
    if not np.all(np.mod(values, 1) == 0):
        return "regression", "numbers with fractions"
    levels = len(np.unique(values))
    held = f"whole numbers with {levels} distinct value(s)"
    if levels <= MAX_INFERRED_CLASSES:
        return "classification", f"{held} ({MAX_INFERRED_CLASSES} or fewer are read as classes)"
    return "regression", f"{held} (more than {MAX_INFERRED_CLASSES} are read as amounts)"


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
        values = text_values(frame[name])
        if (
            values is not None
            and len(values)
            and values.str.fullmatch(NUMBER_WITH_DECIMAL_COMMA).all()
        ):
            return True
    return False


def text_values(series: pd.Series) -> pd.Series | None:
    """The non-missing values of a text column, stripped; None for other columns."""
    if not (
        pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype)
    ):
        return None
    return series.dropna().astype(str).str.strip()


def mark_missing(frame: pd.DataFrame, tokens: list[str]) -> pd.DataFrame:
    """``frame`` with cells equal to one of ``tokens`` missing: text cells by their stripped text,
    numeric cells by value (so "-999" matches -999 and -999.0)."""
    if not tokens:
        return frame
    texts = {t.strip() for t in tokens}
    numbers = pd.to_numeric(pd.Series(sorted(texts)), errors="coerce").dropna().tolist()
    frame = frame.copy(deep=False)  # copy-on-write: columns replaced below, the caller's kept
    for name in frame.columns:
        series = frame[name]
        if text_values(series) is not None:
            frame[name] = series.mask(series.astype("string").str.strip().isin(texts))
        elif (
            numbers
            and pd.api.types.is_numeric_dtype(series.dtype)
            and not pd.api.types.is_bool_dtype(series.dtype)
        ):
            hit = series.isin(numbers)
            if hit.any():
                frame[name] = series.astype("float64").mask(hit)
    return frame
