"""A study's prepared data shared by the processes of ``tuner run --jobs``.

Each worker process would otherwise read and prepare the data again, and hold its own frame and
its own float32 matrix beside the command's process, which keeps its copy for the final model.
Instead the command's process writes its prepared matrix once, as a ``.npy`` file in a scratch
folder of the system's temporary directory, and every process of the run maps that file
read-only: the operating system holds its pages once for all of them. A worker receives the rest
of the prepared data (the targets, the fitted preprocessing, the fingerprint) pickled, with the
raw rows only when its trials need them (``raw_rows``: more validation splits drawn from the raw
training and validation rows, :mod:`tuner.search.resampling`); otherwise its raw frames hold no
rows. The folder is removed when the run ends, also on Ctrl-C or an error.

A worker started on its own (``tuner worker``, possibly on another host) reads and prepares the
data itself (:func:`tuner.data.loading.load_splits`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuner.data.loading import Splits

#: The prepared matrix's file in the run's scratch folder.
MATRIX_FILE = "prepared.npy"


@dataclass(frozen=True)
class SharedSplits:
    """A study's :class:`Splits` as handed to a worker process: the file of its prepared matrix,
    and the rest of the splits without their arrays (pickled)."""

    path: Path
    rest: Splits

    def open(self) -> Splits:
        """The study's splits, their float32 arrays read-only memory maps of :attr:`path`."""
        return with_matrix(self.rest, np.load(self.path, mmap_mode="r"))


def with_matrix(splits: Splits, matrix: np.ndarray) -> Splits:
    """``splits`` with ``Xt_train``, ``Xt_val`` and ``Xt_test`` the consecutive row slices of
    ``matrix`` (every prepared row, in split order)."""
    ends = np.cumsum([len(splits.y_train), len(splits.y_val), len(splits.y_test)])
    if matrix.shape[0] != ends[-1]:
        raise ValueError(f"prepared matrix of {matrix.shape[0]} rows for {ends[-1]} targets")
    return dataclasses.replace(
        splits,
        Xt_train=matrix[: ends[0]],
        Xt_val=matrix[ends[0] : ends[1]],
        Xt_test=matrix[ends[1] :],
    )


def write_matrix(splits: Splits, path: Path) -> None:
    """Write the prepared rows of ``splits``, training, validation then test, as one ``.npy``
    file, one split at a time (no concatenated copy in memory)."""
    parts = (splits.Xt_train, splits.Xt_val, splits.Xt_test)
    shape = (sum(len(p) for p in parts), *splits.Xt_train.shape[1:])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=splits.Xt_train.dtype, shape=shape)
    start = 0
    for part in parts:
        out[start : start + len(part)] = part
        start += len(part)
    out.flush()
    del out


def _without_arrays(splits: Splits, raw_rows: bool) -> Splits:
    """``splits`` with no prepared rows, and no raw rows unless ``raw_rows``: what a worker is
    sent beside the matrix's file."""
    # A new empty array, not a slice: a slice would keep the whole matrix alive.
    none = np.empty((0, *splits.Xt_train.shape[1:]), splits.Xt_train.dtype)
    rest = dataclasses.replace(splits, Xt_train=none, Xt_val=none, Xt_test=none)
    if raw_rows:
        return rest
    empty = splits.rows.iloc[:0]
    return dataclasses.replace(rest, rows=empty, X_train=empty, X_val=empty, X_test=empty)


@contextlib.contextmanager
def shared_splits(splits: Splits, raw_rows: bool) -> Iterator[tuple[Splits, SharedSplits]]:
    """Write the prepared matrix of ``splits`` to a new scratch folder, for the block.

    Yields the same splits with their float32 arrays mapped from that file (the caller uses them
    instead of ``splits``, so that its own copy is freed), and what a worker process needs to open
    them (:meth:`SharedSplits.open`; ``raw_rows``: see the module's docstring). The folder and the
    file are removed when the block ends, however it ends.
    """
    with tempfile.TemporaryDirectory(prefix="tuner-run-") as folder:
        path = Path(folder) / MATRIX_FILE
        write_matrix(splits, path)
        shared = SharedSplits(path, _without_arrays(splits, raw_rows))
        mapped = with_matrix(splits, np.load(path, mmap_mode="r"))
        del splits  # held here no longer: the caller's copy is freed when it drops its own
        yield mapped, shared
