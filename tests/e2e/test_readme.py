"""The README's and the guides' (docs/*.md) commands and claims as a new user meets them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
#: The documents whose blocks are tested: the README and every guide in docs/.
DOCUMENTS = ["README.md"] + sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))


def test_pip_commands_install_into_the_venv():
    """A bare `pip install` installs into whatever pip is first on PATH, not the project's venv."""
    for doc in [REPO / d for d in DOCUMENTS] + [REPO / "bench" / "README.md"]:
        for line in doc.read_text().splitlines():
            for match in re.finditer(r"(\S*)pip install", line):
                assert match.group(1).endswith(".venv/bin/"), f"{doc.name}: {line.strip()}"


def test_run_study_returns_what_the_readme_says():
    from tuner.runner import StudyResult, run_study

    assert run_study.__annotations__["return"] in ("StudyResult", StudyResult)
    guide = (REPO / "docs" / "study-files.md").read_text()
    claim = re.search(r"it returns a `StudyResult`:(.*?)\n\n|it returns a `StudyResult`:(.*?)\n- ", guide, re.S)
    assert claim, "docs/study-files.md describes run_study's result"
    fields = {f.name for f in dataclasses.fields(StudyResult)}
    named = set(re.findall(r"`\.(\w+)`", claim.group(0)))
    assert named and named <= fields


def shell_block(document: str, heading: str) -> str:
    """The first ```bash block after ``heading`` in ``document`` (a path from the repository's
    root), as a user would copy it."""
    text = (REPO / document).read_text()
    after = text[re.search(rf"^{re.escape(heading)}$", text, re.M).start():]
    return re.search(r"```bash\n(.*?)```", after, re.S).group(1)


# Every ```bash block of the README and of docs/*.md carries a marker on the line before it:
# ``<!-- readme-test: run -->`` (a test pastes it into bash) or ``<!-- readme-test: not-run: REASON -->``.
# Synopses (``[--trials N]``) are not bash: they go in prose or in ```text blocks.
MARKER = re.compile(r"<!-- readme-test: (run|not-run: (?P<reason>[^>]*?)) -->")

# The run-marked blocks, by document and the heading above them, and the test that pastes each:
# a test of this module, or ``module::test`` for one in another module of tests/.
RUN_BLOCKS = {
    ("README.md", "## Tune your own CSV"): "e2e.test_readme_own_csv::test_own_csv_from_study_file_to_served_prediction",
    ("README.md", "## Export, serve and predict"): "e2e.test_readme_own_csv::test_own_csv_from_study_file_to_served_prediction",
    ("docs/study-files.md", "## Running a study"): "test_tuning_block_runs_as_pasted",
    ("docs/export-and-serving.md", "# Export and serving"): "test_export_block_runs_as_pasted",
    ("docs/scale-and-faults.md", "## Workers on PostgreSQL, locally"): "test_postgres_workers_block_runs_as_pasted",
}


def bash_blocks(documents: list[str] = DOCUMENTS) -> list[tuple[str, str, str | None, str]]:
    """``(document, heading above, marker line or None, body)`` of each ```bash block of the
    documents, in order."""
    found = []
    for document in documents:
        text = (REPO / document).read_text()
        for fence in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
            before = text[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1]
            prose = re.sub(r"^```.*?^```", "", text[:fence.start()], flags=re.S | re.M)  # a "# comment" is no heading
            headings = re.findall(r"^(#+ .*)$", prose, re.M)
            found.append((document, headings[-1], before if MARKER.fullmatch(before) else None, fence.group(1)))
    return found


def test_every_shell_block_is_run_or_says_why_not():
    """A ```bash block without a marker, a not-run block without a reason, or a run block no test
    pastes fails here, so that a new block cannot join the README or a guide untested unnoticed."""
    import importlib

    blocks = bash_blocks()
    assert len(blocks) >= 8 and {d for d, *_ in blocks} >= {"README.md", "docs/scale-and-faults.md"}
    unmarked = [(document, heading) for document, heading, marker, _ in blocks if marker is None]
    assert unmarked == [], f"```bash blocks without a <!-- readme-test: ... --> line before them: {unmarked}"
    for document, heading, marker, _ in blocks:
        reason = MARKER.fullmatch(marker).group("reason")
        assert reason is None or len(reason.split()) >= 3, f"{document}, {heading}: say why the block is not run"
    run = [(document, heading) for document, heading, marker, _ in blocks if marker == "<!-- readme-test: run -->"]
    assert sorted(run) == sorted(RUN_BLOCKS), "each run block is pasted by the test RUN_BLOCKS names"
    for test in RUN_BLOCKS.values():
        module, _, name = test.rpartition("::")
        namespace = vars(importlib.import_module(f"tests.{module}")) if module else globals()
        assert callable(namespace.get(name)), test


