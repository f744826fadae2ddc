"""Ways to build a study's final model from the same trials, on development data only (the sets
of bench/dev_quality.py, never the benchmark's data sets or seeds): where tuner/result/final.py's
``[result] seeds`` was chosen.

For each development set and seed it runs the study as ``tuner run`` does, trains every completed
trial again for its validation outputs, and scores on the test split: the greedy selection of
tuner/result/final.py refit once (``g5``) and with 2, 3 and 5 seeds per member (``g5_s2`` ...; the copies
here use seeds ``1000 + 17 k + trial``), the top 5 trials by the metric (``top5acc``, ``_s3``),
``g5`` plus the defaults trial, the defaults trial alone (``trial0``, ``_s5``), and our untuned
``MLPClassifier()`` on training + validation rows, alone and as 5 seeds averaged (``untuned_s5``).
``final`` is whatever the checkout's run_study builds (at ede420e, before seeds: ``g5``).

    .venv/bin/python bench/dev_final.py . dev1800e,dev1800 15,16,17,18,19,20,21,22,23,24 out.json
    .venv/bin/python bench/dev_final.py . dev150,dev300 10,11,12,13,14,15,16,17 out.json

Run at ede420e on 2026-12-02, printing one JSON record per set and seed (means over seeds:
dev1800e g5 0.9869, g5_s3 0.9914; dev1800 0.8400, 0.8467; dev150 0.7333, 0.7333; dev300
0.8750, 0.8708).
"""
import contextlib, json, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np
ROOT = Path(sys.argv[1]).resolve(); sys.path.insert(0, str(ROOT))
src = (ROOT / "bench/dev_quality.py").read_text().replace("\nmain()\n", "\n")
dq = {}; exec(compile(src, "dq", "exec"), dq)
from sklearn.pipeline import Pipeline
from tuner.data.loading import load_splits
from tuner.result.final import refit_rows, ranked_trials, _known, greedy_selection, ensemble_loss
from tuner.search.trial_model import trial_estimator
from tuner.search.resampling import resamples, validation_targets
from tuner.runner import run_study
from model import MLPClassifier, MLPEnsemble

def refit(cfg, splits, trial, epochs, Xt, y, seed=None):
    est = trial_estimator(cfg, splits, trial)
    est.set_params(early_stopping=False)
    if seed is not None: est.set_params(random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(Xt, y, callbacks=[lambda e, l: e >= int(epochs)])
    return est

def main():
    names = sys.argv[2].split(","); seeds = [int(s) for s in sys.argv[3].split(",")]
    out = Path(sys.argv[4]); rows = json.loads(out.read_text()) if out.exists() else []
    work = Path(tempfile.mkdtemp(prefix="posthoc-"))
    for name in names:
        for seed in seeds:
            config = dq["make"](name, work).with_overrides(seed=seed)
            rd = Path(tempfile.mkdtemp(dir=work)); t0 = time.time()
            with contextlib.chdir(rd), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = run_study(config, storage=f"sqlite:///{rd}/o.db", tracking_uri=f"sqlite:///{rd}/m.db")
            wall = time.time() - t0
            cfg, study = res.config, res.study; splits = load_splits(cfg)
            extra = resamples(cfg, splits); yv = validation_targets(splits, extra)
            pre, Xt, y, _ = refit_rows(cfg, splits)
            ranked = ranked_trials(study); trials = {t.number: t for t in ranked}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                known = {t.number: _known(cfg, splits, t, {}, extra) for t in ranked}
            loss = lambda o: ensemble_loss(splits.task, yv, o, splits.classes)
            vloss = {n: loss(k.output) for n, k in known.items() if np.all(np.isfinite(k.output))}
            cache = {}
            def member(n, s=None):
                key = (n, s)
                if key not in cache: cache[key] = refit(cfg, splits, trials[n], known[n].epochs, Xt, y, s)
                return cache[key]
            def score(members, seeds_per=1):
                ests, ws = [], []
                for n, w in members.items():
                    for k in range(seeds_per):
                        ests.append(member(n, None if k == 0 else 1000 + 17 * k + n)); ws.append(float(w))
                m = ests[0] if len(ests) == 1 else MLPEnsemble(ests, ws)
                return float(np.mean(Pipeline([("p", pre), ("m", m)]).predict(splits.X_test) == splits.y_test))
            r = {"data": name, "seed": seed, "wall": wall, "final": res.test_scores["accuracy"],
                 "best": res.best_trial_scores["accuracy"], "n": len(ranked)}
            outs = {n: known[n].output for n in vloss}
            def greedy(size, pool):
                cand = {t.number: outs[t.number] for t in ranked[:pool] if t.number in outs}
                return greedy_selection(cand, loss, size)[0]
            g5 = greedy(5, 15); r["g5"] = score(g5); r["g5_members"] = g5
            for k in (2, 3, 5): r[f"g5_s{k}"] = score(g5, k)
            top5 = {t.number: 1 for t in ranked[:5]}
            r["top5acc"] = score(top5); r["top5acc_s3"] = score(top5, 3)
            if 0 in trials:
                r["g5p0_s3"] = score({**g5, 0: g5.get(0, 0) + 1}, 3)
                r["trial0"] = score({0: 1}); r["trial0_s5"] = score({0: 1}, 5)
            us = []
            for k in range(5):
                us.append(MLPClassifier(random_state=seed + 100 * k).fit(Xt, y))
            acc = lambda m: float(np.mean(Pipeline([("p", pre), ("m", m)]).predict(splits.X_test) == splits.y_test))
            r["untuned"] = acc(us[0]); r["untuned_s5"] = acc(MLPEnsemble(us, [1.0] * 5))
            r["distinct"] = len(g5)
            print(json.dumps(r), flush=True); rows.append(r); out.write_text(json.dumps(rows))
main()
