"""Trials per minute of the digits study with 1 and 2 workers, on SQLite and on PostgreSQL.

Each configuration runs ``tuner run studies/digits.toml --jobs W`` as a subprocess on a fresh
storage (a new SQLite file, or a new PostgreSQL database on 127.0.0.1:5432 that is dropped
afterwards) and a fresh MLflow SQLite store. Throughput is taken from Optuna's own timestamps:
finished trials / (last completion - first start), so process start-up is not counted.
Storage overhead per trial is the trial's wall time in Optuna minus the time the objective
measured for it (``train_seconds``: training, per-epoch reports and pruning), i.e. the time
Optuna spends creating, sampling and finishing the trial in the storage.

    .venv/bin/python bench/bench_workers.py [--trials 40] [--markdown]
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


def run(storage_kind: str, workers: int, trials: int, folder: Path) -> dict:
    db = None
    if storage_kind == "postgresql":
        db = f"bench_{uuid.uuid4().hex[:8]}"
        _pg_admin(f'CREATE DATABASE "{db}"')
        storage = PG.format(db=db)
    else:
        storage = f"sqlite:///{folder}/optuna-{workers}.db"
    try:
        cmd = [sys.executable, "-m", "tuner.cli", "run", str(REPO / "studies/digits.toml"), "--trials", str(trials),
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
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "postgresql"):
            for workers in (1, 2):
                r = run(kind, workers, args.trials, Path(tmp))
                print(f"  {kind:10s} workers {workers}: {r['trials']} trials in {r['span']:.1f} s", file=sys.stderr, flush=True)
                rows.append(r)
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
    print(f"\n{os.cpu_count()} CPUs; 1-minute load at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
