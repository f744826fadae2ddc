"""Candidates for a study's final model beside its refit ensemble, on development data only
(generated sets and seeds, never the benchmark's data sets or seeds 0-4).

For each set and seed it runs the study as ``tuner run`` does (its final model is ``final``) and,
from the same trials, scores on the test split:

- ``nic10``: the same members refit with ``n_iter_no_change=10`` (the training-loss convergence
  stop back on; by default a refit inherits the estimators' 256 and runs all its trial's epochs);
- ``recipe``: the estimator's defaults (``MLPClassifier()`` / ``MLPRegressor()``) trained on
  training + validation rows with the study's seeds (``[result] seeds`` copies, averaged);
- ``choose``: ``recipe`` when its validation loss (the defaults trained on the training rows of
  every validation split, scored on its validation rows) is below the greedy ensemble's, else
  ``final``; ``choose_nic10`` the same against ``nic10``;
- ``choose_m``: as ``choose``, on the study's metric of the validation outputs instead of the
  loss (the defaults only when strictly better);
- ``pool``: the greedy selection with the defaults' validation outputs as one more candidate.

Data: bench/dev_quality.py's dev1800 and dev1800e (digits-sized, studied as studies/digits.toml),
dev150 and dev300 (small, every default of a study), and, new here, ``syn6000`` (3 classes, 20
features, a default study of 20 trials: a smaller synthetic20k of another random state) and
``fried442`` (regression, Friedman #1 with noise, diabetes-sized, a default study).

    OPENBLAS_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/dev_candidates.py \
        --data dev1800,dev1800e --seeds 51,52,53 --json out.json
    .venv/bin/python bench/dev_candidates.py --summary out.json more.json
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

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_friedman1
from sklearn.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dev_space  # noqa: E402  (the digits-like sets and their study settings)

from model import MLPEnsemble  # noqa: E402
from tuner import runner  # noqa: E402
from tuner.data.loading import load_splits  # noqa: E402
from tuner.result import final as final_mod  # noqa: E402
from tuner.result.final import defaults_estimator  # noqa: E402
from tuner.search.objective import score_resamples  # noqa: E402
from tuner.search.resampling import resamples, validation_targets  # noqa: E402
from tuner.search.trial_model import copy_seed, trial_estimator, validation_output  # noqa: E402
from tuner.study import metrics  # noqa: E402
from tuner.study.config import StudyConfig  # noqa: E402


def write_data(name: str, work: Path) -> tuple[Path, str, dict[str, Any]]:
    """(csv path, task, study overrides) of a development set."""
    path = work / f"{name}.csv"
    extra: dict[str, Any] = {}
    task = "classification"
    if name in dev_space.DATA:
        X, y = make_classification(**dev_space.DATA[name])
        extra = {} if name in dev_space.SMALL else dev_space.DIGITS_LIKE
    elif name == "syn6000":
        X, y = make_classification(6000, 20, n_informative=10, n_classes=3, random_state=782)
        extra = {"budget": {"n_trials": 20}}
    elif name == "fried442":
        X, y = make_friedman1(442, 10, noise=1.0, random_state=781)
        task = "regression"
    else:
        raise SystemExit(f"unknown data set {name!r}")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y)
    frame.to_csv(path, index=False)
    return path, task, extra


def averaged(estimators: list, weights: list[float]):
    return estimators[0] if len(estimators) == 1 else MLPEnsemble(estimators, weights)


def run_one(name: str, seed: int, work: Path) -> dict[str, Any]:
    path, task, extra = write_data(name, work)
    config = StudyConfig.model_validate(
        {"name": name, "seed": seed, "data": {"source": str(path), "target": "label", "task": task}}
        | extra
    )
    folder = Path(tempfile.mkdtemp(dir=work))
    captured: dict[str, Any] = {}
    build = final_mod.build_final_model

    def capture(config, splits, study, completed=None, **kw):
        captured["completed"] = completed
        return build(config, splits, study, completed, **kw)

    runner.build_final_model = capture
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.chdir(folder), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = runner.run_study(
            config, storage=f"sqlite:///{folder}/o.db", tracking_uri=f"sqlite:///{folder}/m.db"
        )
    row: dict[str, Any] = {
        "data": name,
        "seed": seed,
        "wall": round(time.perf_counter() - start, 1),
        "cpu_study": round(time.process_time() - cpu, 1),
    }
    cfg, study, fm = result.config, result.study, result.final
    splits = load_splits(cfg)
    metric = cfg.metric
    test = lambda pipe: metrics.score_model(metric, pipe, splits.X_test, splits.y_test)  # noqa: E731
    row["metric"] = metric
    row["final"] = result.test_scores[metric]
    row["members"] = {str(k): v for k, v in fm.members.items()}
    row["vloss_final"] = fm.validation_loss
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    pre, Xt, y, _ = final_mod.refit_rows(cfg, splits)
    n_seeds = cfg.result.seeds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # nic10: the same members refit with the convergence stop on.
        ests, ws = [], []
        for n, w in fm.members.items():
            for copy in range(n_seeds):
                est = trial_estimator(cfg, splits, trials[n], copy)
                est.set_params(early_stopping=False, n_iter_no_change=10)
                stop = int(fm.epochs[n])
                est.fit(Xt, y, callbacks=[lambda e, logs, s=stop: e >= s])
                ests.append(est)
                ws.append(float(w))
        row["nic10"] = test(Pipeline([("p", pre), ("m", averaged(ests, ws))]))
        row["nic10_epochs"] = [int(e.n_iter_) for e in ests]
        # recipe: the defaults on training + validation rows, the study's seeds.
        t0 = time.process_time()
        recipe = [
            defaults_estimator(task, copy_seed(cfg.seed, k)).fit(Xt, y) for k in range(n_seeds)
        ]
        row["cpu_recipe_refit"] = round(time.process_time() - t0, 1)
        recipe_model = averaged(recipe, [1.0] * len(recipe))
        row["recipe"] = test(Pipeline([("p", pre), ("m", recipe_model)]))
        # the defaults' validation outputs (every validation split), as trials have them.
        t0 = time.process_time()
        extra_splits = resamples(cfg, splits)
        first = defaults_estimator(task, cfg.seed).fit(splits.Xt_train, splits.y_train)
        out = validation_output(task, first, splits.Xt_val)
        if extra_splits:
            _, outs, _ = score_resamples(
                metric, task, lambda: defaults_estimator(task, cfg.seed), extra_splits
            )
            out = np.concatenate([out, *outs])
        row["cpu_recipe_val"] = round(time.process_time() - t0, 1)
        yv = validation_targets(splits, extra_splits)
        loss = lambda o: final_mod.ensemble_loss(task, yv, o, splits.classes)  # noqa: E731
        row["vloss_recipe"] = loss(out)
        if fm.validation_loss is None:  # one member: its own loss
            (n,) = fm.members
            row["vloss_final"] = (
                loss(captured["completed"][n].output) if n in captured["completed"] else None
            )
        # pool: the greedy selection with the defaults as one more candidate.
        completed = captured["completed"] or {}
        pool = final_mod.ranked_trials(study)[
            : cfg.result.ensemble * final_mod.CANDIDATES_PER_MEMBER
        ]
        outputs = {t.number: completed[t.number].output for t in pool if t.number in completed}
        outputs = {k: v for k, v in outputs.items() if np.all(np.isfinite(v))}
        outputs[-1] = out
        picks, value = final_mod.greedy_selection(outputs, loss, cfg.result.ensemble)
        row["pool_members"] = {str(k): v for k, v in picks.items()}
        trial_picks = {n: w for n, w in picks.items() if n != -1}
        if not trial_picks:
            row["pool"] = row["recipe"]
        elif -1 not in picks and trial_picks == fm.members:
            row["pool"] = row["final"]
        else:
            part = final_mod.build_final_model(
                cfg,
                splits,
                study,
                completed,
                members=trial_picks,
                epochs={n: completed[n].epochs for n in trial_picks},
            )
            pipeline = part.pipeline
            if -1 in picks:  # the trials' ensemble with the defaults' refits added
                est = pipeline.steps[-1][1]
                members = list(getattr(est, "estimators", [est])) + recipe
                weights = list(getattr(est, "weights", [1.0])) + [float(picks[-1])] * len(recipe)
                pipeline = Pipeline(
                    [("p", pipeline.steps[0][1]), ("m", MLPEnsemble(members, weights))]
                )
            row["pool"] = test(pipeline)
        # the study's metric on validation rows: the ensemble's averaged outputs, the defaults'.
        if all(n in completed for n in fm.members):
            total = sum(fm.members.values())
            ens = sum(w * completed[n].output for n, w in fm.members.items()) / total
            row["vscore_final"] = output_score(metric, task, yv, ens, splits.classes)
        row["vscore_recipe"] = output_score(metric, task, yv, out, splits.classes)
    better = row["vloss_final"] is not None and row["vloss_recipe"] < row["vloss_final"]
    row["choose"] = row["recipe"] if better else row["final"]
    row["choose_nic10"] = row["recipe"] if better else row["nic10"]
    row["chose_recipe"] = bool(better)
    sign = 1.0 if metrics.direction(metric) == "maximize" else -1.0
    by_metric = "vscore_final" in row and sign * (row["vscore_recipe"] - row["vscore_final"]) > 0
    row["choose_m"] = row["recipe"] if by_metric else row["final"]
    row["chose_recipe_m"] = bool(by_metric)
    return row


def output_score(metric: str, task: str, y: np.ndarray, output: np.ndarray, classes) -> float:
    """The study's metric of validation outputs (class probabilities or predictions)."""
    if task != "classification":
        return metrics.score(metric, y, y_pred=output)
    if metrics.needs_proba(metric):
        return metrics.score(metric, y, proba=output, labels=classes)
    return metrics.score(metric, y, y_pred=np.asarray(classes)[np.argmax(output, axis=1)])


