"""Candidate default recipes for MLPClassifier() / MLPRegressor() on development data only.

Every data set here is generated with this script's own seeds (901-908), and the splits and model
seeds are 101-103: never bench_quality.py's data sets (digits, iris, wine, wine_mixed,
breast_cancer, diabetes, synthetic20k) nor its seeds (0-4). Defaults are chosen on this table; the
benchmark is run once, after the choice.

Each (recipe, data set, seed) trains on 80 % of the rows (what the untuned model gets in
bench_quality: training + validation rows), standardised by the project's TabularPreprocessor
fitted on them, and is scored on the other 20 %: accuracy and log loss for classification, RMSE
divided by the test targets' standard deviation for regression; and the fit's seconds.

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/dev_defaults.py --json dev.json
    .venv/bin/python bench/dev_defaults.py --json dev.json --recipes default,wide --table-only
    .venv/bin/python bench/dev_defaults.py --json a.json --merge b.json --table-only

Results are appended to the JSON file per fit, so a run that is cut off keeps what it measured
and a later run adds recipes to the same table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.datasets import make_classification, make_friedman1, make_regression  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from model import MLPClassifier, MLPRegressor  # noqa: E402
from model.preprocessing import TabularPreprocessor  # noqa: E402

SEEDS = (101, 102, 103)

#: The full budget, without the training-loss convergence stop (the schedule decides the end).
FULL = {"n_iter_no_change": 10_000}
TD_BASE = {"hidden_layer_sizes": (256, 256, 256), "batch_size": 256, "max_epochs": 256,
           "lr_schedule": "coslog4", **FULL}

#: The estimators' defaults before this script chose the recipe they have now: every recipe
#: below changes these (``default`` is them alone).
PREVIOUS_DEFAULTS = {"hidden_layer_sizes": (64,), "optimizer": "adam", "lr_schedule": "constant",
                     "batch_size": 32, "max_epochs": 200, "n_iter_no_change": 10, "l2": 1e-4,
                     "dropout": 0.0, "robust_scaling": False}

#: name -> estimator keyword arguments (classification-only keys are dropped for regression).
RECIPES: dict[str, dict] = {
    "default": {},
    "default_cosine": {"lr_schedule": "cosine"},
    "64_b256_coslog": {"batch_size": 256, "max_epochs": 256, "lr_schedule": "coslog4",
                       "learning_rate": 3e-3, **FULL},
    "2x256_b256_coslog": {**TD_BASE, "hidden_layer_sizes": (256, 256)},
    "3x256_b256_coslog": TD_BASE,
    # with regularisation: AdamW's decay is lr * l2 per step (1e-4 at lr 1e-3 and l2 0.1)
    "2x256_coslog_wd": {**TD_BASE, "hidden_layer_sizes": (256, 256), "optimizer": "adamw",
                        "l2": 0.1},
    "2x256_coslog_wd_drop": {**TD_BASE, "hidden_layer_sizes": (256, 256), "optimizer": "adamw",
                             "l2": 0.1, "dropout": 0.15},
    "2x256_coslog_wd_drop_ls": {**TD_BASE, "hidden_layer_sizes": (256, 256), "optimizer": "adamw",
                                "l2": 0.1, "dropout": 0.15, "label_smoothing": 0.1},
    "2x256_coslog_wd_drop_ls_rs": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                   "optimizer": "adamw", "l2": 0.1, "dropout": 0.15,
                                   "label_smoothing": 0.1, "robust_scaling": True},
    "2x256_cosine_wd_drop_ls": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                "lr_schedule": "cosine", "optimizer": "adamw", "l2": 0.1,
                                "dropout": 0.15, "label_smoothing": 0.1},
    "2x256_coslog_wd3_drop3_ls": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                  "optimizer": "adamw", "l2": 0.3, "dropout": 0.3,
                                  "label_smoothing": 0.1},
    "2x256_coslog_wd3_drop3": {**TD_BASE, "hidden_layer_sizes": (256, 256), "optimizer": "adamw",
                               "l2": 0.3, "dropout": 0.3},
    "2x256_cosine_wd_drop_es_loss": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                     "lr_schedule": "cosine", "optimizer": "adamw", "l2": 0.1,
                                     "dropout": 0.15, "early_stopping": True,
                                     "early_stopping_metric": "loss", "patience": 16},
    "2x256_coslog_wd_drop_rs": {**TD_BASE, "hidden_layer_sizes": (256, 256), "optimizer": "adamw",
                                "l2": 0.1, "dropout": 0.15, "robust_scaling": True},
    "2x256_coslog128_wd_drop": {**TD_BASE, "hidden_layer_sizes": (256, 256), "max_epochs": 128,
                                "optimizer": "adamw", "l2": 0.1, "dropout": 0.15},
    "2x256_coslog_wd3_drop3_rs": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                  "optimizer": "adamw", "l2": 0.3, "dropout": 0.3,
                                  "robust_scaling": True},
    "2x256_coslog128_wd3_drop3_rs": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                     "max_epochs": 128, "optimizer": "adamw", "l2": 0.3,
                                     "dropout": 0.3, "robust_scaling": True},
    "2x256_cosine_wd3_drop3_rs": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                  "lr_schedule": "cosine", "optimizer": "adamw", "l2": 0.3,
                                  "dropout": 0.3, "robust_scaling": True},
    "2x256_coslog_wd3_drop3_rs_nic10": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                        "optimizer": "adamw", "l2": 0.3, "dropout": 0.3,
                                        "robust_scaling": True, "n_iter_no_change": 10},
    "2x256_coslog128_wd_drop_ls": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                   "max_epochs": 128, "optimizer": "adamw", "l2": 0.1,
                                   "dropout": 0.15, "label_smoothing": 0.1},
    "3x256_coslog_wd_drop_ls": {**TD_BASE, "optimizer": "adamw", "l2": 0.1, "dropout": 0.15,
                                "label_smoothing": 0.1},
    "2x256_cosine_es_loss": {**TD_BASE, "hidden_layer_sizes": (256, 256), "lr_schedule": "cosine",
                             "early_stopping": True, "early_stopping_metric": "loss",
                             "patience": 16},
    "2x256_cosine_wd_drop": {**TD_BASE, "hidden_layer_sizes": (256, 256), "lr_schedule": "cosine",
                             "optimizer": "adamw", "l2": 0.1, "dropout": 0.15},
    "3x256_coslog_wd_drop": {**TD_BASE, "optimizer": "adamw", "l2": 0.1, "dropout": 0.15},
    "2x256_b128_coslog128_wd_drop": {**TD_BASE, "hidden_layer_sizes": (256, 256),
                                     "batch_size": 128, "max_epochs": 128, "optimizer": "adamw",
                                     "l2": 0.1, "dropout": 0.15},
}
CLASSIFIER_ONLY = {"label_smoothing"}


def _skew_and_outliers(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the columns made log-normal (skewed), and 1 % of the cells multiplied by 20."""
    X = X.copy()
    half = X.shape[1] // 2
    X[:, :half] = np.exp(X[:, :half])
    cells = rng.random(X.shape) < 0.01
    X[cells] *= 20.0
    return X


