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
- ``heavy``: as ``fixed``, with the heavier trials of issue 29's measurement: two hidden layers
  of 256 units, batches of 256, 60 epochs, no early stopping before the end (the learning rate,
  optimizer and the rest drawn once, as ``fixed``), so the median training seconds per trial
  of 1 and 2 workers say how much a second worker on the host slows each trial.
- ``tuned``: the digits study as it is (TPE, median pruner). Each run samples its own trials
  (two workers see each other's running trials), so the work differs from run to run.

Launch (``--launch``), how the workers are started, as a user would:

- ``jobs``: one ``tuner run STUDY --jobs W`` (SQLite and PostgreSQL).
- ``worker``: W separate ``tuner worker STUDY`` processes started together on this host (the
  README's "as many as you like" and docker-compose's ``--scale worker=W``; PostgreSQL only, the
  storage Optuna recommends for separate processes).

Two readings beside the speed-up: "bound by the queue", the speed-up W workers would reach if each
took the next queued trial when free and every trial took as long as in the 1-worker run
(:func:`list_schedule_span`: a long trial taken last leaves the others idle), and "start stagger",
the time from the first trial's start to the W-th's (about when the last worker began). The
footer says what the machine allowed meanwhile (``bench/machine.py``): how two processes of pure
computation scaled on its cores before and after the runs, and the CPU time the hypervisor stole.

Threads (``--threads``): ``policy`` starts the workers as the README says (one BLAS thread per
worker process, ``tuner.threads``); ``all`` passes ``--threads <CPUs>``, what every worker had
before the policy (OpenBLAS's default of one thread per core), to measure what the policy buys.

    .venv/bin/python bench/bench_workers.py [--trials 40] [--repeats 3] [--workload fixed] [--markdown]
    .venv/bin/python bench/bench_workers.py --launch worker --workers 1 2 4 --threads policy all
    .venv/bin/python bench/bench_workers.py --workload heavy --trials 24 --storages sqlite
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import CpuTimes, core_scaling, steal_percent  # noqa: E402
from tables import format_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(sql)


def fixed_study_file(folder: Path) -> Path:
    """digits.toml with the pruner off (every trial trains to its own end) and no defaults trial
    (the queue holds exactly the drawn trials)."""
    text = (REPO / "studies/digits.toml").read_text()
    pruner = '[pruner]\nname = "median"\nn_warmup_steps = 5\n'
    assert pruner in text, "studies/digits.toml's [pruner] table changed: update bench_workers.py"
    text = text.replace(pruner, '[pruner]\nname = "none"\n')
    no_defaults_trial = "start_from_defaults = false\n"
    if "\n[result]\n" in text:  # the study file's own [result] table takes the key
        text = text.replace("\n[result]\n", "\n[result]\n" + no_defaults_trial)
    else:
        text += "\n[result]\n" + no_defaults_trial
    path = folder / "digits-fixed.toml"
    path.write_text(text)
    return path


#: What ``--workload heavy`` fixes in the digits space and budget.
HEAVY = {
    "n_layers = {low = 1, high = 4}": "n_layers = 2",
    "units = {low = 16, high = 256, log = true}": "units = 256",
    "batch_size = [32, 64, 128, 256, 512]": "batch_size = 256",
    "patience = {low = 3, high = 20}": "patience = 60",
    "max_epochs = 40": "max_epochs = 60",
}


def heavy_study_file(folder: Path) -> Path:
    """The ``fixed`` study file with :data:`HEAVY` written in."""
    path = fixed_study_file(folder)
    text = path.read_text()
    for old, new in HEAVY.items():
        assert old in text, f"studies/digits.toml no longer has {old!r}: update bench_workers.py"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def enqueue_fixed_trials(study_file: Path, storage: str, trials: int) -> None:
    """Create the study and queue ``trials`` parameter sets drawn once from its space."""
    from tuner.study.config import load_config
    from tuner.runner import create_study
    from tuner.study.space import suggest_params

    config = load_config(study_file)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    draw.optimize(lambda t: suggest_params(t, config.space, config.budget.max_epochs) and 0.0, n_trials=trials)
    study = create_study(config, storage)
    for trial in draw.trials:
        study.enqueue_trial(trial.params)


def launch(launch_kind: str, study_file: Path, workers: int, trials: int, storage: str, tracking: str,
           threads: str, folder: Path) -> None:
    """Run the study to ``trials`` with ``workers`` workers started the ``launch_kind`` way."""
    thread_args = [] if threads == "policy" else ["--threads", str(os.cpu_count() or 1)]
    common = [str(study_file), "--trials", str(trials), "--storage", storage, "--tracking-uri", tracking, *thread_args]
    cli = [sys.executable, "-m", "tuner.cli.app"]
    env = os.environ.copy()
    if launch_kind == "jobs":
        subprocess.run([*cli, "run", *common, "--jobs", str(workers)], cwd=folder, check=True,
                       capture_output=True, text=True, env=env)
        return
    procs = [subprocess.Popen([*cli, "worker", *common], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"tuner worker exited {proc.returncode}: {err[-3000:]}")


def run(storage_kind: str, workers: int, trials: int, folder: Path, workload: str,
        launch_kind: str = "jobs", threads: str = "policy") -> dict:
    db = None
    if storage_kind == "postgresql":
        db = f"bench_{uuid.uuid4().hex[:8]}"
        _pg_admin(f'CREATE DATABASE "{db}"')
        storage = PG.format(db=db)
    else:
        storage = f"sqlite:///{folder}/optuna-{workers}-{uuid.uuid4().hex[:8]}.db"
    study_file = REPO / "studies/digits.toml"
    try:
        if workload in ("fixed", "heavy"):
            study_file = (fixed_study_file if workload == "fixed" else heavy_study_file)(folder)
            enqueue_fixed_trials(study_file, storage, trials)
        tracking = f"sqlite:///{folder}/mlflow-{uuid.uuid4().hex[:8]}.db"
        import mlflow

        mlflow.MlflowClient(tracking).search_experiments()  # the store exists before workers race to it
        launch(launch_kind, study_file, workers, trials, storage, tracking, threads, folder)
        study = optuna.load_study(study_name="digits", storage=storage)
        done = [t for t in study.trials if t.datetime_complete is not None]
        span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
        overhead = [
            (t.datetime_complete - t.datetime_start).total_seconds() - t.user_attrs["train_seconds"]
            for t in done if "train_seconds" in t.user_attrs
        ]
        train = [t.user_attrs["train_seconds"] for t in done if "train_seconds" in t.user_attrs]
        blas = sorted({int(t.user_attrs.get("blas_threads", 0)) for t in done})
        starts = sorted(t.datetime_start for t in done)
        ordered = sorted(done, key=lambda t: t.number)  # the queue's order (fixed workload)
        return {
            "storage": storage_kind, "launch": launch_kind, "threads": threads, "blas": blas,
            "workers": workers, "trials": len(done), "span": span, "per_minute": 60 * len(done) / span,
            "overhead_ms": 1000 * statistics.median(overhead), "train_s": statistics.median(train),
            # the W-th trial's start: about when the last of W workers began its first trial
            "stagger": (starts[min(workers, len(starts)) - 1] - starts[0]).total_seconds(),
            "durations": [(t.datetime_complete - t.datetime_start).total_seconds() for t in ordered],
        }
    finally:
        if db:
            _pg_admin(f'DROP DATABASE "{db}" WITH (FORCE)')


def list_schedule_span(durations: list[float], workers: int) -> float:
    """The span of ``workers`` workers that each take the next trial of the queue when free, with
    the trials' durations as measured: the best a run can do on this workload without start-up
    cost or contention, so ``sum / span`` bounds its speed-up (a long trial taken last leaves the
    other workers idle)."""
    free = [0.0] * workers
    for d in durations:
        i = free.index(min(free))
        free[i] += d
    return max(free)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median is reported")
    parser.add_argument("--workload", choices=("fixed", "heavy", "tuned"), default="fixed")
    parser.add_argument("--launch", choices=("jobs", "worker"), default="jobs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", choices=("policy", "all"), nargs="+", default=["policy"])
    parser.add_argument("--storages", choices=("sqlite", "postgresql"), nargs="+", default=None,
                        help="default: both for --launch jobs, postgresql for --launch worker")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    storages = args.storages or (["sqlite", "postgresql"] if args.launch == "jobs" else ["postgresql"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    cpu_before, scaling_before = CpuTimes.now(), core_scaling()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in storages:
            for threads in args.threads:
                for workers in args.workers:
                    runs = []
                    for _ in range(args.repeats):  # interleaving would mix load; repeats run back to back
                        r = run(kind, workers, args.trials, Path(tmp), args.workload, args.launch, threads)
                        print(f"  {kind:10s} {args.launch} threads {threads} (BLAS {r['blas']}) workers {workers}: "
                              f"{r['trials']} trials in {r['span']:.1f} s, load {os.getloadavg()[0]:.1f}",
                              file=sys.stderr, flush=True)
                        runs.append(r)
                    rows.append(sorted(runs, key=lambda r: r["span"])[len(runs) // 2])
    base = {(r["storage"], r["threads"]): r["per_minute"] for r in rows if r["workers"] == 1}
    ones = {(r["storage"], r["threads"]): r["durations"] for r in rows if r["workers"] == 1}
    header = ["storage", "launch", "threads", "BLAS threads / worker", "workers", "trials", "seconds", "trials / min",
              "speed-up vs 1 worker", "bound by the queue", "start stagger s", "median train s / trial",
              "storage overhead / trial (median ms)"]
    lines = []
    for r in rows:
        one = base.get((r["storage"], r["threads"]))
        durations = ones.get((r["storage"], r["threads"]))
        bound = sum(durations) / list_schedule_span(durations, r["workers"]) if durations else None
        lines.append([r["storage"], r["launch"], r["threads"], ",".join(map(str, r["blas"])), str(r["workers"]),
                      str(r["trials"]), f"{r['span']:.1f}", f"{r['per_minute']:.1f}",
                      f"{r['per_minute'] / one:.2f}x" if one else "-", f"{bound:.2f}x" if bound else "-",
                      f"{r['stagger']:.2f}", f"{r['train_s']:.2f}", f"{r['overhead_ms']:.0f}"])
    print(format_table(header, lines, args.markdown))
    steal = steal_percent(cpu_before, CpuTimes.now())
    print(f"\nworkload {args.workload}; median of {args.repeats} runs per row; {os.cpu_count()} CPUs; "
          f"1-minute load at the end: {os.getloadavg()[0]:.1f}; two processes of pure computation scaled "
          f"{scaling_before:.2f}x before the runs and {core_scaling():.2f}x after (bench/machine.py)"
          + (f"; CPU time stolen by the hypervisor during the runs {steal:.1f}%" if steal is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
