"""Mutation testing of model/: how many small changes to the code do the model's tests catch?

Runs mutmut (``pip install mutmut==3.8.1``) over model/ against the model's test files, in a
scratch copy of the project so that the repository's own files and configuration are untouched,
then prints the share of mutants killed and lists the survivors (``mutmut show NAME`` in the
scratch folder shows a survivor's diff).

    .venv/bin/python bench/mutation.py                    # all of model/, 2 workers
    .venv/bin/python bench/mutation.py --only 'model/schedules.py' --max-children 1

It is not part of the test suite: over all of model/ it takes a long time on 2 cores.

Last full run, at a0ea989 (2026-12-01, 2 shared cores, --max-children 2, 36 minutes):
2242 of 2766 mutants killed (81.1%); optimizers.py 99.1%, training.py 94.2%, losses.py 90.6%,
schedules.py 87.5%, activations.py 86.4%, network.py 86.4%, preprocessing.py 82.5%,
estimators.py 70.9%, serialization.py 67.0%. Most survivors seen are equivalent (an ``out=``
buffer or scratch array dropped, which only allocates; a default no caller uses) or change only
an error message; estimators.py and serialization.py are also exercised by
tests/model/test_estimator_checks.py and the tuner's export tests, which this run leaves out for time.

Last full run, at 7e8485c (2026-12-02, --max-children 2, nothing else running, 11 minutes): 2290
of 2974 mutants killed (77.0%; 82.8% of those a model test reaches); the README's "Tests" section
has the figures per file. "not run" counts the mutants a stopped run had not reached.

bench/mutation_survivors.md lists the survivors of estimators.py, serialization.py and
preprocessing.py one by one (issue 16): the reason each one left is equivalent (or not worth a
test), and those files' kill rates before and after (94.2%, 95.0% and 93.4% after, at 30ce12e).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The tests of model/ (the tuner's tests only use the model as a black box and are slow).
MODEL_TESTS = [
    "tests/model/test_gradients.py",
    "tests/model/test_model.py",
    "tests/model/test_optimizers.py",
    "tests/model/test_schedules.py",
    "tests/model/test_dropout.py",
    "tests/model/test_extremes.py",
    "tests/model/test_training_loop.py",
    "tests/model/test_initialisation.py",
    "tests/model/test_preprocessing.py",
    "tests/model/test_serialization.py",
    "tests/model/test_model_contract.py",
]
SUPPORT = ["tests/__init__.py", "tests/conftest.py", "tests/helpers.py"]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(folder: Path, tests: list[str], only: list[str]) -> None:
    """Copy model/ and the tests into ``folder`` with a pyproject.toml holding mutmut's settings."""
    shutil.copytree(ROOT / "model", folder / "model", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "tests").mkdir()
    for name in SUPPORT + tests:
        shutil.copy2(ROOT / name, folder / name)
    settings = [
        "[tool.pytest.ini_options]",
        'markers = ["slow: slow tests", "postgres: needs PostgreSQL"]',
        "",
        "[tool.mutmut]",
        'source_paths = ["model/"]',
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]',
    ]
    if only:
        settings.append(f"only_mutate = {_toml_list(only)}")
    (folder / "pyproject.toml").write_text("\n".join(settings) + "\n")


#: mutmut's exit codes (mutmut/stats.py), grouped
KILLED, SURVIVED, NO_TESTS = {1, 3}, {0}, {5, 33}


def report(folder: Path) -> int:
    """Print the share of mutants killed, per file and in all, and list the survivors."""
    rows, survivors = [], []
    for meta in sorted((folder / "mutants" / "model").glob("*.py.meta")):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if not codes:
            continue
        killed = sum(c in KILLED for c in codes.values())
        survived = [k for k, c in codes.items() if c in SURVIVED]
        no_tests = sum(c in NO_TESTS for c in codes.values())
        not_run = sum(c is None for c in codes.values())  # a run stopped before it reached them
        other = len(codes) - killed - len(survived) - no_tests - not_run  # timeouts, suspicious
        rows.append((meta.name.removesuffix(".meta"), len(codes), killed, len(survived), no_tests, not_run, other))
        survivors += survived
    if not rows:
        print(f"no mutmut results under {folder}", file=sys.stderr)
        return 1
    total = [sum(r[i] for r in rows) for i in range(1, 7)]
    print(f"{'file':<20} {'mutants':>8} {'killed':>8} {'survived':>9} {'no tests':>9} {'not run':>8} {'other':>6}"
          f" {'share killed':>13} {'of those tested':>16}")
    for name, *counts in [*rows, ("model/ (all)", *total)]:
        tested = counts[1] + counts[2]  # killed or survived: a test ran against the mutant
        print(f"{name:<20} {counts[0]:>8} {counts[1]:>8} {counts[2]:>9} {counts[3]:>9} {counts[4]:>8} {counts[5]:>6}"
              f" {counts[1] / counts[0]:>13.1%} {counts[1] / tested if tested else 0:>16.1%}")
    print(f"\nsurvivors ({len(survivors)}; see one with: cd {folder} && {sys.executable} -m mutmut show NAME):")
    for name in survivors:
        print("  " + name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutant workers (default 2)")
    parser.add_argument("--tests", nargs="+", default=MODEL_TESTS, help="test files to run against each mutant")
    parser.add_argument("--only", nargs="+", default=[], help="glob(s) of the files to mutate, e.g. 'model/optimizers.py'")
    parser.add_argument("--workdir", type=Path, help="scratch folder to use and keep (default: a temporary one, removed)")
    parser.add_argument("--report", type=Path, metavar="WORKDIR", help="only print the results of an earlier run kept in WORKDIR")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="mutation-"))
    if args.workdir and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        prepare(folder, args.tests, args.only)
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)],
                             cwd=folder, capture_output=True, text=True)
        if not (folder / "mutants").exists():
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n", file=sys.stderr)
            return run.returncode or 1
        return report(folder)
    finally:
        if not args.workdir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
