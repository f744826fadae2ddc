"""Commands printed in hints, spelled so that they work when pasted into the same shell.

After ``make tune`` (or any ``.venv/bin/tuner ...``), the virtual environment's ``bin`` is not
on ``PATH``: a hint saying ``tuner ui`` would answer "command not found". The scripts of the
running installation sit beside ``sys.executable``, so hints name them by that folder unless the
shell already finds the same script on ``PATH``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def _bin() -> Path:
    return Path(os.path.abspath(sys.executable)).parent


def _same_file(a: str | Path | None, b: Path) -> bool:
    return a is not None and os.path.realpath(a) == os.path.realpath(b)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it (``.venv/bin/tuner``),
    else absolute; quoted for the shell."""
    try:
        text = str(path.relative_to(Path.cwd()))
        text = text if "/" in text else f"./{text}"
    except ValueError:
        text = str(path)
    return shlex.quote(text)


def tuner_command() -> str:
    """``tuner`` if the shell finds this installation's script on ``PATH``, else its path
    (``.venv/bin/tuner``), else ``<python> -m tuner.cli.app``."""
    script = _bin() / "tuner"
    found = shutil.which("tuner")
    if script.is_file():
        return "tuner" if _same_file(found, script) else _shown(script)
    if found:
        return "tuner"
    return f"{shlex.quote(sys.executable)} -m tuner.cli.app"
