"""docker-compose.yml, .env.example, the Dockerfile, .dockerignore and the compose block of docs/scale-and-faults.md
agree with each other (issue 18 item 5). No Docker engine here: these are static checks; the
services' commands run as local processes in tests/e2e/test_scale.py."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
yaml = pytest.importorskip("yaml")


def services() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def host_ports() -> dict[str, tuple[str, str]]:
    """service -> (variable, default) of its published host port."""
    found = {}
    for name, service in services().items():
        for port in service.get("ports", []):
            m = re.fullmatch(r"127\.0\.0\.1:\$\{(\w+):-(\d+)\}:\d+", str(port))
            assert m, f"{name}: {port} (host port from a variable with a default, on 127.0.0.1)"
            found[name] = (m.group(1), m.group(2))
    return found


def test_env_example_matches_the_compose_defaults():
    example = env_example()
    for name, (variable, default) in host_ports().items():
        assert example.get(variable) == default, (name, variable)


def test_postgres_host_port_leaves_a_local_postgresql_alone():
    """The local workers of docs/scale-and-faults.md use a PostgreSQL on 127.0.0.1:5432: compose must not take it."""
    assert host_ports()["postgres"][1] != "5432"
    assert env_example()["POSTGRES_HOST_PORT"] != "5432"


def test_mlflow_allows_the_host_port_the_browser_uses():
    """The browser sends Host 127.0.0.1:<MLFLOW_PORT>; with only :5000 allowed another port got 403."""
    from mlflow.server.security_utils import is_allowed_host_header

    command = services()["mlflow"]["command"]
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    for port in (env_example()["MLFLOW_PORT"], "5000", "5001", "8081"):
        for host in ("127.0.0.1", "localhost"):
            assert is_allowed_host_header(allowed, f"{host}:{port}"), (host, port)
    assert is_allowed_host_header(allowed, "mlflow:5000")  # the workers' tracking URI
    assert not is_allowed_host_header(allowed, "elsewhere.example:5000")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``path`` out (its patterns, with ! exceptions, last match wins)."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/"))
               for p in prefixes):
            result = not negate
    return result


def test_shipped_studies_find_their_data_in_the_image():
    """studies/wine_mixed.toml reads data/wine_mixed.csv, which .dockerignore left out of the image."""
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = re.findall(r"^COPY --chown=\S+ (\S+) \./\1$", (REPO / "Dockerfile").read_text(), re.M)
    files = []
    for study in sorted((REPO / "studies").glob("*.toml")):
        source = tomllib.loads(study.read_text())["data"]["source"]
        if not source.startswith("sklearn:"):
            files.append((study.parent / source).resolve().relative_to(REPO).as_posix())
    assert files, "a shipped study reads a file"
    for path in files:
        assert not _ignored(path, patterns), f"{path} is in .dockerignore"
        assert path.split("/")[0] in copied, f"{path}: its folder is not copied into the image"
    worker_volumes = services()["worker"]["volumes"]
    for folder in {p.split("/")[0] for p in files} | {"studies"}:
        assert f"./{folder}:/app/{folder}:ro" in worker_volumes


def test_compose_block_names_the_published_ports():
    guide = (REPO / "docs" / "scale-and-faults.md").read_text()  # the compose block's home
    block = re.search(r"^## docker-compose\n.*?```bash\n(.*?)```", guide, re.S | re.M).group(1)
    ports = host_ports()
    assert f"http://127.0.0.1:{ports['mlflow'][1]}" in block
    assert f"http://127.0.0.1:{ports['dashboard'][1]}" in block
    assert "cp .env.example .env" in block


def _command_lines(service: dict) -> list[str]:
    """Every argument a service's processes run with (``ps`` shows them): its command, entrypoint
    and healthcheck."""
    found = []
    for key in ("command", "entrypoint"):
        value = service.get(key, [])
        found += [value] if isinstance(value, str) else [str(a) for a in value]
    test = service.get("healthcheck", {}).get("test", [])
    found += [test] if isinstance(test, str) else [str(a) for a in test]
    return found


def test_the_database_password_is_on_no_command_line():
    """Command lines are visible to anyone on the host (`ps`); before, every database URL in the
    compose file carried ${POSTGRES_PASSWORD}."""
    password = env_example()["POSTGRES_PASSWORD"]
    for name, service in services().items():
        for arg in _command_lines(service):
            assert "POSTGRES_PASSWORD" not in arg and password not in arg, (name, arg)
            for url in re.findall(r"postgresql(?:\+\w+)?://\S+", arg):
                assert re.match(r"postgresql(?:\+\w+)?://[^:@/]+@", url), (name, url)  # a user, no password


def test_the_database_password_reaches_each_client_through_its_environment():
    """Each service that connects to PostgreSQL gets the password as PGPASSWORD (libpq reads it)
    from .env; the database server itself takes it as POSTGRES_PASSWORD."""
    clients = {name for name, service in services().items()
               if any("postgresql" in arg for arg in _command_lines(service))}
    assert clients == {"mlflow", "worker", "dashboard"}
    for name in clients:
        assert re.fullmatch(r"\$\{POSTGRES_PASSWORD(:\?[^}]*)?\}", services()[name]["environment"]["PGPASSWORD"]), name
    assert services()["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_env_is_kept_out_of_git_and_the_image():
    """.env holds the password: ignored by git (it was only in .dockerignore) and by the image."""
    for ignore in (".gitignore", ".dockerignore"):
        lines = [line.strip() for line in (REPO / ignore).read_text().splitlines()]
        assert ".env" in lines, ignore
