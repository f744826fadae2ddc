"""Search-space variants of a study on development data only (never the benchmark's data sets or
seeds): where changes to tuner/study/space.py and the shipped studies' settings are tried before
bench_quality.py measures them.

Each variant is a set of study-file overrides ([space], [budget], [pruner], ...) applied to a
study of one of bench/dev_quality.py's generated sets (dev1800 and dev1800e are digits-sized: 40
trials of 40 epochs, the median pruner after 5 epochs, as studies/digits.toml; dev150 and dev300
are small and keep every default of a study). For each set, seed
and variant it runs the study as ``tuner run`` does and prints one JSON record: the final model's
test accuracy (``final``), the best trial's own (``best``), the best validation value, the wall
and CPU time and the parameters of the final model's members. Variants are named in VARIANTS below:

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/dev_space.py \
        --data dev1800,dev1800e --seeds 31,32,33 --variants current,ingredients --json out.json
    .venv/bin/python bench/dev_space.py --summary out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.datasets import make_classification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner import run_setup, runner  # noqa: E402
from tuner.study.config import StudyConfig  # noqa: E402
from tuner.study.space import SpaceConfig, defaults_trial  # noqa: E402

DIGITS_LIKE = {
    "budget": {"n_trials": 40, "max_epochs": 40},
    "pruner": {"name": "median", "n_warmup_steps": 5},
}
DATA = {  # bench/dev_quality.py's generated sets (same generators and random states)
    "dev1800": dict(
        n_samples=1800, n_features=64, n_informative=24, n_redundant=8, n_classes=10,
        n_clusters_per_class=1, class_sep=1.5, flip_y=0.01, random_state=777,
    ),
    "dev1800e": dict(
        n_samples=1800, n_features=64, n_informative=30, n_redundant=10, n_classes=10,
        n_clusters_per_class=1, class_sep=2.5, flip_y=0.0, random_state=780,
    ),
    "dev150": dict(
        n_samples=150, n_features=8, n_informative=4, n_redundant=2, n_classes=3, class_sep=0.8,
        flip_y=0.05, random_state=778,
    ),
    "dev300": dict(
        n_samples=300, n_features=10, n_informative=5, n_redundant=2, n_classes=2, class_sep=0.8,
        flip_y=0.03, random_state=779,
    ),
}  # fmt: skip
#: The small sets run a study's every default (5 validation splits), as bench/dev_quality.py does.
SMALL = ("dev150", "dev300")
INGREDIENTS = {
    "robust_scaling": [True, False],
    "label_smoothing": [0.0, 0.1],
    "lr_schedule": ["constant", "step", "exponential", "inverse_time", "cosine", "plateau", "coslog4"],
    "l2": {"low": 1e-6, "high": 0.3, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
}  # fmt: skip
#: bench/dev_defaults.py's chosen recipe as a trial (the study's max_epochs and patience).
RECIPE = {
    "n_layers": 2, "units_l0": 256, "units_l1": 256, "activation": "relu", "batch_size": 256,
    "learning_rate": 1e-3, "lr_schedule": "cosine", "optimizer": "adamw", "l2": 0.3,
    "dropout": 0.3, "patience": 10, "robust_scaling": True, "label_smoothing": 0.0,
}  # fmt: skip
#: name -> study-file overrides; "first": the first enqueued trial instead of the defaults trial
#: (its keys that the space does not draw are left out).
VARIANTS: dict[str, dict[str, Any]] = {
    "current": {},
    "ingredients": {"space": INGREDIENTS},
    "ingredients_recipe": {"space": INGREDIENTS, "first": RECIPE},
    "ingredients_no_ls": {"space": INGREDIENTS | {"label_smoothing": False}},
    "ls": {"space": {"label_smoothing": [0.0, 0.1]}},
}


def study_config(data: str, variant: str, seed: int, work: Path) -> StudyConfig:
    path = work / f"{data}.csv"
    if not path.exists():
        X, y = make_classification(**DATA[data])
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        frame.assign(label=y).to_csv(path, index=False)
    raw: dict[str, Any] = {
        "name": f"{data}_{variant}",
        "seed": seed,
        "data": {"source": str(path), "target": "label", "task": "classification"},
    } | ({} if data in SMALL else DIGITS_LIKE)
    for key, value in VARIANTS[variant].items():
        if key != "first":
            raw[key] = raw.get(key, {}) | value
    return StudyConfig.model_validate(raw)


def first_trial(variant: str) -> Any:
    """The runner's first-trial function for ``variant``."""
    first = VARIANTS[variant].get("first")
    if first is None:
        return defaults_trial

    def recipe_trial(space: SpaceConfig) -> dict[str, Any]:
        drawn = defaults_trial(space)
        return {k: v for k, v in first.items() if k in drawn or k.startswith("units_l")}

    return recipe_trial


