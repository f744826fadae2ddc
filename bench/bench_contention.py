"""Training beside a busy process: the BLAS thread policy (tuner/threads.py) against all threads.

Two measurements, each on a quiet machine and then beside one busy process of another program
(a Python loop spinning on one core, started before and stopped after the timing):

- **network**: 3 epochs of our ``MLPClassifier`` on 20,000 x 100 synthetic rows, hidden (256, 256),
  batch 256, float32 (the issue's reproduction), with the thread policy (1 BLAS thread) and with
  one thread per CPU (OpenBLAS's own default). Median of ``--repeats`` fits.
- **trial**: ``tuner run`` of the fixed digits workload of ``bench_workers.py`` (the same
  enqueued trials, pruner off, SQLite, one worker), with the policy and with ``--threads <CPUs>``;
  the figure is the median of the trials' ``train_seconds`` (what Optuna's trial spent training,
  reporting and pruning).

The ratio busy / quiet is what a user whose host is also running something else pays.

    .venv/bin/python bench/bench_contention.py [--repeats 3] [--trials 16] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_workers  # noqa: E402
from tables import format_table  # noqa: E402

SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy_process(on: bool):
    """One process of another program spinning on a core for the block (nothing when ``on`` is false)."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    time.sleep(0.5)  # scheduled and spinning before the timing starts
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def time_network(threads: int, repeats: int) -> float:
    """Median seconds of 3 epochs of the issue's network with ``threads`` BLAS threads."""
    import numpy as np

    from model import MLPClassifier
    from tuner.threads import limit_blas_threads

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 100)).astype(np.float32)
    y = (X[:, :10].sum(axis=1) > 0).astype(int)
    times = []
    with limit_blas_threads(threads):
        for _ in range(repeats):
            clf = MLPClassifier(hidden_layer_sizes=(256, 256), batch_size=256, max_epochs=3,
                                early_stopping=False, random_state=0)
            start = time.perf_counter()
            clf.fit(X, y)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_trials(threads: str, trials: int) -> float:
    """Median training seconds per trial of ``tuner run`` on the fixed digits workload."""
    with tempfile.TemporaryDirectory() as tmp:
        result = bench_workers.run("sqlite", 1, trials, Path(tmp), "fixed", "jobs", threads)
    return result["train_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fits per network timing (median)")
    parser.add_argument("--trials", type=int, default=16, help="trials of the fixed workload per trial timing")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    load_start = os.getloadavg()[0]
    rows = []
    for what in ("network", "trial"):
        for policy, threads in (("policy (1 thread)", 1), (f"all ({cpus} threads)", cpus)):
            timings = {}
            for busy in (False, True):
                with busy_process(busy):
                    if what == "network":
                        timings[busy] = time_network(threads, args.repeats)
                    else:
                        timings[busy] = time_trials("policy" if threads == 1 else "all", args.trials)
                print(f"  {what} {policy} {'busy' if busy else 'quiet'}: {timings[busy]:.3f} s", file=sys.stderr, flush=True)
            rows.append([what, policy, f"{timings[False]:.3f}", f"{timings[True]:.3f}", f"{timings[True] / timings[False]:.2f}x"])
    header = ["measure", "BLAS threads", "quiet s", "beside a busy process s", "busy / quiet"]
    print(format_table(header, rows, args.markdown))
    print(f"\n{cpus} CPUs; network: median of {args.repeats} fits of 3 epochs; trial: median train seconds "
          f"of {args.trials} fixed trials; 1-minute load at the start {load_start:.1f}, at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