def dev_sets() -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """name -> (task, X, y), each generated with this script's own seed."""
    sets = {
        "c3_6000": ("clf", *make_classification(6000, 20, n_informative=10, n_classes=3,
                                                random_state=901)),
        "c2_1500": ("clf", *make_classification(1500, 12, n_informative=6, n_redundant=2,
                                                flip_y=0.03, class_sep=0.8, random_state=902)),
        "c5_800": ("clf", *make_classification(800, 30, n_informative=12, n_classes=5,
                                               n_clusters_per_class=1, random_state=903)),
        "c2_300": ("clf", *make_classification(300, 10, n_informative=5, random_state=905)),
        "r_fried2000": ("reg", *make_friedman1(2000, 10, noise=1.0, random_state=906)),
        "r_fried400": ("reg", *make_friedman1(400, 8, noise=0.5, random_state=908)),
    }
    # well separated and small, like the data where a confident, calibrated model wins log loss
    sets["c3_easy180"] = ("clf", *make_classification(180, 13, n_informative=8, n_classes=3,
                                                      class_sep=2.5, random_state=909))
    X, y = make_classification(3000, 16, n_informative=8, n_classes=3, random_state=904)
    sets["c3_skew3000"] = ("clf", _skew_and_outliers(X, np.random.default_rng(904)), y)
    X, y = make_regression(1500, 20, n_informative=10, noise=20.0, random_state=907)
    sets["r_lin_skew1500"] = ("reg", _skew_and_outliers(X, np.random.default_rng(907)),
                              y + 0.002 * y**2)
    return sets


