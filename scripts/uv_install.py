"""``uv pip install`` from the package sources pip is configured with.

uv does not read pip's configuration: on a machine whose pip installs from a mirror (a company
index, a local wheel folder, an offline copy) uv would go to pypi.org instead, and fail or
download what the mirror already has. This script reads pip's settings through its own command,
``pip config list`` (configuration files and ``PIP_*`` variables, already merged by pip), and
passes the ones that choose packages to uv: index URL, extra index URLs, find-links, no-index,
constraint files, trusted hosts and the CA bundle. uv keeps its own rule for several indexes
(a package comes from the first index that has it, extra indexes before the main one, against
dependency confusion), where pip takes the best version across all of them. Used by the Makefile's install step, with the
interpreter that creates the venv; the standard library alone.

    python3 scripts/uv_install.py UV PYTHON PACKAGE_ARGS...

runs ``UV pip install --quiet --python PYTHON <sources> PACKAGE_ARGS...`` and exits with its code.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

#: pip setting -> uv option, for settings that may list several values (whitespace-separated).
LISTS = {
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
#: Sections of pip's merged configuration, the first found wins: environment variables, then
#: the install command's section, then the global one.
SECTIONS = (":env:", "install", "global")


def pip_settings(python: str = sys.executable) -> dict[str, str]:
    """pip's configured settings by name, each from the section that wins; empty when this
    interpreter has no pip or pip cannot list its configuration."""
    try:
        listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[tuple[str, str], str] = {}
    for line in listed.splitlines():
        name, sep, value = line.partition("=")
        section, dot, key = name.rpartition(".")
        if not (sep and dot) or section not in SECTIONS:
            continue
        try:
            found[section, key] = str(ast.literal_eval(value))  # pip prints repr() of each value
        except (ValueError, SyntaxError):
            continue
    settings: dict[str, str] = {}
    for section in reversed(SECTIONS):  # later sections in the loop override earlier ones
        settings.update({key: value for (sec, key), value in found.items() if sec == section})
    return settings


def uv_options(settings: dict[str, str]) -> list[str]:
    """The uv options that make it install from the same sources as pip with ``settings``."""
    options: list[str] = []
    if settings.get("index-url"):
        options += ["--index-url", settings["index-url"]]
    for key, flag in LISTS.items():
        for value in settings.get(key, "").split():
            options += [flag, value]
    if settings.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        options.append("--no-index")
    return options


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: uv_install.py UV PYTHON PACKAGE_ARGS...", file=sys.stderr)
        return 2
    uv, python, packages = argv[0], argv[1], argv[2:]
    settings = pip_settings()
    env = dict(os.environ)
    if settings.get("cert") and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = settings["cert"]  # the CA bundle pip trusts (a company proxy's)
    command = [uv, "pip", "install", "--quiet", "--python", python, *uv_options(settings), *packages]
    return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
