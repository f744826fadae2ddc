"""What a warm start buys: trials and time until a new study reaches an earlier study's best.

Runs study A (a study file, e.g. ``studies/digits.toml``), then study B twice on the same data
split and space, from the same sampler seed: *cold* (no warm start) and *warm* (``[warm_start]
from = [A]``, ``count`` best trials of A enqueued after the defaults trial, tuner/search/warm_start.py).
For each B it reports its wall time, the best validation score after its first ``--after`` trials
(default 6: the defaults trial and the 5 enqueued ones) and after all of them, and the trials and
seconds (from its first trial's start) until a completed trial's validation score reaches A's
best, or "not reached" within B's budget. ``--seeds`` repeats the whole (A, B cold, B warm) for
each study seed (each seed its own split and sampler seed), and a last table sums the seeds up.
A's best trial repeated in B trains from another initialisation (a trial's seed is the study's
seed plus its number), so it need not score what it scored in A.

Every study runs in a fresh SQLite Optuna storage and MLflow store in a temporary folder, one
worker, one BLAS thread, as ``tuner worker`` runs (no final model: only validation matters here).

    .venv/bin/python bench/bench_warm_start.py [--study studies/digits.toml] [--seeds 0,1,2,3,4] [--trials-a 40] [--trials-b 20] [--count 5] [--markdown]
    .venv/bin/python bench/bench_warm_start.py --quick     # smoke run: 4 + 3 trials of 3 epochs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tables import format_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REACHED = "trials to A's best"


def run(config, storage: str, tracking: str, worker: str) -> float:
    """Run ``config``'s study to its budget as one worker; its wall time in seconds."""
    from tuner.runner import run_worker

    start = time.perf_counter()
    run_worker(config, storage, tracking, worker=worker, blas_threads=1,
               notify=lambda line: print(line, file=sys.stderr))
    return time.perf_counter() - start


def reached(study, target: float, maximize: bool) -> tuple[int | None, float | None]:
    """``(trials, seconds)`` until a completed trial of ``study`` scores ``target`` or better
    (trials counted from its first, seconds from its first trial's start); ``(None, None)`` if none."""
    import optuna

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    if not trials:
        return None, None
    first = min(t.datetime_start for t in trials if t.datetime_start is not None)
    for i, trial in enumerate(trials, start=1):
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        if (trial.value >= target) if maximize else (trial.value <= target):
            return i, (trial.datetime_complete - first).total_seconds()
    return None, None


def best_after(study, k: int, maximize: bool) -> float | None:
    """The best validation score among the completed trials of ``study``'s first ``k``."""
    import optuna

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)[:k]
    values = [t.value for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not values:
        return None
    return max(values) if maximize else min(values)


def bench(args: argparse.Namespace, seed: int) -> list[dict[str, object]]:
    import optuna

    from tuner.study.config import config_from_settings, load_config
    from tuner.search.warm_start import WARM_START_ATTR

    base = load_config(args.study).with_overrides(max_epochs=args.max_epochs, seed=seed)
    settings = base.file_settings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        storage, tracking = f"sqlite:///{tmp}/optuna.db", f"sqlite:///{tmp}/mlflow.db"

        def config(name: str, n_trials: int, warm: bool):
            raw = settings | {"name": name, "budget": settings.get("budget", {}) | {"n_trials": n_trials}}
            if warm:
                raw["warm_start"] = {"from": [f"{base.name}-a"], "count": args.count}
            return config_from_settings(raw, f"{args.study} as {name}")

        source = config(f"{base.name}-a", args.trials_a, warm=False)
        seconds = run(source, storage, tracking, "a")
        a = optuna.load_study(study_name=source.name, storage=storage)
        maximize = source.direction == "maximize"
        target = a.best_value
        after = f"best val after {args.after}"
        rows.append({"seed": seed, "study": "A", "trials": len(a.trials), "wall s": round(seconds, 1),
                     after: "-", f"best val {source.metric}": round(target, 4), "trials to A's best": "-",
                     "s to A's best": "-", "enqueued": "-"})
        for label, warm in (("B cold", False), ("B warm", True)):
            b_config = config(f"{base.name}-{label.split()[1]}", args.trials_b, warm)
            seconds = run(b_config, storage, tracking, "b")  # the same sampler seed for both
            b = optuna.load_study(study_name=b_config.name, storage=storage)
            n, at = reached(b, target, maximize)
            record = b.user_attrs.get(WARM_START_ATTR) or []
            early = best_after(b, args.after, maximize)
            rows.append({
                "seed": seed, "study": label, "trials": len(b.trials), "wall s": round(seconds, 1),
                after: "-" if early is None else round(early, 4),
                f"best val {source.metric}": round(b.best_value, 4),
                "trials to A's best": n if n is not None else "not reached",
                "s to A's best": round(at, 1) if at is not None else "not reached",
                "enqueued": sum(s["enqueued"] for s in record) if warm else "-",
            })
    return rows


def summary(rows: list[dict[str, object]], after: int) -> tuple[list[str], list[list[str]]]:
    """Per B: over the seeds, the mean best validation score after ``after`` trials and at the
    end, the seeds on which it reached A's best, and its median wall time."""
    import statistics

    metric_key = next(k for k in rows[0] if k.startswith("best val ") and not k.startswith("best val after"))
    header = ["study", "seeds", f"mean best val after {after}", f"mean {metric_key}", "reached A's best", "median wall s"]
    out = []
    for label in ("A", "B cold", "B warm"):
        mine = [r for r in rows if r["study"] == label]
        early = [r[f"best val after {after}"] for r in mine if r[f"best val after {after}"] != "-"]
        out.append([
            label, str(len(mine)),
            f"{statistics.mean(early):.4f}" if early else "-",
            f"{statistics.mean(r[metric_key] for r in mine):.4f}",
            "-" if label == "A" else f"{sum(r[REACHED] != 'not reached' for r in mine)} of {len(mine)}",
            f"{statistics.median(r['wall s'] for r in mine):.1f}",
        ])
    return header, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(REPO / "studies" / "digits.toml"))
    parser.add_argument("--trials-a", type=int, default=40)
    parser.add_argument("--trials-b", type=int, default=20)
    parser.add_argument("--count", type=int, default=5, help="[warm_start] count")
    parser.add_argument("--seeds", default="0", help="study seeds, comma-separated (each its own split)")
    parser.add_argument("--after", type=int, default=6, help="report B's best after its first N trials")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the study file's epochs")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 + 3 trials of 3 epochs, count 2")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.trials_a, args.trials_b, args.count, args.max_epochs = 4, 3, 2, 3
    from tuner.process import own_process

    own_process()  # the benchmark owns its process: the command's quiet libraries
    load = os.getloadavg()[0]
    rows = [row for seed in (int(s) for s in args.seeds.split(",")) for row in bench(args, seed)]
    header = list(rows[0])
    print(format_table(header, [[str(row[h]) for h in header] for row in rows], markdown=args.markdown))
    print()
    print(format_table(*summary(rows, args.after), markdown=args.markdown))
    print(f"load average (1 min) {load:.1f} -> {os.getloadavg()[0]:.1f}; study {args.study}, "
          f"{args.trials_a} trials for A, {args.trials_b} for each B, count {args.count}")


if __name__ == "__main__":
    main()
