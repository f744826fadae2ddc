"""Trials per minute of the digits study with 1 and 2 workers, on SQLite and on PostgreSQL.

Each configuration runs ``tuner run studies/digits.toml --jobs W`` as a subprocess on a fresh
storage (a new SQLite file, or a new PostgreSQL database on 127.0.0.1:5432 that is dropped
afterwards) and a fresh MLflow SQLite store. Throughput is taken from Optuna's own timestamps:
finished trials / (last completion - first start), so process start-up is not counted.
Storage overhead per trial is the trial's wall time in Optuna minus the time the objective
measured for it (``train_seconds``: training, per-epoch reports and pruning), i.e. the time
Optuna spends creating, sampling and finishing the trial in the storage.

Workloads (``--workload``):

- ``fixed`` (default): every configuration trains the same trials. The study is created first
  with ``--trials`` parameter sets drawn once from the digits space (random sampler, seed 0)
  and enqueued, and the pruner is off, so 1 and 2 workers do the same work and the ratio
  measures parallel throughput, not sampling luck.
- ``tuned``: the digits study as it is (TPE, median pruner). Each run samples its own trials
  (two workers see each other's running trials), so the work differs from run to run.

    .venv/bin/python bench/bench_workers.py [--trials 40] [--repeats 3] [--workload fixed] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def fixed_study_file(folder: Path) -> Path:
    """digits.toml with the pruner off: every trial trains to its own end."""
    text = (REPO / "studies/digits.toml").read_text()
    pruner = '[pruner]\nname = "median"\nn_warmup_steps = 5\n'
    assert pruner in text, "studies/digits.toml's [pruner] table changed: update bench_workers.py"
    path = folder / "digits-fixed.toml"
    path.write_text(text.replace(pruner, '[pruner]\nname = "none"\n'))
    return path


def enqueue_fixed_trials(study_file: Path, storage: str, trials: int) -> None:
    """Create the study and queue ``trials`` parameter sets drawn once from its space."""
    from tuner.config import load_config
    from tuner.runner import create_study
    from tuner.space import suggest_params

    config = load_config(study_file)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draw.optimize(lambda t: suggest_params(t, config.space, config.budget.max_epochs) and 0.0, n_trials=trials)
    study = create_study(config, storage)
    for trial in draw.trials:
        study.enqueue_trial(trial.params)


def run(storage_kind: str, workers: int, trials: int, folder: Path, workload: str) -> dict:
    db = None
    if storage_kind == "postgresql":
        db = f"bench_{uuid.uuid4().hex[:8]}"
        _pg_admin(f'CREATE DATABASE "{db}"')
        storage = PG.format(db=db)
    else:
        storage = f"sqlite:///{folder}/optuna-{workers}-{uuid.uuid4().hex[:8]}.db"
    study_file = REPO / "studies/digits.toml"
    try:
        if workload == "fixed":
            study_file = fixed_study_file(folder)
            enqueue_fixed_trials(study_file, storage, trials)
        cmd = [sys.executable, "-m", "tuner.cli", "run", str(study_file), "--trials", str(trials),
               "--jobs", str(workers), "--storage", storage, "--tracking-uri", f"sqlite:///{folder}/mlflow-{storage_kind}-{workers}.db"]
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True, text=True, env=os.environ.copy())
        study = optuna.load_study(study_name="digits", storage=storage)
        done = [t for t in study.trials if t.datetime_complete is not None]
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        overhead = [
            (t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["train_seconds"]
            for t in done if "train_seconds" in t.user_attrs
        ]
        return {
            "storage": storage_kind, "workers": workers, "trials": len(done), "span": span,
            "per_minute": 60 * len(done) / span, "overhead_ms": 1000 * statistics.median(overhead),
        }
    finally:
        if db:
            _pg_admin(f'DROP DATABASE "{db}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median is reported")
    parser.add_argument("--workload", choices=("fixed", "tuned"), default="fixed")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgresql"):
            for workers in (1, 2):
                runs = []
                for _ in range(args.repeats):  # interleaving would mix load; repeats run back to back
                    r = run(kind, workers, args.trials, Path(tmp), args.workload)
                    print(f"  {kind:10s} workers {workers}: {r['trials']} trials in {r['span']:.1f} s", file=sys.stderr, flush=True)
                    runs.append(r)
                rows.append(sorted(runs, key=lambda r: r["span"])[len(runs) // 2])
    base = {r["storage"]: r["per_minute"] for r in rows if r["workers"] == 1}
    header = ["storage", "workers", "trials", "seconds", "trials / min", "speed-up vs 1 worker", "storage overhead / trial (median ms)"]
    lines = []
    for r in rows:
        lines.append([r["storage"], str(r["workers"]), str(r["trials"]), f"{r['span']:.1f}", f"{r['per_minute']:.1f}",
                      f"{r['per_minute'] / base[r['storage']]:.2f}x", f"{r['overhead_ms']:.0f}"])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        for line in [header, *lines]:
            print("  ".join(f"{c:>12s}" for c in line))
    print(f"\nworkload {args.workload}; median of {args.repeats} runs per row; {os.cpu_count()} CPUs; "
          f"1-minute load at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
