"""Memory and time of a study as its data grows: 50,000 / 200,000 / 1,000,000 rows (5,000,000 with
``--huge``).

For each size N the script writes a CSV to a scratch folder, generated deterministically with
NumPy: 40 float columns, one 8-valued text column and a 5-class text label that depends on both
(48 encoded features). Then, each in a fresh child process:

- **prepare**: ``tuner.data.loading.load_splits`` on a study file pointing at the CSV (read,
  split, preprocess), timed inside the child, after the same imports as the libraries' process;
- **study**: ``tuner run`` on that study file: 2 trials of one fixed small network (1 layer of 64
  units, batch 256, Adam at lr 1e-3, 3 epochs, no pruner, ``[result] ensemble = 1``,
  ``refit = false``, ``seeds = 1``), a fresh SQLite Optuna storage and MLflow store;
- **libraries**: a process that only runs ``import tuner.runner, mlflow, optuna, sklearn, pandas``
  (once, before the sizes).

Peak memory is measured from outside: each measured process is started by a small launcher
process that waits for it and reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the kernel's
maximum RSS of that one child. The launcher matters: on Linux a child's maximum RSS includes the
RSS of the process it was forked from (exec keeps the old address space's high-water mark), so a
child started by this script, which holds the CSV's text while writing it, would be charged for
it. "Above libraries" is a peak minus the libraries-only process's peak, and "x float32" is
that excess over the float32 input matrix, N rows x encoded features x 4 bytes. Trial times come
from the study's trials (``datetime_complete - datetime_start``); the run's wall time includes
process start-up and imports.

    .venv/bin/python bench/bench_scale.py --markdown                 # 50k, 200k, 1M rows
    .venv/bin/python bench/bench_scale.py --huge --markdown          # also 5M rows: a 1.6 GB CSV, GBs of RAM
    .venv/bin/python bench/bench_scale.py --rows 1000000 --jobs 1 2 --markdown   # the process tree of --jobs

With ``--jobs``, the study of each size runs as ``tuner run --jobs J`` for each J instead, and the
table gives the peak of the whole process tree's memory (``tuner run --jobs`` starts worker
processes): the sum of its processes' proportional set sizes (PSS, from
``/proc/<pid>/smaps_rollup``, so library pages shared between processes count once), sampled
every 0.1 s. ``--jobs 1`` is the same measure of a one-process run, to compare with.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import format_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = (50_000, 200_000, 1_000_000)
HUGE = 5_000_000
COLOURS = np.array(["red", "green", "blue", "cyan", "magenta", "yellow", "black", "white"])
CLASSES = np.array(["class_a", "class_b", "class_c", "class_d", "class_e"])

STUDY = """
name = "{name}"
seed = 0
[data]
source = "{csv}"
target = "label"
task = "classification"
[budget]
n_trials = 2
max_epochs = 3
[sampler]
name = "random"
[pruner]
name = "none"
[space]
n_layers = 1
units = 64
activation = "relu"
batch_size = 256
optimizer = "adam"
lr_schedule = "constant"
learning_rate = 1e-3
l2 = 1e-5
dropout = 0.0
patience = false
[result]
ensemble = 1
refit = false
seeds = 1
"""

IMPORTS = "import tuner.runner, mlflow, optuna, sklearn, pandas"

PREPARE = IMPORTS + """
import sys, time
from tuner.data.loading import load_splits
from tuner.study.config import load_config
config = load_config(sys.argv[1])
start = time.perf_counter()
splits = load_splits(config)
print(time.perf_counter() - start, splits.Xt_train.shape[1])
"""

#: Runs argv[2:] and writes that child's peak RSS (kB) to argv[1]; a few MB itself, so what the
#: child inherits from its parent's address space is negligible.
LAUNCHER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def write_csv(path: Path, rows: int, seed: int = 0, chunk: int = 200_000) -> None:
    """N rows of 40 standard-normal floats, a colour (8 values) and a label (5 classes): the
    argmax of a fixed linear map of the first 10 floats plus a per-colour shift and noise."""
    rng = np.random.default_rng(seed)
    weights, shift = rng.normal(size=(10, 5)), rng.normal(size=(8, 5))
    header = ",".join([f"x{i}" for i in range(40)] + ["colour", "label"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = rng.normal(size=(n, 40)).round(4)
            colour = rng.integers(0, 8, size=n)
            label = np.argmax(x[:, :10] @ weights + shift[colour] + rng.normal(size=(n, 5)), axis=1)
            cells = np.char.mod("%.4f", x)
            lines = [",".join(row) for row in np.column_stack([cells, COLOURS[colour], CLASSES[label]])]
            f.write("\n".join(lines) + "\n")


def run_child(args: list[str], cwd: Path) -> tuple[str, int, float]:
    """Run one fresh child process to its end, through :data:`LAUNCHER`: its stdout, its peak RSS
    in bytes, its wall seconds. Exits with the child's output if it fails."""
    out, err, rss = cwd / "child.out", cwd / "child.err", cwd / "child.rss"
    start = time.perf_counter()
    with open(out, "w") as o, open(err, "w") as e:
        code = subprocess.call([sys.executable, "-c", LAUNCHER, str(rss), *args], stdout=o, stderr=e, cwd=cwd)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{' '.join(args)} failed ({code}):\n{err.read_text()[-3000:]}")
    return out.read_text(), int(rss.read_text()) * 1024, seconds  # ru_maxrss is in kB on Linux


