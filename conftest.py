"""The Python blocks of the README and of the guides in docs/ run as tests (sybil): ```python
fences and the ``<!-- invisible-code-block: python -->`` comments that set up their data and
check their claims, in one namespace per file, in a scratch folder. A block preceded by
``<!-- skip: next -->`` is not run here: it needs a study's exported model, and
tests/e2e/test_readme_own_csv.py runs the README's on one. Test modules' fixtures live in
tests/conftest.py."""

import pytest

try:
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser
except ImportError:  # a venv installed before sybil joined the dev extras: the tests still run
    Sybil = None


@pytest.fixture
def _readme_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write files (digits.npz)
    return tmp_path


if Sybil is not None:
    pytest_collect_file = Sybil(
        parsers=[PythonCodeBlockParser(), SkipParser()],
        patterns=["README.md", "docs/*.md"],
        fixtures=["_readme_folder"],
    ).pytest()


def pytest_itemcollected(item):
    """A document's blocks share one namespace: keep them on one xdist worker, in order (the mark
    is set as each item is collected, before xdist's --dist loadgroup reads it), one group per
    document."""
    if item.path.suffix == ".md":
        item.add_marker(pytest.mark.xdist_group(f"doc-{item.path.parent.name}-{item.path.stem}"))
