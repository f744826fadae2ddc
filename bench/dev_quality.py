"""Variants of a study's final model on development data only (never the benchmark's data sets or
seeds): where changes to tuner/result/final.py are tried before bench_quality.py measures them.

For each development set (``make_classification``: dev150 and dev300 use every default of a study,
so 5 validation splits; dev1800 and dev1800e are digits-sized, 40 trials of 40 epochs, 1 split) and
each seed, it runs the study as ``tuner run`` does and scores on the test split: the final model
(``final``), the best trial alone (``best``), our untuned ``MLPClassifier()`` on training +
validation rows (``untuned``), the same members without refit (``norefit``), refit for the epochs
their trials ran (``refit_ran``) and for twice their epochs (``refit_x2``). To compare two versions
of the code, run it from each checkout (the first argument is the checkout whose code it imports):

    .venv/bin/python bench/dev_quality.py . dev150,dev300 10,11,12,13,14,15,16,17 out.json
    python3 -c "import json; ..."   # out.json: one record per data set and seed
"""
import contextlib, json, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
ROOT = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(ROOT))
from sklearn.datasets import make_classification
from tuner.study.config import StudyConfig
from tuner.data.loading import load_splits
from tuner.study import metrics
from tuner.result.final import build_final_model, refit_rows, retrain_trial, ranked_trials
from tuner.runner import run_study
from model import MLPClassifier

def make(name, work):
    if name == "dev1800":
        X, y = make_classification(1800, 64, n_informative=24, n_redundant=8, n_classes=10,
                                   n_clusters_per_class=1, class_sep=1.5, flip_y=0.01, random_state=777)
        extra = {"budget": {"n_trials": 40, "max_epochs": 40}, "pruner": {"name": "median", "n_warmup_steps": 5}}
    elif name == "dev1800e":
        X, y = make_classification(1800, 64, n_informative=30, n_redundant=10, n_classes=10,
                                   n_clusters_per_class=1, class_sep=2.5, flip_y=0.0, random_state=780)
        extra = {"budget": {"n_trials": 40, "max_epochs": 40}, "pruner": {"name": "median", "n_warmup_steps": 5}}
    elif name == "dev150":
        X, y = make_classification(150, 8, n_informative=4, n_redundant=2, n_classes=3,
                                   class_sep=0.8, flip_y=0.05, random_state=778)
        extra = {}
    elif name == "dev300":
        X, y = make_classification(300, 10, n_informative=5, n_redundant=2, n_classes=2,
                                   class_sep=0.8, flip_y=0.03, random_state=779)
        extra = {}
    path = work / f"{name}.csv"
    pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(label=y).to_csv(path, index=False)
    return StudyConfig.model_validate({"name": name, "data": {"source": str(path), "target": "label",
                                       "task": "classification"}, **extra})

def acc(splits, pipe):
    return metrics.score_model("accuracy", pipe, splits.X_test, splits.y_test)

def main():  # argv: checkout, data sets, seeds, output JSON (appended to)
    names = sys.argv[2].split(","); seeds = [int(s) for s in sys.argv[3].split(",")]
    out = Path(sys.argv[4]); rows = json.loads(out.read_text()) if out.exists() else []
    work = Path(tempfile.mkdtemp(prefix="exp11-"))
    for name in names:
        for seed in seeds:
            config = make(name, work).with_overrides(seed=seed)
            rd = Path(tempfile.mkdtemp(dir=work))
            t0 = time.time()
            with contextlib.chdir(rd), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run_study(config, storage=f"sqlite:///{rd}/o.db", tracking_uri=f"sqlite:///{rd}/m.db")
            wall = time.time() - t0
            cfg, study = res.config, res.study
            splits = load_splits(cfg)
            r = {"data": name, "seed": seed, "wall": wall, "final": res.test_scores["accuracy"],
                 "best": res.best_trial_scores["accuracy"], "members": res.final.members, "epochs": res.final.epochs}
            pre, Xt, y, _ = refit_rows(cfg, splits)
            from sklearn.pipeline import Pipeline
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                u = MLPClassifier(random_state=seed).fit(Xt, y)
                r["untuned"] = acc(splits, Pipeline([("p", pre), ("m", u)]))
                members = res.final.members
                nr = build_final_model(cfg.model_copy(update={"result": cfg.result.model_copy(update={"refit": False})}),
                                       splits, study, members=members, epochs=res.final.epochs)
                r["norefit"] = acc(splits, nr.pipeline)
                trials = {t.number: t for t in study.get_trials(deepcopy=False)}
                ran = {}
                for n in members:
                    est = retrain_trial(cfg, splits, trials[n]).steps[-1][1]
                    ran[n] = int(est.n_iter_)
                r["ran"] = ran
                r["refit_ran"] = acc(splits, build_final_model(cfg, splits, study, members=members, epochs=ran).pipeline)
                r["refit_x2"] = acc(splits, build_final_model(cfg, splits, study, members=members,
                                    epochs={n: max(2 * e, 10) for n, e in res.final.epochs.items()}).pipeline)
                t0d = trials[0]
                r["trial0_val"] = t0d.value; r["best_val"] = study.best_value
            print(json.dumps(r), flush=True)
            rows.append(r); out.write_text(json.dumps(rows))

main()