def test_no_shell_block_is_a_synopsis():
    """A bash block is pasted as it is: no ``[--option VALUE]`` placeholders, no ``STUDY``-like
    capitals standing for an argument."""
    for document, heading, _, body in bash_blocks():
        code = "\n".join(line.split("  #")[0] for line in body.splitlines())
        assert not re.search(r"\[--?[a-z]", code), f"{document}, {heading}: a synopsis belongs in a ```text block"
        assert not re.search(r"\btuner \w+ [A-Z_]{3,}\b", code), f"{document}, {heading}: a placeholder argument"


def test_readme_is_short_and_names_no_commit():
    """The README is for users: at most 300 lines, and no commit hashes (history lives in git). The
    guides name none either; docs/benchmarks.md, which states the commit of each measurement, is
    the one file allowed to."""
    assert len(README.splitlines()) <= 300
    commit = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
    for document in DOCUMENTS:
        if document == "docs/benchmarks.md":
            continue
        found = commit.findall((REPO / document).read_text())
        assert found == [], f"{document} names commits: {found}"
    assert commit.search((REPO / "docs" / "benchmarks.md").read_text())
    for document in DOCUMENTS:
        assert not re.search(r"\b[Ii]ssue \d+", (REPO / document).read_text()), f"{document} cites an issue"


def test_readme_links_every_guide_and_only_guides_that_exist():
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]*)?\)", README))
    assert linked, "the README links its guides"
    missing = sorted(d for d in linked if not (REPO / d).is_file())
    assert missing == [], f"the README links guides that do not exist: {missing}"
    unlinked = sorted(set(DOCUMENTS) - {"README.md"} - linked)
    assert unlinked == [], f"guides the README does not link: {unlinked}"
    for document in DOCUMENTS:  # the guides' links between themselves too
        text = (REPO / document).read_text()
        for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)", text):
            assert ((REPO / document).parent / target).resolve().is_file(), f"{document} links {target}"


def make_variables() -> dict[str, str]:
    """The Makefile's ``NAME ?= value`` and ``NAME := value`` variables, expanded."""
    found = dict(re.findall(r"^(\w+) [?:]?= (.*)$", (REPO / "Makefile").read_text(), re.M))
    for _ in range(3):
        found = {k: re.sub(r"\$\((\w+)\)", lambda m: found.get(m.group(1), m.group(0)), v) for k, v in found.items()}
    return found


def make_recipe(target: str) -> tuple[list[str], str]:
    """``(prerequisites, recipe)`` of a Makefile target with a one-line recipe, variables expanded."""
    text = (REPO / "Makefile").read_text()
    rule = re.search(rf"^{target}:(.*)\n\t(.*)$", text, re.M)
    assert rule, f"the Makefile has a '{target}' target"
    variables = make_variables()
    expand = lambda s: re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], s)  # noqa: E731
    return expand(rule.group(1)).split(), expand(rule.group(2)).strip()


