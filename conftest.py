"""The README's Python blocks run as tests (sybil): ```python fences and the
``<!-- invisible-code-block: python -->`` comments that set up their data and check their claims,
in one namespace per file, in a scratch folder. Test modules' fixtures live in tests/conftest.py."""

import pytest

try:
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser
except ImportError:  # a venv installed before sybil joined the dev extras: the tests still run
    Sybil = None


@pytest.fixture
def _readme_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write files (digits.npz)
    return tmp_path


if Sybil is not None:
    pytest_collect_file = Sybil(
        parsers=[PythonCodeBlockParser()],
        patterns=["README.md"],
        fixtures=["_readme_folder"],
    ).pytest()



def pytest_itemcollected(item):
    """A document's blocks share one namespace: keep them on one xdist worker, in order (the mark
    is set as each item is collected, before xdist's --dist loadgroup reads it)."""
    if item.path.name == "README.md":
        item.add_marker(pytest.mark.xdist_group("readme"))
