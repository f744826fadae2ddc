"""Time to a good model on big data (issue 29): one study on a generated table of 1,000,000 rows,
trained in full-pass epochs, in epochs of ``[budget] epoch_rows`` rows, and by the Optuna +
scikit-learn baseline of ``bench_tuning.py``, on the same budget.

The table is ``bench_scale.py``'s (40 float columns, one 8-valued text column, a 5-class text
label; 48 encoded features), split 60/20/20. Every system runs the same study: ``--trials`` trials
(TPE seeded with ``--seed``, the median pruner at its defaults), at most ``--passes`` passes over
the training split per trial, the search space below (1-2 layers of 16-128 units, batches of 256
or 512, Adam at a log-uniform rate in [1e-4, 1e-2], early-stopping patience at its default range,
3-20 epochs), and no refit or ensemble (``[result] ensemble = 1``, ``refit = false``): the final
model is the best trial's.

* **passes**: ``tuner.runner.run_study``, an epoch is one pass, ``max_epochs = passes``;
* **rows**: the same with ``epoch_rows = ceil(training rows / --per-pass)`` and ``max_epochs =
  passes x per-pass``: the same pass budget, and the pruner's steps, its warm-up, the patience and
  the convergence rule counted in epochs of that share of a pass;
* **baseline**: ``bench_tuning.run_baseline`` on the passes study: scikit-learn's
  ``MLPClassifier``, one ``partial_fit`` pass per epoch, the same sampler, pruner, space (mapped as
  that script says) and patience logic, with optuna-integration's ``MLflowCallback``.

Per system: the wall time of the run (reading and preparing the CSV, every trial, tracking, the
best trial's test score), the time from its start to the completion of the trial that reached the
study's best validation accuracy, the time until a completed trial came within 0.001 of the first
system's (``passes``') best, the best validation accuracy and the best trial's test accuracy, the
trials completed and pruned, and the passes over the training split all trials trained together.
Each system reads the CSV itself; all run in this process, one after the other, with one BLAS
thread (``tuner run``'s policy; the script sets ``OPENBLAS_NUM_THREADS=1`` for the baseline's
scikit-learn too, before NumPy loads).

    nice -n 10 .venv/bin/python bench/bench_epoch_rows.py --markdown            # 1M rows, 20 trials
    nice -n 10 .venv/bin/python bench/bench_epoch_rows.py --rows 200000 --markdown
    nice -n 10 .venv/bin/python bench/bench_epoch_rows.py --systems passes rows # no baseline

The baseline needs ``optuna-integration`` (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy: the baseline's scikit-learn too

import argparse  # noqa: E402
import datetime  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import write_csv  # noqa: E402
from bench_tuning import quiet, run_baseline, run_ours  # noqa: E402
from tables import format_table  # noqa: E402

from tuner.study.config import load_config  # noqa: E402

SYSTEMS = ("passes", "rows", "baseline")
#: "To the first system's best": the first completed trial within this of that study's best value.
TOLERANCE = 0.001

STUDY = """
name = "{name}"
seed = {seed}
[data]
source = "{csv}"
target = "label"
task = "classification"
[budget]
n_trials = {trials}
max_epochs = {max_epochs}
{epoch_rows}
[sampler]
name = "tpe"
[pruner]
name = "median"
[space]
n_layers = {{low = 1, high = 2}}
units = {{low = 16, high = 128, log = true}}
batch_size = [256, 512]
learning_rate = {{low = 1e-4, high = 1e-2, log = true}}
optimizer = "adam"
lr_schedule = "constant"
activation = "relu"
l2 = false
dropout = false
[result]
ensemble = 1
refit = false
seeds = 1
"""


def study_file(folder: Path, system: str, csv: Path, args, n_train: int) -> Path:
    """The study file of ``system`` (the baseline runs the passes study)."""
    rows = system == "rows"
    epoch_rows = math.ceil(n_train / args.per_pass)
    text = STUDY.format(
        name=f"epochs_{system}",
        seed=args.seed,
        csv=csv,
        trials=args.trials,
        max_epochs=args.passes * (args.per_pass if rows else 1),
        epoch_rows=f"epoch_rows = {epoch_rows}" if rows else "",
    )
    path = folder / f"{system}.toml"
    path.write_text(text)
    return path


def time_to_best(study, started: datetime.datetime) -> float:
    """Seconds from the run's start to the completion of the study's best trial."""
    return (study.best_trial.datetime_complete - started).total_seconds()


def trajectory(study, started: datetime.datetime) -> list[tuple[float, float]]:
    """(seconds from the run's start, value) of each completed trial, in order of completion."""
    import optuna

    done = [
        t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    return sorted(((t.datetime_complete - started).total_seconds(), t.value) for t in done)


def time_to_reach(points: list[tuple[float, float]], target: float) -> str:
    """Seconds until a completed trial's value is at least ``target`` ("-" if never)."""
    return next((f"{s:.0f}" for s, value in points if value >= target), "-")


def passes_trained(study, per_pass: int) -> float:
    """Passes over the training split all trials trained together (their reported epochs)."""
    return sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False)) / per_pass


