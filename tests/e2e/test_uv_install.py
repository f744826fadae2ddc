"""scripts/uv_install.py: uv installs from the package sources pip is configured with."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "uv_install.py"
spec = importlib.util.spec_from_file_location("uv_install", SCRIPT)
uv_install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uv_install)


@pytest.fixture
def pip_config(tmp_path, monkeypatch):
    """A pip configuration file of ours, read last (over the machine's own files), and no PIP_*
    variables of this machine."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    config = tmp_path / "pip.conf"
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    return config


def test_settings_come_from_the_file_and_the_environment_wins(pip_config, monkeypatch):
    pip_config.write_text(
        "[global]\nindex-url = https://mirror.example/simple\nfind-links = /wheels/a\n"
        "extra-index-url =\n    https://one.example/simple\n    https://two.example/simple\n"
        "[install]\nfind-links = /wheels/install\n"
    )
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    settings = uv_install.pip_settings(sys.executable)
    assert settings["index-url"] == "https://env.example/simple"  # PIP_* over the file
    assert settings["find-links"] == "/wheels/install"  # [install] over [global]
    ours = {key: settings[key] for key in ("index-url", "extra-index-url", "find-links")}
    assert uv_install.uv_options(ours) == [
        "--index-url", "https://env.example/simple",
        "--extra-index-url", "https://one.example/simple", "--extra-index-url", "https://two.example/simple",
        "--find-links", "/wheels/install",
    ]


def test_constraints_no_index_and_trusted_hosts_are_passed_on():
    settings = {"constraint": "/etc/c1.txt /etc/c2.txt", "no-index": "true", "trusted-host": "mirror.local",
                "default-timeout": "180"}
    assert uv_install.uv_options(settings) == [
        "--constraint", "/etc/c1.txt", "--constraint", "/etc/c2.txt",
        "--allow-insecure-host", "mirror.local", "--no-index",
    ]


def test_no_configuration_gives_no_options(monkeypatch):
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip then reads no configuration file
    assert uv_install.uv_options(uv_install.pip_settings(sys.executable)) == []


def test_an_interpreter_without_pip_gives_no_settings(tmp_path):
    assert uv_install.pip_settings(str(tmp_path / "no-python")) == {}


def test_the_command_run_carries_the_sources_and_the_ca_bundle(monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setattr(uv_install, "pip_settings", lambda: {"find-links": "/wheels", "cert": "/etc/company-ca.pem"})
    seen = {}

    def fake_run(command, env):
        seen.update(command=command, cert=env.get("SSL_CERT_FILE"))
        return type("Done", (), {"returncode": 3})()

    monkeypatch.setattr(uv_install.subprocess, "run", fake_run)
    assert uv_install.main(["uv", "py", "pip", "-e", ".[dev]"]) == 3  # uv's exit code
    assert seen["command"] == ["uv", "pip", "install", "--quiet", "--python", "py", "--find-links", "/wheels",
                               "pip", "-e", ".[dev]"]
    assert seen["cert"] == "/etc/company-ca.pem"
