"""Commands the tools print in hints work when pasted as printed (issue 18 item 4): the
virtual environment's ``bin`` is usually not on ``PATH`` (``make tune`` runs ``.venv/bin/tuner``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.cli.hints import tuner_command

BIN = Path(sys.executable).parent


def path_without_venv() -> str:
    """``PATH`` as in a shell where the venv is not activated."""
    keep = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and os.path.realpath(p) != os.path.realpath(BIN)]
    return os.pathsep.join(keep or ["/usr/bin", "/bin"])


def shell(command: str, cwd: Path, path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=os.environ | {"PATH": path},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not (BIN / "tuner").is_file(), reason="needs the installed tuner script beside python")
def test_tuner_hint_runs_without_the_venv_on_path(monkeypatch, tmp_path):
    path = path_without_venv()
    monkeypatch.setenv("PATH", path)
    for cwd in (Path.cwd(), tmp_path):  # relative under the venv's folder, absolute elsewhere
        monkeypatch.chdir(cwd)
        command = tuner_command()
        assert command != "tuner"
        done = shell(f"{command} --help", cwd, path)
        assert done.returncode == 0 and "Tune NumPy MLPs" in done.stdout, done.stderr


@pytest.mark.skipif(not (BIN / "tuner").is_file(), reason="needs the installed tuner script beside python")
def test_tuner_hint_is_plain_when_the_shell_finds_the_same_script(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{path_without_venv()}")
    assert tuner_command() == "tuner"


def test_export_error_names_the_command_that_runs(monkeypatch, tmp_path):
    from tuner.errors import TunerError
    from tuner.result.export import resolve_config

    monkeypatch.chdir(tmp_path)
    with pytest.raises(TunerError) as info:
        resolve_config("nosuch")
    assert f"({tuner_command()} export path/to/nosuch.toml)" in str(info.value)