def run_one(recipe: str, task: str, X, y, seed: int) -> dict[str, float]:
    """Fit one recipe on one split; its test scores and fit seconds."""
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y if task == "clf" else None
    )
    pre = TabularPreprocessor().fit(X_tr)
    X_tr, X_te = pre.transform(X_tr), pre.transform(X_te)
    params = {**PREVIOUS_DEFAULTS, **RECIPES[recipe]}
    if task == "reg":
        params = {k: v for k, v in params.items() if k not in CLASSIFIER_ONLY}
    est = (MLPClassifier if task == "clf" else MLPRegressor)(random_state=seed, **params)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_tr, y_tr)
    seconds = time.perf_counter() - t0
    if task == "clf":
        proba = est.predict_proba(X_te)
        return {"acc": accuracy_score(y_te, est.classes_[proba.argmax(1)]),
                "logloss": log_loss(y_te, proba, labels=est.classes_), "s": seconds,
                "epochs": est.n_iter_}
    rmse = float(np.sqrt(np.mean((est.predict(X_te) - y_te) ** 2)))
    return {"nrmse": rmse / float(np.std(y_te)), "s": seconds, "epochs": est.n_iter_}


def table(rows: list[dict], recipes: list[str], sets: list[str]) -> str:
    """Markdown: one row per recipe, per data set the mean over seeds (acc / log loss, or RMSE
    over the targets' standard deviation), and the mean fit seconds over every fit."""
    head = ["recipe", *sets, "mean acc", "mean logloss", "mean nrmse", "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for recipe in recipes:
        mine = [r for r in rows if r["recipe"] == recipe]
        if not mine:
            continue
        cells, accs, losses, nrmses = [recipe], [], [], []
        for name in sets:
            got = [r for r in mine if r["data"] == name]
            if not got:
                cells.append("-")
            elif "acc" in got[0]:
                acc = statistics.fmean(r["acc"] for r in got)
                loss = statistics.fmean(r["logloss"] for r in got)
                accs.append(acc), losses.append(loss)
                cells.append(f"{acc:.4f} / {loss:.3f}")
            else:
                nrmse = statistics.fmean(r["nrmse"] for r in got)
                nrmses.append(nrmse)
                cells.append(f"{nrmse:.4f}")
        for values, fmt in ((accs, ".4f"), (losses, ".3f"), (nrmses, ".4f")):
            cells.append(format(statistics.fmean(values), fmt) if values else "-")
        cells.append(f"{statistics.fmean(r['s'] for r in mine):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--datasets", default=None, help="default: every development set")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--json", type=Path, required=True, help="results, appended per fit")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--merge", type=Path, nargs="*", default=[],
                        help="other runs' --json files, added to the table")
    args = parser.parse_args()
    sets = dev_sets()
    names = args.datasets.split(",") if args.datasets else list(sets)
    recipes = args.recipes.split(",")
    rows = json.loads(args.json.read_text()) if args.json.exists() else []
    if not args.table_only:
        seeds = [int(s) for s in args.seeds.split(",")]
        assert not set(seeds) & {0, 1, 2, 3, 4}, "bench_quality's seeds are held out"
        for recipe in recipes:
            for name in names:
                for seed in seeds:
                    if any(r["recipe"] == recipe and r["data"] == name and r["seed"] == seed
                           for r in rows):
                        continue
                    task, X, y = sets[name]
                    result = run_one(recipe, task, X, y, seed)
                    rows.append({"recipe": recipe, "data": name, "seed": seed, **result})
                    args.json.write_text(json.dumps(rows, indent=0))
                    print(recipe, name, seed, {k: round(v, 4) for k, v in result.items()},
                          file=sys.stderr, flush=True)
    for path in args.merge:
        rows += json.loads(path.read_text())
    print(table(rows, recipes, names))


if __name__ == "__main__":
    main()
