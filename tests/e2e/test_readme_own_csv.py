"""The README's "Tune your own CSV" and "Export, serve and predict", followed literally on a CSV
this test writes: an identifier column, a date column, integer columns, gaps, a text target with a
few empty cells, and no task in the study file. The study file and the commands are the README's
own blocks; the only changes are fewer trials (``--trials``, a flag the README shows), a free port
for ``tuner serve`` and the data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.test_readme import README, paste, scratch_env, served, substitute

#: Rows in the CSV: above 1,000 training + validation rows, so one validation split scores a trial.
N_ROWS = 1400
#: Cells of the target left empty.
N_EMPTY_TARGETS = 3


def section(heading: str) -> str:
    """The README's text from ``heading`` to the next heading of its level (fenced code kept)."""
    start = re.search(rf"^{re.escape(heading)}$", README, re.M).start()
    rest = README[start + len(heading):]
    level = heading.split(" ", 1)[0]
    prose_headings = [m for m in re.finditer(rf"^{level} ", rest, re.M)
                      if rest[:m.start()].count("```") % 2 == 0]  # a "# comment" in a block is no heading
    return README[start:start + len(heading) + (prose_headings[0].start() if prose_headings else len(rest))]


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def customers(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Rows as a CSV export of a customer table has them: an id per row, a signup date, integer
    columns (one with gaps), a float column with gaps, a text category, and a text target that
    follows from the numbers."""
    age = rng.integers(18, 80, n)
    visits = rng.integers(0, 40, n).astype(float)
    spend = (rng.gamma(2.0, 50.0, n) + visits * 3).round(2)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")
    region = rng.choice(["north", "south", "east", "west"], n)
    score = (age - 45) / 15 + (spend - 160) / 60 + rng.normal(0, 0.5, n)
    segment = np.where(score > 0.8, "gold", np.where(score > -0.6, "silver", "basic"))
    frame = pd.DataFrame({
        "customer_id": np.arange(100_001, 100_001 + n),
        "signup_date": signup.strftime("%Y-%m-%d"),
        "age": age,
        "visits": visits,
        "spend": spend,
        "region": region,
        "segment": segment,
    })
    gaps = rng.choice(n, size=n // 20, replace=False)
    frame.loc[gaps[: len(gaps) // 2], "visits"] = np.nan  # an integer column with empty cells
    frame.loc[gaps[len(gaps) // 2:], "spend"] = np.nan
    return frame


def test_own_csv_from_study_file_to_served_prediction(tmp_path):
    from tests.e2e.test_readme import scratch_folder  # a folder laid out as a clone: .venv linked

    own = section("## Tune your own CSV")
    (study_text,) = fenced(own, "toml")
    run_block, = fenced(own, "bash")
    serve_section = section("## Export, serve and predict")
    export_block, = fenced(serve_section, "bash")
    predict_block, = fenced(serve_section, "python")

    study = tomllib.loads(study_text)
    assert set(study) <= {"name", "seed", "data", "budget"}, "a minimal study file"
    assert set(study["data"]) == {"source", "target"}, "no task, no column settings: the defaults at work"
    study_file = re.search(r"tuner run (\S+\.toml)", run_block).group(1)
    assert study_text.lstrip().startswith(f"# {study_file}")

    folder = scratch_folder(tmp_path, "")  # a clone's layout; its studies/digits.toml is unused here
    (folder / study_file).write_text(study_text)
    rng = np.random.default_rng(0)
    data = customers(rng, N_ROWS)
    empty = rng.choice(N_ROWS, size=N_EMPTY_TARGETS, replace=False)
    data.loc[empty, study["data"]["target"]] = None
    assert study["data"]["target"] == "segment" and study["data"]["source"].endswith(".csv")
    data.to_csv(folder / study["data"]["source"], index=False)
    assert pd.read_csv(folder / study["data"]["source"])["age"].dtype == np.int64  # as a user's file reads

    # Tune. The README's file asks for more trials than a test needs: --trials, which the README shows.
    assert "--trials" in own
    n_trials = 3
    if study["budget"]["n_trials"] > n_trials:
        run_block = substitute(run_block, f".venv/bin/tuner run {study_file}", f".venv/bin/tuner run {study_file} --trials {n_trials}")
    code, output = paste(run_block, folder, scratch_env(), tmp_path / "run.log", timeout=600)
    assert code == 0, output[-4000:]
    assert "classification" in output, "the inferred task is said"
    assert "customer_id" in output, "the identifier column left out is named"
    assert re.search(rf"\b{N_EMPTY_TARGETS}\b[^\n]*rows?\b|\brows?\b[^\n]*\b{N_EMPTY_TARGETS}\b", output), \
        "the rows without a target are counted"
    assert re.search(r"test split \(scored once\): final model accuracy 0\.\d{4}", output), output[-4000:]
    assert f"study '{study['name']}': {n_trials} complete" in output, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert re.search(r"best trial \d+: 0\.\d{4}", output), "tuner status shows the study's best"

    # Export, serve, predict over HTTP: rows of the same kind, without the target, with gaps.
    new_rows = customers(np.random.default_rng(1), 8).drop(columns=study["data"]["target"])
    new_rows.loc[[1, 4], "visits"] = np.nan
    new_rows.to_csv(folder / "new_rows.csv", index=False)
    assert "new_rows.csv" in export_block
    assert export_block.count("5001") >= 2

    def script(port: int) -> str:
        served_line = re.search(r"^\.venv/bin/tuner serve (\S+) &", export_block, re.M)
        assert served_line, export_block
        block = substitute(export_block, served_line.group(0), f"{served_line.group(0)[:-1]}--port {port} &")
        return block.replace("5001", str(port))

    output, _ = served(script, folder, tmp_path / "serve.log")
    answer = re.search(r'\{"predictions": \[.*?\]\}', output)
    assert answer, output[-4000:]
    over_http = json.loads(answer.group(0))["predictions"]
    assert len(over_http) == len(new_rows)
    classes = set(data[study["data"]["target"]].dropna())
    assert set(over_http) <= classes

    # The README's Python block, in the same folder, on the same file.
    program = predict_block + "\nimport json\nprint(json.dumps([str(p) for p in predictions]))\n"
    result = subprocess.run([sys.executable, "-c", program], cwd=folder, env=scratch_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    in_process = json.loads(result.stdout.strip().splitlines()[-1])
    assert in_process == [str(p) for p in over_http]


@pytest.mark.parametrize("heading", ["## Tune your own CSV", "## Export, serve and predict"])
def test_own_csv_sections_have_the_blocks_the_test_follows(heading):
    """Cheap: the blocks the test above follows are where it looks for them."""
    text = section(heading)
    assert fenced(text, "bash")
    assert "<!-- readme-test: run -->" in text