def run_one(data: str, variant: str, seed: int, work: Path) -> dict[str, Any]:
    config = study_config(data, variant, seed, work)
    folder = Path(tempfile.mkdtemp(dir=work))
    start, cpu = time.perf_counter(), time.process_time()
    run_setup.defaults_trial = first_trial(variant)
    with contextlib.chdir(folder), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.run_study(
            config,
            storage=f"sqlite:///{folder}/optuna.db",
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
        )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    trials = {t.number: t for t in result.study.get_trials(deepcopy=False)}
    members = result.final.members if result.final else []
    return {
        "data": data,
        "variant": variant,
        "seed": seed,
        "final": result.test_scores["accuracy"],
        "best": result.best_trial_scores["accuracy"],
        "best_value": result.study.best_value,
        "trial0_value": trials[0].value,
        "wall": round(wall, 1),
        "cpu": round(cpu, 1),  # this process's CPU seconds: less sensitive to other processes
        "members": {n: trials[n].params for n in members},
    }


def summary(rows: list[dict[str, Any]]) -> None:
    """A markdown table: per data set and variant, the seeds run, the mean test accuracy of the
    final model and of the best trial alone, and against the first variant on the same seeds the
    mean difference of the final model's accuracy and its wins / losses; the mean CPU seconds."""
    frame = pd.DataFrame(rows).drop_duplicates(["data", "variant", "seed"], keep="last")
    variants = list(dict.fromkeys(frame["variant"]))
    print("| data | variant | seeds | final | best trial | final - first, same seeds | cpu s |")
    print("|---|---|---|---|---|---|---|")
    for data, part in frame.groupby("data", sort=False):
        final = part.pivot(index="seed", columns="variant", values="final")
        for variant in [v for v in variants if v in final]:
            mine = part[part["variant"] == variant]
            both = final[[variants[0], variant]].dropna()
            diff = both[variant] - both[variants[0]]
            versus = (
                f"{diff.mean():+.4f} ({(diff > 0).sum()} up, {(diff < 0).sum()} down)"
                if variant != variants[0]
                else ""
            )
            cpu = mine["cpu"].mean() if "cpu" in mine and mine["cpu"].notna().any() else None
            print(
                f"| {data} | {variant} | {len(mine)} | {mine['final'].mean():.4f} | "
                f"{mine['best'].mean():.4f} | {versus} | {'' if cpu is None else f'{cpu:.1f}'} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="dev1800,dev1800e")
    parser.add_argument("--seeds", default="31,32,33")
    parser.add_argument("--variants", default="current")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--summary", type=Path, help="print the table of a JSON file and exit")
    args = parser.parse_args()
    if args.summary:
        summary(json.loads(args.summary.read_text()))
        return
    rows = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    work = Path(tempfile.mkdtemp(prefix="dev-space-"))
    for data in args.data.split(","):
        for seed in map(int, args.seeds.split(",")):
            for variant in args.variants.split(","):
                row = run_one(data, variant, seed, work)
                print(json.dumps(row), flush=True)
                rows.append(row)
                if args.json:
                    args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
