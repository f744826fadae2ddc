"""What a multi-objective study costs without pruning (issue 14): the digits study as three studies
of the same budget, split and sampler seed.

* **single, pruned**: ``studies/digits.toml`` as shipped (accuracy, median pruner).
* **single, not pruned**: the same with ``[pruner] name = "none"``: what pruning saves.
* **multi-objective**: ``[objective] metrics = ["accuracy", "n_params"]`` (a cost known exactly, so
  the front does not depend on timing noise), no pruner (Optuna's pruners do not support
  multi-objective studies; the README's "Multi-objective studies" says why none replaces them).

Each study's final model is one network (``[result] ensemble = 1, seeds = 1``, as a
multi-objective study's always is), so the wall times compare the trials. Reported per study:
wall time, completed and pruned trials, the best validation accuracy, and for the
multi-objective study the size of its Pareto front.

    .venv/bin/python bench/bench_pareto.py --markdown            # seeds 0-2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_deploy import run  # noqa: E402
from tables import format_table  # noqa: E402


def variants(seed: int):
    """The three study configs (see the module docstring) for ``seed``."""
    import tomllib

    from tuner.study.config import StudyConfig

    raw = tomllib.loads((ROOT / "studies/digits.toml").read_text())
    raw["seed"] = seed
    raw["result"] = {"ensemble": 1, "seeds": 1}
    unpruned = raw | {"pruner": {"name": "none"}}
    multi = unpruned | {"objective": {"metrics": ["accuracy", "n_params"]}}
    for label, table in (("single, pruned", raw), ("single, not pruned", unpruned), ("multi-objective", multi)):
        yield label, StudyConfig.model_validate(table, context={"base_dir": ROOT / "studies"})


def main() -> int:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for label, config in variants(seed):
                result, wall = run(config, Path(tmp))
                trials = result.study.get_trials(deepcopy=False)
                complete = [t for t in trials if t.state.name == "COMPLETE"]
                pruned = sum(t.state.name == "PRUNED" for t in trials)
                best = max((t.values[0] for t in complete), default=float("nan"))
                front = len(result.study.best_trials) if config.objective.metrics else None
                print(f"  seed {seed} {label}: {wall:.1f} s, {len(complete)} complete, {pruned} pruned, "
                      f"best {best:.4f}, front {front}", file=sys.stderr, flush=True)
                rows.append([label, str(seed), f"{wall:.1f}", str(len(complete)), str(pruned), f"{best:.4f}",
                             "-" if front is None else str(front)])
    print(f"_Python {platform.python_version()}; {os.cpu_count()} CPUs; digits, 40 trials of up to 40 epochs; "
          f"1-minute load at the end {os.getloadavg()[0]:.1f}_\n")
    header = ["study", "seed", "wall s", "complete", "pruned", "best val accuracy", "Pareto front"]
    print(format_table(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