def tree_pss(root: int) -> int:
    """The summed PSS in bytes of ``root`` and its descendants (0 for a process gone meanwhile)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def run_tree(args: list[str], cwd: Path) -> tuple[int, float]:
    """Run ``args`` to its end, sampling its process tree's PSS: (peak bytes, wall seconds)."""
    start, peak = time.perf_counter(), 0
    with open(cwd / "child.err", "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        while proc.poll() is None:
            peak = max(peak, tree_pss(proc.pid))
            time.sleep(0.1)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{(cwd / 'child.err').read_text()[-3000:]}")
    return peak, time.perf_counter() - start


def measure_jobs(rows: int, jobs: list[int], folder: Path) -> list[list[str]]:
    """One table row per ``--jobs`` value for a study of ``rows`` rows and as many trials."""
    csv, study = folder / f"scale_{rows}.csv", folder / f"scale_{rows}.toml"
    write_csv(csv, rows)
    out, peaks = [], []
    for j in jobs:
        name = f"scale_{rows}_jobs{j}"
        study.write_text(STUDY.format(name=name, csv=csv).replace("n_trials = 2", f"n_trials = {max(2, j)}"))
        tuner = [sys.executable, "-m", "tuner.cli.app", "run", str(study), "--jobs", str(j),
                 "--storage", f"sqlite:///{folder}/optuna_{name}.db",
                 "--tracking-uri", f"sqlite:///{folder}/mlflow_{name}.db"]
        peak, wall = run_tree(tuner, folder)
        peaks.append(peak)
        out.append([f"{rows:,}", str(j), gb(peak), f"{peak / peaks[0]:.2f}x", f"{wall:.1f}"])
    csv.unlink()
    return out


def trial_seconds(storage: str, name: str) -> list[float]:
    import optuna

    trials = optuna.load_study(study_name=name, storage=storage).trials
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]


def measure(rows: int, folder: Path, libraries: int) -> list[str]:
    """One table row for ``rows`` rows, measured in ``folder`` (emptied of the data afterwards)."""
    csv, study = folder / f"scale_{rows}.csv", folder / f"scale_{rows}.toml"
    write_csv(csv, rows)
    study.write_text(STUDY.format(name=f"scale_{rows}", csv=csv))
    out, prepare_peak, _ = run_child([sys.executable, "-c", PREPARE, str(study)], folder)
    prepare_s, features = float(out.split()[0]), int(out.split()[1])
    storage = f"sqlite:///{folder}/optuna_{rows}.db"
    tuner = [sys.executable, "-m", "tuner.cli.app", "run", str(study), "--storage", storage,
             "--tracking-uri", f"sqlite:///{folder}/mlflow_{rows}.db"]
    _, peak, wall = run_child(tuner, folder)
    trials = trial_seconds(storage, f"scale_{rows}")
    csv.unlink()
    inputs = rows * features * 4
    return [f"{rows:,}", str(features), f"{inputs / 1e6:.0f}",
            f"{prepare_s:.1f}", gb(prepare_peak - libraries), gb(peak), gb(peak - libraries),
            f"{(peak - libraries) / inputs:.1f}x", ", ".join(f"{s:.1f}" for s in trials), f"{wall:.1f}"]


def gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(SIZES), help="row counts (default: 50k 200k 1M)")
    parser.add_argument("--huge", action="store_true", help=f"also {HUGE:,} rows (a 1.6 GB CSV; several GB of memory)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--jobs", type=int, nargs="+", help="measure the process tree of `tuner run --jobs J` instead")
    args = parser.parse_args()
    if args.jobs:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            rows = [r for n in args.rows for r in measure_jobs(n, args.jobs, Path(tmp))]
        print(format_table(["rows", "jobs", "tree peak PSS GB", "x the first --jobs value", "run wall s"], rows, args.markdown))
        return 0
    sizes = args.rows + ([HUGE] if args.huge else [])
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        _, libraries, _ = run_child([sys.executable, "-c", IMPORTS], folder)
        rows = [measure(n, folder, libraries) for n in sizes]
    print(("_" if args.markdown else "") + f"Python {platform.python_version()}; NumPy {np.__version__}; "
          f"{os.cpu_count()} CPUs; libraries alone (import only) {gb(libraries)} GB; "
          f"1-minute load {load:.1f} -> {os.getloadavg()[0]:.1f}" + ("_\n" if args.markdown else "\n"))
    header = ["rows", "features", "float32 MB", "prepare s", "prepare GB above libraries", "study peak GB",
              "study GB above libraries", "x float32", "trial s", "run wall s"]
    print(format_table(header, rows, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