def test_quick_start_make_targets_do_what_the_readme_says():
    """The Quick start block is not run here (``make tune`` creates a venv and installs into it;
    ``make test`` runs the whole suite): its targets are checked against the README instead. The
    tuner command ``make tune`` calls is run by the ``tuned`` fixture below."""
    document, heading, marker, block = bash_blocks()[0]
    assert (document, heading) == ("README.md", "## Quick start") and "not-run" in marker
    assert re.findall(r"^make (\w+)", block, re.M) == ["tune", "test"]
    variables = make_variables()
    for target in ("tune", "test"):
        prerequisites, _ = make_recipe(target)
        assert prerequisites == [f"{variables['VENV']}/.installed"]  # "creates .venv and installs the project"
    assert variables["VENV"] == ".venv"
    install = re.search(r"^\$\(VENV\)/\.installed:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M).group(1)
    assert re.search(r"-m venv (--[\w-]+ )*\$\(VENV\)", install) and "-e '.[dev]'" in install
    assert "ensurepip" in install  # the venv starts without pip: the fallback must put it in
    assert make_recipe("tune")[1] == ".venv/bin/tuner run studies/digits.toml"
    assert "`make tune` runs `tuner run studies/digits.toml`" in README
    assert f"`make test` runs the suite (`{make_recipe('test')[1]}`)" in README


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


# ------------------------------------------------------------------ shell blocks pasted into bash


def scratch_env() -> dict[str, str]:
    """The environment of a user's shell: the project's venv not activated (its ``bin`` not on
    ``PATH``), no storage or tracking URI set, so each command uses its defaults in the folder."""
    import os
    import sys

    from tests.helpers import cli_env

    env = cli_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if os.path.realpath(p) != os.path.realpath(Path(sys.executable).parent))
    return env


def scratch_folder(folder: Path, study: str) -> Path:
    """A folder laid out as a clone after ``make``: ``.venv`` (the tests' own environment) and
    ``studies/digits.toml`` (here a small study of that name, so that the blocks run in seconds)."""
    import sys

    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (folder / "studies").mkdir()
    (folder / "studies" / "digits.toml").write_text(study)
    return folder


def paste(script: str, cwd: Path, env: dict[str, str], log: Path, timeout: float = 300,
          give_up_when: str | None = None) -> tuple[int | None, str]:
    """``script`` run by ``bash`` in ``cwd`` as pasted into a terminal; ``(exit code, output)``.
    Whatever the script left running in the background (a server started with ``&``) is killed
    with its process group afterwards. With ``give_up_when``, stop as soon as the output holds
    that text (exit code None): a server that could not bind its port, say."""
    import subprocess

    import time

    from tests.helpers import kill_group

    with open(log, "w") as out:  # a file: anything left running would keep a pipe open
        proc = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not (give_up_when and give_up_when in log.read_text(errors="replace")):
            assert time.monotonic() < deadline, f"the block ran over {timeout} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        code = proc.poll()
    finally:
        kill_group(proc)
    return code, log.read_text(errors="replace")


def free_port() -> int:
    """A port the system had free. The servers the blocks start bind their port themselves, so it
    cannot be held for them: a caller retries with another port when the server reports it taken."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced once; fails if the README no longer says ``old`` exactly once."""
    assert text.count(old) == 1, f"the README's block no longer reads {old!r} once:\n{text}"
    return text.replace(old, new)


@pytest.mark.postgres
def test_postgres_workers_block_runs_as_pasted(tmp_path, make_postgres_db, tracking_server):
    """Issue 18: pasted, the block failed (no .venv/bin on PATH, `createdb` without the role of
    the URL, workers started before the MLflow server answered). Here it runs in bash in a
    scratch folder, with a scratch database and a small study named digits. Its `mlflow server`
    line is the one placeholder: the session's server (the same command, tests/helpers.py) takes
    its place, since starting one costs 10-80 s on this machine."""
    import optuna
    from mlflow import MlflowClient

    from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connection

    if (PG_HOST, PG_PORT, PG_USER) != ("127.0.0.1", 5432, "postgres"):
        pytest.skip("the README's block names the PostgreSQL server at 127.0.0.1:5432, user postgres")
    url = make_postgres_db("tuner_readme")
    dbname = url.rsplit("/", 1)[1]
    with _admin_connection() as conn:  # the block creates it; the fixture drops it afterwards
        conn.execute(f'DROP DATABASE "{dbname}"')
    port = tracking_server.rsplit(":", 1)[1]
    block = shell_block("docs/scale-and-faults.md", "## Workers on PostgreSQL, locally")
    assert "5000" in block and "postgres optuna" in block and "5432/optuna" in block
    server_line = re.compile(r"^\.venv/bin/mlflow server --backend-store-uri sqlite:///mlflow\.db "
                             r"--host 127\.0\.0\.1 --port 5000 &$", re.M)
    assert len(server_line.findall(block)) == 1
    script = (server_line.sub(":", block).replace("5000", port).replace("postgres optuna", f"postgres {dbname}")
              .replace("5432/optuna", f"5432/{dbname}"))
    code, output = paste(script, scratch_folder(tmp_path, SMALL_DIGITS), scratch_env(), tmp_path / "block.log")
    assert code == 0, output[-3000:]
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


