"""The README's commands and claims as a new user meets them (issue 18)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

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


def shell_block(heading: str) -> str:
    """The first ```bash block after ``heading`` in the README, as a user would copy it."""
    after = README[README.index(heading):]
    return re.search(r"```bash\n(.*?)```", after, re.S).group(1)


SMALL_DIGITS = """
name = "digits"
seed = 0
[data]
source = "sklearn:digits"
[budget]
n_trials = 6
max_epochs = 4
[pruner]
name = "none"
[space]
n_layers = 1
units = {low = 8, high = 32}
batch_size = 64
"""


@pytest.mark.postgres
def test_postgres_workers_block_runs_as_pasted(tmp_path, make_postgres_db, tracking_server):
    """Issue 18: pasted, the block failed (no .venv/bin on PATH, `createdb` without the role of
    the URL, workers started before the MLflow server answered). Here it runs in bash in a
    scratch folder, with a scratch database and a small study named digits. Its `mlflow server`
    line is the one placeholder: the session's server (the same command, tests/helpers.py) takes
    its place, since starting one costs 10-80 s on this machine."""
    import os
    import signal
    import subprocess
    import sys

    import optuna
    from mlflow import MlflowClient

    from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connection
    from tests.helpers import cli_env

    if (PG_HOST, PG_PORT, PG_USER) != ("127.0.0.1", 5432, "postgres"):
        pytest.skip("the README's block names the PostgreSQL server at 127.0.0.1:5432, user postgres")
    url = make_postgres_db("tuner_readme")
    dbname = url.rsplit("/", 1)[1]
    with _admin_connection() as conn:  # the block creates it; the fixture drops it afterwards
        conn.execute(f'DROP DATABASE "{dbname}"')
    port = tracking_server.rsplit(":", 1)[1]
    block = shell_block("### Workers on PostgreSQL, locally")
    assert "5000" in block and "postgres optuna" in block and "5432/optuna" in block
    server_line = re.compile(r"^\.venv/bin/mlflow server --backend-store-uri sqlite:///mlflow\.db "
                             r"--host 127\.0\.0\.1 --port 5000 &$", re.M)
    assert len(server_line.findall(block)) == 1
    script = (server_line.sub(":", block).replace("5000", port).replace("postgres optuna", f"postgres {dbname}")
              .replace("5432/optuna", f"5432/{dbname}"))
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "digits.toml").write_text(SMALL_DIGITS)
    env = cli_env()
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if os.path.realpath(p) != os.path.realpath(Path(sys.executable).parent))
    log = tmp_path / "block.log"
    with open(log, "w") as out:  # a file: anything left running would keep a pipe open
        proc = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=300)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # whatever the block left running
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert output.count("worker joining study 'digits'") == 2, output[-3000:]
    assert "study 'digits': 6 " in output or "6 complete" in output, output[-3000:]
    study = optuna.load_study(study_name="digits", storage=url)
    assert len(study.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("digits")
    parents = [r for r in client.search_runs([experiment.experiment_id])
               if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2  # one per worker
