"""How much a trial's measured latency varies: the defaults trial (trial 0: one and the same
network) of several short digits studies, each with its own split seed, as tuner/search/costs.py times it
inside the trial while the tuner's logging threads run.

    .venv/bin/python bench/bench_latency_spread.py [--seeds 4] [--repeats 2]

Prints trial 0's ``latency_ms_batch1000`` and ``latency_ms_row`` per study, and their range.
Compare two ways of timing by running it from two checkouts (the first argument of
``sys.path``: run it as ``python /path/to/checkout/bench/bench_latency_spread.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_deploy import one_network, run  # noqa: E402


def main() -> int:
    import optuna

    from tuner.study.config import load_config
    from tuner.search.costs import trial_costs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs of the seeds, one after the other")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    batch, row = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for seed in range(args.seeds):
                config = one_network(load_config(ROOT / "studies/digits.toml").with_overrides(n_trials=6, seed=seed))
                result, _ = run(config, Path(tmp))
                costs = trial_costs(result.study.trials[0])
                batch.append(costs["latency_ms_batch1000"])
                row.append(costs["latency_ms_row"])
                print(f"repeat {repeat} seed {seed}: latency_ms_batch1000 {batch[-1]:.3f}, latency_ms_row {row[-1]:.4f}",
                      flush=True)
    print(f"latency_ms_batch1000 {min(batch):.3f}-{max(batch):.3f} ms (mean {sum(batch) / len(batch):.3f}); "
          f"latency_ms_row {min(row):.4f}-{max(row):.4f} ms; {len(batch)} studies; load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
