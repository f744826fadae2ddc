"""What a study hands back: held-out scores of the tuned model against untuned models and a
non-MLP reference, on several data sets, over several seeds.

For every data set and seed, all systems see the same train / validation / test split (the
study's, fixed by the seed); the test split is scored once per system, and nothing is chosen on it.

* **tuned (final)**: ``tuner.runner.run_study`` as ``tuner run`` runs it (the study file's budget,
  SQLite storage, MLflow tracking), scored with its final model (the ``[result]`` table: the
  estimator's defaults as the first trial, refit on training + validation rows, greedy ensemble of
  up to 5 trials; see tuner/result/final.py).
* **best trial**: the same run's best trial alone, as trained in its trial (training split only):
  what the tuner handed back before issue 11.
* **ours untuned**: ``MLPClassifier()`` / ``MLPRegressor()`` with their defaults, trained on
  training + validation rows (the rows the final model is refit on).
* **sklearn untuned**: scikit-learn's ``MLPClassifier()`` / ``MLPRegressor()`` defaults, training +
  validation rows.
* **Optuna + sklearn**: the baseline of ``bench_tuning.py`` (plain Optuna tuning scikit-learn's
  MLP epoch by epoch on validation accuracy, same space, budget, sampler and pruner, tracked by
  optuna-integration's ``MLflowCallback``), its best trial's model; classification only.
* **SVM**: ``SVC(probability=True)`` / ``SVR()`` defaults on training + validation rows (skipped
  above 5,000 training rows); **HGB**: ``HistGradientBoostingClassifier/Regressor`` defaults.
* **RealMLP-TD**: ``pytabkit``'s ``RealMLP_TD_Classifier/Regressor`` (Holzmueller et al., NeurIPS
  2024), untuned, on the CPU with one thread, on training + validation rows (it holds out its own
  validation fifth); **LightGBM**: ``LGBMClassifier/Regressor`` defaults. Both come with the
  ``bench`` extra (``pip install -e '.[bench]'``) and are left out, with a note, when missing.

Every system gets the same preprocessing (the study's, fitted on the rows it trains on).
The score is the study's metric on the test split (accuracy, roc_auc, log_loss, f1_macro, rmse).

Data sets: the shipped studies digits, breast_cancer, wine, diabetes and wine_mixed (a CSV with a
categorical column and missing values); ``iris`` (150 rows, a study file with nothing but its data
source: every default); ``synthetic20k`` (``make_classification``, 20,000 rows, 20 features, 3
classes, generated once with a fixed seed 12345, a default study of 20 trials). Held out, not in
the default list (``--datasets fair,anes96,randhie``): three real tables bundled with statsmodels,
studied as a user's own CSV is (:data:`HELDOUT`).

    .venv/bin/python bench/bench_quality.py --markdown              # all, seeds 0-4
    .venv/bin/python bench/bench_quality.py --datasets digits --seeds 0,1
    .venv/bin/python bench/bench_quality.py --merge a.json b.json --markdown   # one table of several runs
    .venv/bin/python bench/bench_quality.py --untuned-only "ours untuned,RealMLP-TD" --json u.json
    .venv/bin/python bench/bench_quality.py --tuned-only --json t.json   # the studies and Optuna + sklearn
    .venv/bin/python bench/bench_quality.py --merge u.json t.json --markdown   # merged seed by seed
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_tuning  # noqa: E402
from tuner.study import metrics  # noqa: E402
from tuner.study.config import StudyConfig, load_config  # noqa: E402
from tuner.data.loading import load_splits  # noqa: E402
from tuner.result.final import refit_rows  # noqa: E402

SVM_MAX_ROWS = 5_000
SYNTHETIC_SEED = 12345
DATASETS = ("digits", "breast_cancer", "wine", "diabetes", "wine_mixed", "iris", "synthetic20k")
SYSTEMS = (
    "tuned (final)", "best trial", "ours untuned", "RealMLP-TD", "sklearn untuned", "Optuna + sklearn", "SVM", "HGB",
    "LightGBM",
)


#: Held-out tables, never used to choose anything here: real data bundled with statsmodels (no
#: download), each written to a CSV and studied with the defaults a user's own CSV gets (only
#: the target, its task, and for the 20,190-row table the 20 trials synthetic20k has).
HELDOUT = {
    # Fair's affairs survey (6,366 x 8): did the respondent have an affair (affairs > 0)?
    "fair": ("fair", "had_affair", "classification", {}),
    # American National Election Studies 1996 (944 x 10): the vote, Clinton (0) or Dole (1).
    "anes96": ("anes96", "vote", "classification", {}),
    # RAND health insurance experiment (20,190 x 9): outpatient visits a year.
    "randhie": ("randhie", "mdvis", "regression", {"n_trials": 20}),
}


def heldout_config(name: str, workdir: Path) -> StudyConfig:
    import statsmodels.api as sm

    module, target, task, budget = HELDOUT[name]
    frame = getattr(sm.datasets, module).load_pandas().data
    if name == "fair":
        frame = frame.assign(had_affair=(frame.pop("affairs") > 0).astype(int))
    if task == "classification":
        frame[target] = frame[target].astype(int)
    path = workdir / f"{name}.csv"
    frame.to_csv(path, index=False)
    return StudyConfig.model_validate({
        "name": name, "budget": budget, "data": {"source": str(path), "target": target, "task": task},
    })


def study_config(name: str, workdir: Path) -> StudyConfig:
    if name in HELDOUT:
        return heldout_config(name, workdir)
    if name == "iris":
        return StudyConfig.model_validate({"name": "iris", "data": {"source": "sklearn:iris"}})
    if name == "synthetic20k":
        from sklearn.datasets import make_classification

        X, y = make_classification(
            n_samples=20_000, n_features=20, n_informative=10, n_classes=3, random_state=SYNTHETIC_SEED
        )
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y)
        path = workdir / "synthetic20k.csv"
        frame.to_csv(path, index=False)
        return StudyConfig.model_validate({
            "name": "synthetic20k", "budget": {"n_trials": 20},
            "data": {"source": str(path), "target": "label", "task": "classification"},
        })
    return load_config(ROOT / "studies" / f"{name}.toml")


def score(config: StudyConfig, splits, predictor, X) -> float:
    """The study's metric of ``predictor`` on the test split (X already transformed as it needs)."""
    name = config.metric
    if metrics.needs_proba(name):
        return metrics.score(name, splits.y_test, proba=predictor.predict_proba(X), labels=predictor.classes_)
    return metrics.score(name, splits.y_test, y_pred=predictor.predict(X))