VARIANTS = ("final", "nic10", "recipe", "choose", "choose_m", "pool")


def summary(rows: list[dict[str, Any]]) -> None:
    """Per set: seeds, the mean test score of each variant, and each variant's mean difference to
    ``final`` with its seeds up and down (for rmse, lower is better); how often ``choose``,
    ``choose_m`` and ``pool`` took the defaults; the mean CPU seconds of the study and of the
    defaults' fits."""
    frame = pd.DataFrame(rows).drop_duplicates(["data", "seed"], keep="last")
    print(
        "| data | metric | seeds | "
        + " | ".join(VARIANTS)
        + " | defaults picked (choose / choose_m / pool) | cpu s study / defaults val / refit |"
    )
    print("|---|---|---|" + "---|" * len(VARIANTS) + "---|---|")
    for data, part in frame.groupby("data", sort=False):
        sign = -1.0 if part["metric"].iloc[0] in ("rmse", "log_loss", "mae") else 1.0
        cells = []
        for v in VARIANTS:
            d = sign * (part[v] - part["final"])
            cells.append(
                f"{part[v].mean():.4f}"
                + (
                    ""
                    if v == "final"
                    else f" ({sign * d.mean():+.4f}, {(d > 0).sum()}/{(d < 0).sum()})"
                )
            )
        print(
            f"| {data} | {part['metric'].iloc[0]} | {len(part)} | "
            + " | ".join(cells)
            + f" | {int(part['chose_recipe'].sum())} / {int(part['chose_recipe_m'].sum())} / "
            f"{int(part['pool_members'].map(lambda m: '-1' in m).sum())} | "
            f"{part['cpu_study'].mean():.0f} / "
            f"{part['cpu_recipe_val'].mean():.1f} / {part['cpu_recipe_refit'].mean():.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="dev1800,dev1800e")
    parser.add_argument("--seeds", default="51,52,53")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--summary", type=Path, nargs="+", help="print the table of JSON files and exit"
    )
    args = parser.parse_args()
    if args.summary:
        summary([row for path in args.summary for row in json.loads(path.read_text())])
        return
    rows = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    work = Path(tempfile.mkdtemp(prefix="dev-candidates-"))
    for data in args.data.split(","):
        for seed in map(int, args.seeds.split(",")):
            row = run_one(data, seed, work)
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.json:
                args.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
