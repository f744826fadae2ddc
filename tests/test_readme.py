"""The README's commands and claims as a new user meets them (issue 18)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_pip_commands_install_into_the_venv():
    """A bare `pip install` installs into whatever pip is first on PATH, not the project's venv."""
    for doc in (REPO / "README.md", REPO / "bench" / "README.md"):
        for line in doc.read_text().splitlines():
            for match in re.finditer(r"(\S*)pip install", line):
                assert match.group(1).endswith(".venv/bin/"), f"{doc.name}: {line.strip()}"


def test_run_study_returns_what_the_readme_says():
    from tuner.runner import StudyResult, run_study

    assert run_study.__annotations__["return"] in ("StudyResult", StudyResult)
    claim = re.search(r"it returns a `StudyResult`:(.*?)\n\n|it returns a `StudyResult`:(.*?)\n- ", README, re.S)
    assert claim, "the README describes run_study's result"
    fields = {f.name for f in dataclasses.fields(StudyResult)}
    named = set(re.findall(r"`\.(\w+)`", claim.group(0)))
    assert named and named <= fields