def run_system(system: str, folder: Path, csv: Path, args, n_train: int) -> tuple[list[str], list]:
    """One system's table row and its completed trials' (seconds, value)."""
    config = load_config(study_file(folder, system, csv, args, n_train))
    workdir = folder / system
    workdir.mkdir()
    captured = {}
    if system == "baseline":
        import optuna

        original = optuna.create_study

        def keep(*a, **kw):
            captured["study"] = original(*a, **kw)
            return captured["study"]

        optuna.create_study = keep
        started = datetime.datetime.now()
        try:
            result = run_baseline(config, args.seed, workdir, "sqlite")
        finally:
            optuna.create_study = original
    else:
        from tuner import runner

        original = runner.run_study

        def keep(*a, **kw):
            out = original(*a, **kw)
            captured["study"] = out.study
            return out

        runner.run_study = keep
        started = datetime.datetime.now()
        try:
            result = run_ours(config, args.seed, workdir)
        finally:
            runner.run_study = original
    study = captured["study"]
    wall = (datetime.datetime.now() - started).total_seconds()
    per_pass = args.per_pass if system == "rows" else 1
    row = [
        system,
        f"{wall:.0f}",
        f"{time_to_best(study, started):.0f}",
        f"{result.best_val:.4f}",
        f"{result.test_acc:.4f}",
        f"{result.complete} / {result.pruned}",
        f"{passes_trained(study, per_pass):.1f}",
    ]
    return row, trajectory(study, started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--passes", type=int, default=6, help="passes over the training split per trial at most"
    )
    parser.add_argument(
        "--per-pass", type=int, default=10, help="epochs of epoch_rows per pass (rows system)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    quiet()
    n_train = args.rows - 2 * round(args.rows * 0.2)  # the 60% training split, to a row or two
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-epoch-rows-") as tmp:
        folder = Path(tmp)
        csv = folder / "data.csv"
        write_csv(csv, args.rows)
        rows, points = [], {}
        for system in args.systems:
            t0 = time.perf_counter()
            row, points[system] = run_system(system, folder, csv, args, n_train)
            rows.append(row)
            print(
                f"{system}: {time.perf_counter() - t0:.0f} s, {row}, {points[system]}",
                file=sys.stderr,
                flush=True,
            )
    # When each system first matched the first system's best, to TOLERANCE.
    target = max(v for _, v in points[args.systems[0]]) - TOLERANCE
    for row, system in zip(rows, args.systems, strict=True):
        row.insert(3, time_to_reach(points[system], target))
    print(
        ("_" if args.markdown else "")
        + f"{args.rows:,} rows; {args.trials} trials of at most {args.passes} passes; "
        f"epoch_rows = ceil(training rows / {args.per_pass}); seed {args.seed}; "
        f"Python {platform.python_version()}; NumPy {np.__version__}; {os.cpu_count()} CPUs; "
        f"1-minute load {load:.1f} -> {os.getloadavg()[0]:.1f}" + ("_\n" if args.markdown else "\n")
    )
    header = [
        "system",
        "run wall s",
        "to best s",
        f"to {args.systems[0]}' best - {TOLERANCE} s",
        "best val accuracy",
        "its test accuracy",
        "complete / pruned",
        "passes trained",
    ]
    print(format_table(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