# The study of the Tuning and Exporting blocks: 3 trials of one small layer, a few epochs each.
TINY_DIGITS = SMALL_DIGITS.replace("n_trials = 6", "n_trials = 3").replace("max_epochs = 4", "max_epochs = 3")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A scratch clone in which the command ``make tune`` calls (read from the Makefile) has run
    the study once, with the default stores in the folder (``optuna.db``, ``mlflow.db``), as
    after the Quick start. The Tuning and Exporting blocks continue from it."""
    folder = scratch_folder(tmp_path_factory.mktemp("readme-clone"), TINY_DIGITS)
    command = make_recipe("tune")[1]
    code, output = paste(command, folder, scratch_env(), folder / "make-tune.log")
    assert code == 0, output[-3000:]
    assert "study 'digits': 3 complete" in output, output[-3000:]
    assert re.search(r"test split \(scored once\): final model accuracy 0\.\d{4}", output), output[-3000:]
    assert (folder / "optuna.db").is_file() and (folder / "mlflow.db").is_file()
    return folder


def served(script_for_port, folder: Path, log: Path) -> tuple[str, int]:
    """``paste(script_for_port(P))`` for a free port P, again with another port (up to three in
    all) when the server the script starts finds its port taken; ``(output, P)``."""
    for _ in range(3):
        port = free_port()
        code, output = paste(script_for_port(port), folder, scratch_env(), log, timeout=240,
                             give_up_when="address already in use")
        if "address already in use" not in output:
            assert code == 0, output[-3000:]
            return output, port
    pytest.fail("three ports in a row were taken")


@pytest.mark.xdist_group("readme_clone")
def test_tuning_block_runs_as_pasted(tuned):
    """The block of docs/study-files.md's "Running a study" in the clone: ``tuner run`` with
    ``--trials`` continues the study to that total, drawing new trials (a resume once replayed
    the first trials); ``tuner status`` lists the study and shows its trials and best; ``tuner
    ui`` serves the store the run used, with the experiment the run's last line names. The
    block's total of 60 trials is 5 here (the scratch study has 3), and ``tuner ui`` (which runs
    until stopped) gets a free port and a wait for it, then the experiment is asked for."""
    import optuna

    block = shell_block("docs/study-files.md", "## Running a study")
    block = substitute(block, "--trials 60", "--trials 5")
    assert re.search(r"^\.venv/bin/tuner status +#", block, re.M), block
    assert re.search(r"^\.venv/bin/tuner status digits +#", block, re.M), block

    def script(port: int) -> str:
        return substitute(block, ".venv/bin/tuner ui ", f".venv/bin/tuner ui --port {port} & ") + (
            f"until curl -sf http://127.0.0.1:{port}/health >/dev/null; do sleep 1; done\n"
            f"echo; curl -sf 'http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=digits'\n"
        )

    output, _ = served(script, tuned, tuned / "tuning-block.log")
    assert "study 'digits': 5 complete" in output, output[-3000:]
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tuned}/optuna.db")
    assert len(study.trials) == 5
    drawn = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(drawn)) == len(drawn), "a resumed study drew trials it had drawn before"
    assert "studies in sqlite:///optuna.db" in output and re.search(r"digits\s*│\s*5\s*│", output), output[-3000:]
    best = study.best_trial
    assert f"best trial {best.number}: {best.value:.4f}" in output, output[-3000:]
    link = re.search(r"browse it with `(\S+) ui`, then open http://127\.0\.0\.1:5000/#/experiments/(\d+)/runs", output)
    assert link, output[-3000:]
    assert Path(link.group(1)).name == "tuner" and Path(link.group(1)).resolve() == (tuned / ".venv/bin/tuner").resolve()
    experiment = re.search(r'"experiment_id":\s*"(\d+)",\s*"name":\s*"digits"', output)
    assert experiment and experiment.group(1) == link.group(2), output[-3000:]


@pytest.mark.xdist_group("readme_clone")
def test_export_block_runs_as_pasted(tuned):
    """The Exporting block in the clone after a run: the first line writes the final model the
    run scored (its test scores are the run's), the second the best trial's own model, registered
    with the alias champion, without overwriting the first (issue 18: it did); ``tuner serve``
    serves the first folder and the curl line gets its predictions for the example rows. The
    one placeholder: the port 5001 is a free one (the server binds it itself)."""
    import json

    import pandas as pd
    import optuna
    import yaml
    from mlflow import MlflowClient

    from model import load
    from tests.helpers import child_runs

    block = shell_block("docs/export-and-serving.md", "# Export and serving")
    assert block.count("5001") >= 2 and block.count("--out exports/digits ") == 1

    def script(port: int) -> str:
        return substitute(block, "tuner serve exports/digits &", f"tuner serve exports/digits --port {port} &").replace("5001", str(port))

    output, _ = served(script, tuned, tuned / "export-block.log")
    assert "(see [result] in the study file)" in output  # printed as plain text, not as rich markup
    metadata = {name: yaml.safe_load((tuned / "exports" / name / "MLmodel").read_text())["metadata"]
                for name in ("digits", "digits-best")}
    study = optuna.load_study(study_name="digits", storage=f"sqlite:///{tuned}/optuna.db")
    client = MlflowClient(f"sqlite:///{tuned}/mlflow.db")
    parents, _ = child_runs(client, "digits")
    last_run = max(parents, key=lambda r: r.info.start_time)
    final = metadata["digits"]
    assert final["source"] == "final" and final["trained_on"] == "train+validation"
    assert final["test_scores"] == pytest.approx({k[len("final/test_"):]: v for k, v in last_run.data.metrics.items()
                                                  if k.startswith("final/test_")}, rel=1e-12)
    best = metadata["digits-best"]
    assert best["source"] in ("trial", "retrained") and best["trial"] == study.best_trial.number
    version = client.get_model_version_by_alias("digits-mlp", "champion")
    assert version.tags["tuner.trial"] == str(study.best_trial.number)
    example = json.loads((tuned / "exports/digits/serving_input_example.json").read_text())["dataframe_split"]
    rows = pd.DataFrame(example["data"], columns=example["columns"])
    answer = re.search(r'\{"predictions": \[.*?\]\}', output)
    assert answer, output[-3000:]
    assert json.loads(answer.group(0))["predictions"] == load(tuned / "exports/digits").predict(rows).tolist()


def test_toml_blocks_are_valid_study_file_tables():
    """The ```toml blocks of the README and the guides are study file tables the config accepts
    (the README's complete study file is run by tests/e2e/test_readme_own_csv.py); the ``[result]``
    block, which says it shows the defaults, holds exactly the defaults; the two ``[objective]``
    blocks show constraints and a multi-objective study."""
    import tomllib

    from tuner.study.config import StudyConfig
    from tuner.study.sections import DataConfig, ObjectiveConfig, ResultConfig, WarmStartConfig

    blocks = [tomllib.loads(re.sub(r"^ +", "", b, flags=re.M))
              for document in DOCUMENTS
              for b in re.findall(r"^ *```toml\n(.*?)^ *```", (REPO / document).read_text(), re.S | re.M)]
    blocks = [block for block in blocks if "name" not in block]  # complete study files
    objectives = [block.pop("objective") for block in blocks if "objective" in block]
    tables = {name: table for block in blocks for name, table in block.items()}
    assert sorted(tables) == ["data", "result", "warm_start"] and len(objectives) == 2
    assert WarmStartConfig(**tables["warm_start"]).from_ == ["digits"]
    assert ObjectiveConfig(**objectives[0]).constraints == {"latency_ms_row": 0.2, "size_kb": 50.0}
    multi = StudyConfig(name="s", data={"source": "sklearn:digits"}, objective=objectives[1])
    assert multi.objectives == ["accuracy", "latency_ms_row"] and multi.pruner.name == "none"
    csv = next((REPO / "data").glob("*.csv"))  # the keys are checked here, the column names when a file is read
    assert tables["data"] and DataConfig(source=str(csv), target="y", task="classification", **tables["data"])
    assert tables["result"] == ResultConfig().model_dump()