def untuned(config: StudyConfig, splits, seed: int, only=None) -> dict[str, tuple[float, float]]:
    """(test score, seconds) of the untuned systems (those named in ``only``, else all), trained on
    training + validation rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.neural_network import MLPClassifier as SkC, MLPRegressor as SkR
    from sklearn.svm import SVC, SVR

    from model import MLPClassifier, MLPRegressor

    pre, Xt, y, _ = refit_rows(config, splits)
    Xte = pre.transform(splits.X_test)
    clf = config.task == "classification"
    models = {
        "ours untuned": (MLPClassifier if clf else MLPRegressor)(random_state=seed),
        "sklearn untuned": SkC(random_state=seed) if clf else SkR(random_state=seed),
        "HGB": (HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor)(random_state=seed),
    }
    if len(y) <= SVM_MAX_ROWS:
        models["SVM"] = SVC(probability=True, random_state=seed) if clf else SVR()
    models.update(references(clf, seed))
    models = {k: v for k, v in models.items() if not only or k in only}
    out = {}
    for name, est in models.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xt, y)
        out[name] = (score(config, splits, est, Xte), time.perf_counter() - t0)
    return out


def references(clf: bool, seed: int) -> dict:
    """RealMLP-TD and LightGBM, untuned, when the bench extra is installed (else none, said once)."""
    try:
        import torch
        from lightgbm import LGBMClassifier, LGBMRegressor
        from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
    except ImportError as exc:
        print(f"note: RealMLP-TD and LightGBM left out ({exc}); pip install -e '.[bench]'", file=sys.stderr)
        return {}
    # Subnormal floats slow RealMLP several times on this CPU (NOTES.md); this is the bench's process.
    torch.set_flush_denormal(True)
    realmlp = RealMLP_TD_Classifier if clf else RealMLP_TD_Regressor
    lgbm = LGBMClassifier if clf else LGBMRegressor
    return {
        "RealMLP-TD": realmlp(device="cpu", n_threads=1, random_state=seed, verbosity=0),
        "LightGBM": lgbm(random_state=seed, verbose=-1),
    }


def run_one(name: str, seed: int, workdir: Path, baseline: bool, untuned_too: bool = True) -> dict[str, tuple[float, float]]:
    from tuner.runner import run_study

    config = study_config(name, workdir).with_overrides(seed=seed)
    splits = load_splits(config)
    fitted = config.fitted_to_data(len(splits.y_train), len(splits.y_val))
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-", dir=workdir))
    results: dict[str, tuple[float, float]] = {}
    with contextlib.chdir(run_dir):
        t0 = time.perf_counter()
        result = run_study(
            config, storage=f"sqlite:///{run_dir / 'optuna.db'}", tracking_uri=f"sqlite:///{run_dir / 'mlflow.db'}"
        )
        wall = time.perf_counter() - t0
    results["tuned (final)"] = (result.test_scores[config.metric], wall)
    results["best trial"] = (result.best_trial_scores[config.metric], wall)
    if untuned_too:
        results.update(untuned(config, splits, seed))
    if baseline and config.task == "classification":
        base_dir = Path(tempfile.mkdtemp(prefix=f"{name}-{seed}-base-", dir=workdir))
        base = bench_tuning.run_baseline(fitted, seed, base_dir, "sqlite")
        if base.model is not None:
            results["Optuna + sklearn"] = (score(config, splits, base.model, splits.Xt_test), base.wall)
    results["_members"] = (float(len(result.final.members)) if result.final else float("nan"), 0.0)
    return results


def _mean(values):
    values = [v for v in values if v == v]
    return statistics.fmean(values) if values else float("nan")


def report(rows: dict[str, dict[int, dict[str, tuple[float, float]]]], markdown: bool) -> str:
    lines = []
    head = ["data set", "metric", *SYSTEMS, "tuned >= ours untuned", "wall s tuned", "wall s Optuna+sklearn"]
    if markdown:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    else:
        lines.append("  ".join(head))
    for name, by_seed in rows.items():
        config = study_config(name, Path(tempfile.mkdtemp()))
        better = metrics.direction(config.metric) == "maximize"
        cells = [name, config.metric]
        for system in SYSTEMS:
            vals = [r[system][0] for r in by_seed.values() if system in r]
            worst = (min if better else max)(vals) if vals else None
            cells.append(f"{_mean(vals):.4f}" + (f" (worst {worst:.4f})" if system == "tuned (final)" else "") if vals else "-")
        paired = [r for r in by_seed.values() if "tuned (final)" in r and "ours untuned" in r]
        wins = sum(
            (r["tuned (final)"][0] >= r["ours untuned"][0]) if better else (r["tuned (final)"][0] <= r["ours untuned"][0])
            for r in paired
        )
        cells.append(f"{wins} of {len(paired)}")
        cells.append(f"{_mean([r['tuned (final)'][1] for r in by_seed.values() if 'tuned (final)' in r]):.1f}")
        base = [r["Optuna + sklearn"][1] for r in by_seed.values() if "Optuna + sklearn" in r]
        cells.append(f"{_mean(base):.1f}" if base else "-")
        lines.append(("| " + " | ".join(cells) + " |") if markdown else "  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--no-baseline", action="store_true", help="skip the Optuna + sklearn baseline")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every score to this file")
    parser.add_argument("--merge", type=Path, nargs="+", help="print one table from the --json files of earlier runs")
    parser.add_argument("--untuned-only", help="comma-separated untuned systems to run alone, without a study")
    parser.add_argument("--tuned-only", action="store_true", help="the studies and the Optuna + sklearn baseline alone")
    args = parser.parse_args()
    if args.merge:
        merged: dict = {}
        wanted = {int(s) for s in args.seeds.split(",")}
        for path in args.merge:  # seed by seed: one file's systems beside another's
            for name, by_seed in json.loads(path.read_text()).items():
                for seed, systems in by_seed.items():
                    if int(seed) in wanted:
                        merged.setdefault(name, {}).setdefault(seed, {}).update(systems)
        print_report(merged, args.seeds, args.markdown)
        return
    bench_tuning.quiet()
    import mlflow  # noqa: F401 - imported once, outside the timings

    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, dict[int, dict[str, tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for name in args.datasets.split(","):
            rows[name] = {}
            for seed in seeds:
                if args.untuned_only:
                    config = study_config(name, Path(tmp)).with_overrides(seed=seed)
                    only = args.untuned_only.split(",")
                    rows[name][seed] = untuned(config, load_splits(config), seed, only)
                else:
                    rows[name][seed] = run_one(
                        name, seed, Path(tmp), baseline=not args.no_baseline, untuned_too=not args.tuned_only
                    )
                shown = {k: (round(v[0], 4), round(v[1], 1)) for k, v in rows[name][seed].items()}
                print(f"{name} seed {seed}: {shown}", file=sys.stderr, flush=True)
                if args.json:  # after every seed: a run cut off keeps what it measured
                    args.json.write_text(json.dumps(rows, indent=1))
    print_report(rows, args.seeds, args.markdown)


def print_report(rows, seeds: str, markdown: bool) -> None:
    import numpy
    import sklearn

    print(
        f"_Python {platform.python_version()}; NumPy {numpy.__version__}; scikit-learn {sklearn.__version__}; "
        f"{os.cpu_count()} CPUs; seeds {seeds}; mean over seeds (tuned: also its worst seed)_\n"
    )
    first = next(iter(next(iter(rows.values())).values()))
    print(report(rows, markdown) if "tuned (final)" in first else untuned_report(rows))


def untuned_report(rows) -> str:
    """Markdown: the mean test score and fit seconds over seeds of each untuned system run."""
    systems = list(dict.fromkeys(s for by_seed in rows.values() for r in by_seed.values() for s in r))
    head = ["data set", "metric", *systems, *(f"fit s {s}" for s in systems)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_seed in rows.items():
        config = study_config(name, Path(tempfile.mkdtemp()))
        cells = [name, config.metric]
        for i, fmt in ((0, "{:.4f}"), (1, "{:.1f}")):  # a system skipped on a data set (SVM): -
            values = {s: [r[s][i] for r in by_seed.values() if s in r] for s in systems}
            cells += [fmt.format(_mean(values[s])) if values[s] else "-" for s in systems]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
