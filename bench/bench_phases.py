"""Where a study's wall time goes: our tuner on the digits study with timers around its phases.

Runs ``tuner.runner.run_study`` (the code path of ``tuner run``) as ``bench_tuning.py`` does (fresh
SQLite stores, imports paid before timing) and prints, per seed, the wall time and the seconds and
calls spent in each timed function (nested timers overlap: ``optimize`` contains ``objective``,
which contains ``fit`` and ``suggest``), plus the time the garbage collector's full passes took.

    .venv/bin/python bench/bench_phases.py              # seeds 0 1 2
    .venv/bin/python bench/bench_phases.py --seeds 3

What it answered: the budget guard loading every trial (1.2-1.4 s of a 7 s study before it
counted in SQL), per-parameter commits, full garbage collections walking the libraries' heap.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tuning  # noqa: E402  (the same setup as the tuning benchmark)

STUDY = Path(__file__).resolve().parents[1] / "studies" / "digits.toml"


def timed_functions():
    """(owner, attribute, label) for every timed function."""
    import optuna

    from model.classifier import MLPClassifier
    from tuner.storage import budget, _internals as internals
    from tuner.study import metrics
    from tuner.search import objective, pruners as pruning
    from tuner.tracking import plots
    from tuner import run_setup, runner, tracking

    return [
        (run_setup, "load_splits", "load data"),
        (run_setup, "open_storage", "open Optuna storage"),
        (run_setup, "StudyTracker", "open MLflow store"),
        (run_setup, "create_study", "create study"),
        (tracking.StudyTracker, "start_parent", "start parent run"),
        (runner, "optimize", "optimize (all trials)"),
        (optuna.Study, "ask", "  ask"),
        (budget.BudgetGuard, "create", "    budget guard"),
        (objective.Objective, "__call__", "  objective"),
        (objective, "suggest_params", "    suggest (sampler)"),
        (MLPClassifier, "fit", "    fit (training)"),
        (pruning.SnapshotPruner, "prune", "    prune"),
        (internals.TunerRDBStorage, "flush_pending", "  storage: buffered writes"),
        (internals.TunerRDBStorage, "_get_trials", "  storage: read trials"),
        (internals.TunerRDBStorage, "get_trial", "  storage: read one trial"),
        (runner, "build_final_model", "final model (refit, ensemble)"),
        (metrics, "test_scores", "test score"),
        (tracking.StudyTracker, "finish_parent", "finish parent run"),
        (plots, "write_study_plots", "  plots"),
    ]


@contextlib.contextmanager
def timers(seconds: dict[str, float], calls: Counter):
    saved = []
    for owner, name, label in timed_functions():
        original = getattr(owner, name)

        def wrapper(*args, _original=original, _label=label, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_label] += time.perf_counter() - t0
                calls[_label] += 1

        functools.update_wrapper(wrapper, original)
        setattr(owner, name, wrapper)
        saved.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def gc_timer(seconds: dict[str, float]):
    started: dict[str, float] = {}

    def callback(phase: str, info: dict) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            seconds["full garbage collections"] += time.perf_counter() - started.pop("t")

    return callback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import mlflow

    from tuner.study.config import load_config

    bench_tuning.quiet()
    print(f"mlflow {mlflow.__version__}; imports paid before timing")
    config = load_config(STUDY)
    for seed in args.seeds:
        seconds: dict[str, float] = defaultdict(float)
        calls: Counter = Counter()
        callback = gc_timer(seconds)
        gc.callbacks.append(callback)
        try:
            with timers(seconds, calls), tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
                result = bench_tuning.run_ours(config, seed, Path(tmp))
        finally:
            gc.callbacks.remove(callback)
        print(f"seed {seed}: wall {result.wall:.2f} s, {result.complete} complete, {result.pruned} pruned")
        labels = [label for _, _, label in timed_functions()] + ["full garbage collections"]
        for label in labels:
            count = f"{calls[label]:5d} calls" if label in calls else ""
            print(f"  {label:32s} {seconds[label]:7.3f} s  {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
