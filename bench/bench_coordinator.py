"""What the coordinator holds: 1 to 32 ``tuner worker`` processes on one PostgreSQL study of
cheap trials, with one MLflow tracking server, and whether the study comes out whole.

Each trial trains a fixed tiny network (1 layer of 8 units, a few epochs of iris, only the
learning rate drawn), so it takes milliseconds and the shared stores do most of the work: the
Optuna storage (trial creation under the budget lock, sampling from every trial so far,
heartbeats, results) and the tracking server (a parent run per worker, a child run per trial).

For each worker count W: a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and
a study of its own on one ``mlflow server`` (SQLite backend in a temporary folder, one uvicorn
worker, port 0: it picks a free port and its log says which). W ``tuner worker`` processes start
together with one total budget (``--trials``) and create the study between them. Reported, from
Optuna's own timestamps (process start-up is not counted):

- trials / min: finished trials / (last completion - first start);
- storage ms / trial: the trial's wall time in Optuna minus the time the objective measured
  (``train_seconds``), i.e. creating, sampling and finishing the trial in the storage, median
  and 90th percentile;
- the most connections the study's database had at once (``pg_stat_activity``, polled);
- how many workers ran trials and the most trials running at once: W processes starting
  together on a small host take a while to import and join, and those that join after the
  budget is taken run none, so W is what was started, not what ran in parallel;
- wall s: from starting the workers until the last exits (imports, joining, parent runs).

``--sleep S`` makes each fit also sleep S seconds (inside the objective, before the fit, so it
counts as training time; on iris a trial fits its 5 validation splits, ``validation_splits =
"auto"``, so it sleeps 5 S): trials that leave the CPU idle, as trials waiting on
a GPU or on I/O would, so that the stores rather than the host's cores are what the workers
share. It is done in the benchmark only, by a ``sitecustomize`` module on the workers'
``PYTHONPATH`` that wraps the estimators the objective builds.

And checked after each run: every worker exited 0 and printed no error line; the trials that
count against the budget (:func:`tuner.storage.budget.counted_trials`) are exactly the budget; trial
numbers run 0..n-1 with no gap or duplicate; none is left RUNNING or WAITING; every trial has
exactly one MLflow child run, under one of the W parent runs, in the status of its state; the W
parent runs are FINISHED.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_coordinator.py [--workers 1 2 4 8 16 32] [--trials 200] [--markdown]
    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_coordinator.py --sleep 2 --markdown
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_workers import PG, _pg_admin  # noqa: E402
from tables import format_table  # noqa: E402

from tests.helpers import mlflow_server, sqlite_server_args  # noqa: E402
from tuner.storage.budget import counted_trials  # noqa: E402
from tuner.tracking.keys import RUN_STATUS, TAG_PARENT, TAG_ROLE, TAG_STUDY, TAG_TRIAL  # noqa: E402
from tuner.tracking.runs import search_trial_runs  # noqa: E402

State = optuna.trial.TrialState

STUDY = """
name = "{name}"
seed = 0

[data]
source = "sklearn:iris"

[budget]
n_trials = {trials}
max_epochs = {epochs}

[pruner]
name = "none"

[result]
start_from_defaults = false

[space]
n_layers = 1
units = 8
batch_size = 32
learning_rate = {{low = 1e-3, high = 1e-1, log = true}}
patience = false
"""

#: A worker's output line that says something went wrong (its normal output is two lines).
PROBLEM = re.compile(r"error|exception|traceback|warning|failed|refused|timed? ?out", re.IGNORECASE)


#: The workers' ``sitecustomize`` under ``--sleep``: every estimator the objective builds sleeps
#: before it fits, inside the time the objective measures.
SLEEPY = """
import os
import time

import tuner.search.objective

_build = tuner.search.objective.build_estimator
_pause = float(os.environ["BENCH_TRIAL_SLEEP"])


def _sleepy_build(*args, **kwargs):
    estimator = _build(*args, **kwargs)
    fit = estimator.fit

    def sleepy_fit(*fit_args, **fit_kwargs):
        time.sleep(_pause)
        return fit(*fit_args, **fit_kwargs)

    estimator.fit = sleepy_fit
    return estimator


