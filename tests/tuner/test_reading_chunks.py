"""A text file read in pieces is the frame one whole-file ``pd.read_csv`` gives, value for value
and type for type, whatever the pieces' own types were."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuner.data.reading import read_csv_chunked, read_file

#: Files whose columns change type from one 3-row piece to the next.
FILES = {
    "numbers": "a,b\n1,2.5\n3,4.5\n5,6.5\n7,8.5\n9,10.5\n",
    "gaps_after_whole_numbers": "a,b\n1,x\n2,y\n3,z\n,w\n5,v\n6,u\n7,t\n",
    "text_after_numbers": "a,b\n1,1\n2,2\n3,3\n4,four\n5,5\n",
    "booleans_then_gap": "flag,n\nTrue,1\nFalse,2\nTrue,3\n,4\nFalse,5\n",
    "empty_piece": "a,b\n1,\n2,\n3,\n4,\n5,\n6,x\n",
    "one_row": "a,b\n1,x\n",
    "header_only": "a,b\n",
    "quoted_newlines": 'a,b\n1,"x\ny"\n2,z\n3,w\n4,"v,u"\n',
}


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("chunk_rows", [1, 3, 1000])
def test_pieces_give_the_whole_file_frame(tmp_path: Path, name: str, chunk_rows: int) -> None:
    path = tmp_path / f"{name}.csv"
    path.write_text(FILES[name])
    expected = pd.read_csv(path)
    got = read_csv_chunked(path, chunk_rows=chunk_rows)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_options_reach_every_piece(tmp_path: Path) -> None:
    """Delimiter, decimal comma, text columns and a column subset, as pandas reads them."""
    path = tmp_path / "semicolons.csv"
    path.write_text("a;b;c\n1,5;x;7\n2,5;y;8\n3,5;z;9\n4,5;01;10\n")
    options = {"sep": ";", "decimal": ",", "dtype": {"b": "string"}, "usecols": ["a", "b"]}
    expected = pd.read_csv(path, **options)
    got = read_csv_chunked(path, chunk_rows=2, **options)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["b"].tolist() == ["x", "y", "z", "01"]


def test_a_generated_table_matches_and_holds_less_at_its_peak(tmp_path: Path) -> None:
    """20,000 rows of floats and text in pieces of 2,000 rows: the same frame as one whole read,
    with a lower peak of traced allocations (pandas' parser allocates through NumPy)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(20_000, 12)).round(4), columns=[f"x{i}" for i in range(12)]
    )
    frame["colour"] = rng.choice(["red", "green", "blue"], size=len(frame))
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)

    def peak(read):
        tracemalloc.start()
        try:
            result = read()
            return result, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    expected, whole_peak = peak(lambda: pd.read_csv(path))
    got, pieces_peak = peak(lambda: read_csv_chunked(path, chunk_rows=2_000))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert pieces_peak < whole_peak


def test_read_file_reads_text_files_in_pieces(tmp_path: Path, monkeypatch) -> None:
    """read_file goes through the piecewise reader, with the study's text columns."""
    path = tmp_path / "data.csv"
    path.write_text("a,code,label\n1,007,x\n2,010,y\n3,011,x\n")
    monkeypatch.setattr("tuner.data.reading.CHUNK_BYTES", 1)  # the 1,000-row floor: one piece
    calls = []
    real = read_csv_chunked

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr("tuner.data.reading.read_csv_chunked", spy)
    frame = read_file(path, categorical=["code"])
    assert len(calls) == 1
    assert frame["code"].tolist() == ["007", "010", "011"]
    assert frame["a"].dtype == np.int64