tuner.search.objective.build_estimator = _sleepy_build
"""


def write_study(folder: Path, name: str, trials: int, epochs: int) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, trials=trials, epochs=epochs))
    return path


def _connections(db: str) -> int:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,)).fetchone()[0]


def start_workers(workers: int, study_file: Path, storage: str, tracking: str, folder: Path,
                  sleep: float = 0.0) -> list:
    """W ``tuner worker`` processes started together, each writing its output to its own log;
    with ``sleep``, each fit also sleeps that long (see ``SLEEPY``)."""
    env = os.environ.copy()
    for name in ("MLFLOW_RUN_ID", "TUNER_STORAGE", "TUNER_HEARTBEAT_INTERVAL", "TUNER_GRACE_PERIOD"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    if sleep:
        hook = folder / "sleepy"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SLEEPY)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
        env["BENCH_TRIAL_SLEEP"] = str(sleep)
    cmd = [sys.executable, "-m", "tuner.cli.app", "worker", str(study_file), "--storage", storage,
           "--tracking-uri", tracking]
    procs = []
    for i in range(workers):
        log = open(folder / f"worker-{i}.log", "w")  # noqa: SIM115 - closed when the process ends
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env), log))
    return procs


def wait_workers(procs: list, db: str, deadline: float) -> tuple[list[int | None], int]:
    """Exit codes (None: still running at the deadline, then killed) and the most connections
    the database had at once while they ran."""
    peak = 0
    while any(p.poll() is None for p, _ in procs) and time.time() < deadline:
        peak = max(peak, _connections(db))
        time.sleep(0.5)
    codes = [p.poll() for p, _ in procs]
    for p, log in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)
        log.close()
    return codes, peak


def check(study: optuna.Study, budget: int, workers: int, tracking: str) -> tuple[list[str], int]:
    """What is wrong with the finished study and its MLflow runs (empty: nothing), and how many
    workers ran trials (parent runs with a child: a worker that joined late may find the
    budget taken)."""
    from mlflow import MlflowClient

    problems = []
    trials = study.get_trials(deepcopy=False)
    counted = len(counted_trials(trials))
    if counted != budget:
        problems.append(f"{counted} trials count against a budget of {budget}")
    numbers = sorted(t.number for t in trials)
    if numbers != list(range(len(trials))):
        problems.append(f"trial numbers are not 0..{len(trials) - 1}: {numbers}")
    open_trials = [t.number for t in trials if t.state in (State.RUNNING, State.WAITING)]
    if open_trials:
        problems.append(f"trials left RUNNING or WAITING: {open_trials}")
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(study.study_name)
    if experiment is None:
        return [*problems, f"no MLflow experiment {study.study_name!r}"], 0
    parents = client.search_runs(
        [experiment.experiment_id], max_results=1000,
        filter_string=f"tags.`{TAG_ROLE}` = 'parent' AND tags.`{TAG_STUDY}` = '{study.study_name}'",
    )
    if len(parents) != workers or {p.info.status for p in parents} != {"FINISHED"}:
        problems.append(f"parent runs: {sorted(p.info.status for p in parents)} for {workers} workers")
    parent_ids = {p.info.run_id for p in parents}
    children: dict[int, list] = {}
    for run in search_trial_runs(client, experiment.experiment_id, study.study_name):
        children.setdefault(int(run.data.tags[TAG_TRIAL]), []).append(run)
    if sorted(children) != numbers:
        problems.append(f"trials without a child run: {sorted(set(numbers) - set(children))}; "
                        f"child runs of no trial: {sorted(set(children) - set(numbers))}")
    doubled = {n: len(runs) for n, runs in children.items() if len(runs) != 1}
    if doubled:
        problems.append(f"trials with more than one child run: {doubled}")
    for trial in trials:
        for run in children.get(trial.number, []):
            if run.data.tags.get(TAG_PARENT) not in parent_ids:
                problems.append(f"trial {trial.number}'s run is under no parent run of this study")
            if run.info.status != RUN_STATUS.get(trial.state.name):
                problems.append(f"trial {trial.number} is {trial.state.name}, its run {run.info.status}")
    active = {run.data.tags.get(TAG_PARENT) for runs in children.values() for run in runs} & parent_ids
    return problems, len(active)


def peak_concurrency(trials: list[optuna.trial.FrozenTrial]) -> int:
    """The most trials running at once, from their start and completion times."""
    events = sorted([(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run(workers: int, trials: int, epochs: int, folder: Path, tracking: str, run_timeout: float,
        sleep: float = 0.0) -> dict:
    name = f"coord-{workers}-{uuid.uuid4().hex[:6]}"
    db = f"bench_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{db}"')
    storage = PG.format(db=db)
    work = folder / name
    work.mkdir()
    try:
        study_file = write_study(work, name, trials, epochs)
        started = time.time()
        procs = start_workers(workers, study_file, storage, tracking, work, sleep)
        codes, peak = wait_workers(procs, db, started + run_timeout)
        wall = time.time() - started
        lines = [line.strip() for i in range(workers) for line in (work / f"worker-{i}.log").read_text().splitlines()]
        problem_lines = [line for line in lines if PROBLEM.search(line)]
        study = optuna.load_study(study_name=name, storage=storage)
        problems, active = check(study, trials, workers, tracking)
        bad_codes = [c for c in codes if c != 0]
        if bad_codes:
            problems.insert(0, f"worker exit codes {bad_codes} (None: stuck, killed after {run_timeout:.0f} s)")
        if problem_lines:
            problems.append(f"{len(problem_lines)} problem lines in the workers' output, first: {problem_lines[0]}")
        done = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        timed = [t for t in done if "train_seconds" in t.user_attrs]
        overhead = sorted((t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["train_seconds"]
                          for t in timed)
        states = {s: sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in State}
        return {
            "workers": workers, "trials": len(done), "span": span, "wall": wall, "per_minute": 60 * len(done) / span,
            "overhead_ms": 1000 * statistics.median(overhead),
            "overhead_p90_ms": 1000 * overhead[int(0.9 * (len(overhead) - 1))],
            "train_ms": 1000 * statistics.median(t.user_attrs["train_seconds"] for t in timed),
            "failed": states[State.FAIL], "connections": peak, "active": active,
            "concurrent": peak_concurrency(done), "problems": problems,
            "load": os.getloadavg()[0],
        }
    finally:
        _pg_admin(f'DROP DATABASE "{db}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--trials", type=int, default=200, help="the study's total budget, every run")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (iris, 1 layer of 8 units)")
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds each fit also sleeps (idle CPU; 5 fits a trial)")
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds before a run's workers count as stuck")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with mlflow_server(sqlite_server_args(folder), folder, folder / "server.log") as port:
            tracking = f"http://127.0.0.1:{port}"
            for workers in args.workers:
                r = run(workers, args.trials, args.epochs, folder, tracking, args.run_timeout, args.sleep)
                print(f"  workers {workers}: {r['trials']} trials in {r['span']:.1f} s "
                      f"({r['wall']:.1f} s with start-up), load {r['load']:.1f}: "
                      f"{'; '.join(r['problems']) or 'ok'}", file=sys.stderr, flush=True)
                rows.append(r)
            server_errors = [line for line in (folder / "server.log").read_text(errors="replace").splitlines()
                             if re.search(r"\bERROR\b|Traceback", line)]
    header = ["workers", "with trials", "trials at once (peak)", "trials", "seconds", "wall s", "trials / min", "storage ms / trial (median)", "(p90)",
              "train ms / trial (median)", "failed trials", "peak DB connections", "checks"]
    lines = [[str(r["workers"]), str(r["active"]), str(r["concurrent"]), str(r["trials"]), f"{r['span']:.1f}",
              f"{r['wall']:.0f}", f"{r['per_minute']:.0f}",
              f"{r['overhead_ms']:.0f}", f"{r['overhead_p90_ms']:.0f}", f"{r['train_ms']:.0f}", str(r["failed"]),
              str(r["connections"]), "; ".join(r["problems"]) or "ok"] for r in rows]
    print(format_table(header, lines, args.markdown))
    print(f"\nbudget {args.trials} trials of {args.epochs} epochs per run"
          + (f", each fit sleeping {args.sleep:g} s" if args.sleep else "") + f"; {os.cpu_count()} CPUs; 1-minute load "
          f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; tracking server errors: "
          f"{len(server_errors)}" + (f", first: {server_errors[0]}" if server_errors else ""))
    return 1 if any(r["problems"] for r in rows) or server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
