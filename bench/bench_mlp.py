"""Training speed of this project's NumPy MLP against scikit-learn and PyTorch (CPU).

All libraries train, in this one process and environment, on the same float32 data with the same
architecture (ReLU hidden layers, softmax output), optimizer (Adam, lr 1e-3, default betas and
epsilon, a constant learning rate, no dropout), L2 penalty, batch size and number of epochs,
shuffling every epoch: our model's defaults (a cosine schedule, dropout, AdamW) are overridden to
match. Its ``robust_scaling`` (on by default) is off too: the inputs are standardised already and
the other libraries do not scale them, and with it each ``partial_fit`` call would also scale
its whole X (:mod:`model.scaling`), a cost of the input preprocessing, not of the network.

    python bench/bench_mlp.py                       # both workloads, plain-text table
    python bench/bench_mlp.py --workload b --repeats 5 --markdown

PyTorch is optional (``pip install -e '.[bench]'`` pins the CPU wheel ``torch==2.13.0``); without
it the PyTorch rows are skipped.

Protocol, per library and repeat: a fresh model, ``--warmup`` epochs that are not timed (the
first one also initialises the model), then ``--epochs`` epochs timed one by one. scikit-learn
and our model run one epoch per ``partial_fit`` call, so both pay their per-call input
validation; PyTorch runs a plain loop that indexes a shuffled tensor (no DataLoader). The
repeats of the libraries are interleaved so that load from other processes hits all of them.
Reported: the median and the best epoch time over all timed epochs of all repeats. On a machine
shared with other jobs the best times are the steadier figure; PyTorch's spinning OpenMP threads
suffer most from a busy second core. ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` in front of the
command compares the three single-threaded.

Achieved GFLOP/s counts only the matrix products of one epoch of n samples, for layers with
sizes (in_l, out_l) and S = sum_l in_l * out_l:

    forward   Z_l = A_{l-1} W_l            2 n S
    backward  dW_l = A_{l-1}^T dZ_l        2 n S
              dA_{l-1} = dZ_l W_l^T        2 n (S - in_1 out_1)   (no gradient for the input X)
    total                                  2 n (3 S - in_1 out_1)

Element-wise work (activations, softmax, the optimizer) is not counted, so on small layers the
figure is far below the machine's matmul peak: there it mostly measures per-step overhead.

Time per epoch is half of what a user waits for; the other half is how many epochs a library
needs. So each workload also holds out a test split (stratified, not trained on) and a target
test accuracy that every library reaches (``--target`` overrides it): after each epoch the test
accuracy is measured (not timed), and the table reports the epochs and the training seconds
(every epoch from a fresh model, the warm-up ones included) until the target is first reached,
as the median over repeats. A repeat goes on past its timed epochs until it reaches the target
or ``--max-epochs``. Each library starts from its own default initialisation (ours and
scikit-learn: Glorot uniform; PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.datasets import load_digits, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from model import MLPClassifier  # noqa: E402

LEARNING_RATE = 1e-3


@dataclass
class Workload:
    key: str
    title: str
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    hidden: tuple[int, ...]
    batch_size: int
    epochs: int
    target: float  # test accuracy that every library reaches
    max_epochs: int  # a repeat that has not reached the target by then gives up

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.y)

    @property
    def layer_sizes(self) -> list[int]:
        return [self.X.shape[1], *self.hidden, len(self.classes)]

    def flops_per_epoch(self) -> float:
        """2 n (3 S - in_1 out_1): forward, weight gradients, input gradients but the first."""
        sizes = self.layer_sizes
        s = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
        return 2.0 * self.X.shape[0] * (3 * s - sizes[0] * sizes[1])


def _split(X: np.ndarray, y: np.ndarray, n_test: int | float) -> tuple[np.ndarray, ...]:
    """Stratified train / test split, standardised on the training rows, float32."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train).astype(np.float32), y_train,
            scaler.transform(X_test).astype(np.float32), y_test)


def make_workload(key: str, epochs: int | None, target: float | None = None,
                  max_epochs: int | None = None) -> Workload:
    if key == "a":
        X, y = make_classification(
            n_samples=62_500,
            n_features=100,
            n_informative=60,
            n_redundant=20,
            n_classes=10,
            random_state=0,
        )
        title = ("(a) synthetic 50,000 x 100 standardised (12,500 more held out for test), "
                 "10 classes, hidden (256, 256), batch 256")
        return Workload("a", title, *_split(X, y, 12_500), (256, 256), 256, epochs or 3,
                        target or 0.9, max_epochs or 30)
    if key == "b":
        X, y = load_digits(return_X_y=True)
        title = ("(b) digits 1,437 x 64 standardised (360 held out for test), 10 classes, "
                 "hidden (64,), batch 32")
        return Workload("b", title, *_split(X, y, 360), (64,), 32, epochs or 20,
                        target or 0.95, max_epochs or 100)
    raise ValueError(f"unknown workload {key!r}")


# --- one builder per library: a fresh model as "train one epoch" and "predict labels" ----------


@dataclass
class Trainer:
    epoch: Callable[[], None]
    predict: Callable[[np.ndarray], np.ndarray]


def build_ours(w: Workload, alpha: float, seed: int) -> Trainer:
    clf = MLPClassifier(
        hidden_layer_sizes=w.hidden,
        activation="relu",
        optimizer="adam",
        learning_rate=LEARNING_RATE,
        batch_size=w.batch_size,
        max_epochs=1,
        tol=0.0,
        n_iter_no_change=10**9,
        l2=alpha,
        random_state=seed,
        dtype="float32",
        lr_schedule="constant",
        dropout=0.0,
        robust_scaling=False,
    )
    return _partial_fit_trainer(clf, w)


def build_sklearn(w: Workload, alpha: float, seed: int) -> Trainer:
    clf = SkMLPClassifier(
        hidden_layer_sizes=w.hidden,
        activation="relu",
        solver="adam",
        alpha=alpha,
        batch_size=w.batch_size,
        learning_rate_init=LEARNING_RATE,
        max_iter=1,
        shuffle=True,
        tol=0.0,
        n_iter_no_change=10**9,
        early_stopping=False,
        random_state=seed,
    )
    return _partial_fit_trainer(clf, w)


def _partial_fit_trainer(clf, w: Workload) -> Trainer:
    def epoch() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(w.X, w.y, classes=w.classes)

    return Trainer(epoch, clf.predict)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def build_torch(w: Workload, alpha: float, seed: int) -> Trainer:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    sizes = w.layer_sizes
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    # sklearn and our model add alpha * W / batch to the weight gradients (biases excluded);
    # Adam's weight_decay adds weight_decay * param, so this is the same penalty on the weights.
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (decay if name.endswith("weight") else no_decay).append(p)
    optimizer = torch.optim.Adam(
        [
            {"params": decay, "weight_decay": alpha / w.batch_size},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=LEARNING_RATE,
    )
    criterion = nn.CrossEntropyLoss()
    X = torch.from_numpy(w.X)
    y = torch.from_numpy(np.searchsorted(w.classes, w.y).astype(np.int64))
    n, bs = X.shape[0], w.batch_size
    gen = torch.Generator().manual_seed(seed)

    def epoch() -> None:
        perm = torch.randperm(n, generator=gen)
        Xs, ys = X[perm], y[perm]
        total = 0.0
        for lo in range(0, n, bs):
            xb, yb = Xs[lo : lo + bs], ys[lo : lo + bs]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(net(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * xb.shape[0]  # the running loss the other two also keep

    def predict(X_new: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return w.classes[net(torch.from_numpy(X_new)).argmax(1).numpy()]

    return Trainer(epoch, predict)


BUILDERS = {"this MLP (NumPy)": build_ours, "scikit-learn": build_sklearn, "PyTorch": build_torch}


@dataclass
class RepeatResult:
    epoch_times: list[float]  # the timed epochs (after the warm-up)
    train_accuracy: float  # after the last timed epoch
    test_accuracy: float  # after the last timed epoch
    epochs_to_target: int | None  # None: not reached within max_epochs
    seconds_to_target: float | None


def run_repeat(trainer: Trainer, w: Workload, warmup: int) -> RepeatResult:
    """Train epoch by epoch: the timed epochs, and on until the test target is reached."""
    last_timed = warmup + w.epochs
    times: list[float] = []
    hit = None
    train_acc = test_acc = float("nan")
    while len(times) < last_timed or (hit is None and len(times) < w.max_epochs):
        start = time.perf_counter()
        trainer.epoch()
        times.append(time.perf_counter() - start)
        if hit is None or len(times) == last_timed:
            acc = float(np.mean(trainer.predict(w.X_test) == w.y_test))
            if hit is None and acc >= w.target:
                hit = len(times)
            if len(times) == last_timed:
                test_acc = acc
                train_acc = float(np.mean(trainer.predict(w.X) == w.y))
    return RepeatResult(times[warmup:last_timed], train_acc, test_acc, hit,
                        None if hit is None else sum(times[:hit]))


# --- reporting ----------------------------------------------------------------------------------


@dataclass
class Row:
    library: str
    median_ms: float
    best_ms: float
    gflops: float
    accuracy: float
    test_accuracy: float
    n_epochs: int
    epochs_to_target: float | None  # median over the repeats that reached it
    seconds_to_target: float | None
    reached: int  # repeats that reached the target
    repeats: int


def _median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure(
    w: Workload, libraries: list[str], alpha: float, warmup: int, repeats: int
) -> list[Row]:
    results: dict[str, list[RepeatResult]] = {lib: [] for lib in libraries}
    for r in range(repeats):
        for lib in libraries:
            results[lib].append(run_repeat(BUILDERS[lib](w, alpha, r), w, warmup))
    flops = w.flops_per_epoch()
    rows = []
    for lib in libraries:
        times = [t for res in results[lib] for t in res.epoch_times]
        reached = [res for res in results[lib] if res.epochs_to_target is not None]
        median, best = statistics.median(times), min(times)
        rows.append(
            Row(lib, 1e3 * median, 1e3 * best, flops / median / 1e9,
                statistics.mean(res.train_accuracy for res in results[lib]),
                statistics.mean(res.test_accuracy for res in results[lib]), len(times),
                _median_or_none([res.epochs_to_target for res in reached]),
                _median_or_none([res.seconds_to_target for res in reached]),
                len(reached), repeats)
        )
    return rows


def environment() -> str:
    parts = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    import sklearn

    parts.append(f"scikit-learn {sklearn.__version__}")
    try:
        from threadpoolctl import threadpool_info

        blas = [f"{i['internal_api']} {i['version']} ({i['num_threads']} threads)"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        parts.append("BLAS: " + ", ".join(dict.fromkeys(blas)))
    except Exception:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    if torch_available():
        import torch

        parts.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    else:
        parts.append("PyTorch not installed (pip install -e '.[bench]')")
    parts.append(f"{os.cpu_count()} CPUs")
    return "; ".join(parts)


def _to_target(row: Row, value: float | None, fmt: str) -> str:
    if value is None:
        return "not reached"
    text = format(value, fmt)
    return text if row.reached == row.repeats else f"{text} ({row.reached}/{row.repeats})"


def print_table(w: Workload, rows: list[Row], repeats: int, warmup: int, markdown: bool) -> None:
    ours = rows[0]
    target = f"{w.target:g}"
    headers = ["library", "ms/epoch (median)", "ms/epoch (best)", "GFLOP/s (median)",
               "ours faster (median)", "ours faster (best)", "train acc.", "test acc.",
               f"epochs to test {target}", f"s to test {target}"]
    body = []
    for row in rows:
        body.append([row.library, f"{row.median_ms:.1f}", f"{row.best_ms:.1f}",
                     f"{row.gflops:.1f}", f"{row.median_ms / ours.median_ms:.2f}x",
                     f"{row.best_ms / ours.best_ms:.2f}x", f"{row.accuracy:.3f}",
                     f"{row.test_accuracy:.3f}", _to_target(row, row.epochs_to_target, "g"),
                     _to_target(row, row.seconds_to_target, ".2f")])
    gflop = w.flops_per_epoch() / 1e9
    note = (f"{w.epochs} timed epochs after {warmup} warm-up, x {repeats} repeats "
            f"({ours.n_epochs} epochs per library); {gflop:.2f} GFLOP of matmuls per epoch; "
            f"ours faster = their time / ours; train and test acc. after the last timed epoch, "
            f"mean of repeats; epochs and training seconds (warm-up included) until the test "
            f"accuracy first reaches {target}, median of repeats (k/n: only k of n repeats "
            f"reached it within {w.max_epochs} epochs)")
    if markdown:
        print(f"**{w.title}**\n")
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|")
        for line in body:
            print("| " + " | ".join(line) + " |")
        print(f"\n{note}.\n")
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        print(w.title)
        print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i])
                        for i, h in enumerate(headers)))
        for line in body:
            print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                            for i, c in enumerate(line)))
        print(note + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["a", "b", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fresh models per library (default 3)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per repeat (default: 3 for a, 20 for b)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs first (default 1)")
    parser.add_argument("--alpha", type=float, default=1e-4,
                        help="L2 penalty, the same for every library (default 1e-4)")
    parser.add_argument("--target", type=float, default=None,
                        help="test accuracy to reach (default: 0.9 for a, 0.95 for b)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="epochs a repeat may take to reach the target (default: 30 for a, "
                             "100 for b)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--markdown", action="store_true", help="print README-ready tables")
    args = parser.parse_args(argv)

    libraries = ["this MLP (NumPy)", "scikit-learn"]
    if not args.no_torch and torch_available():
        libraries.append("PyTorch")
    print(("_" if args.markdown else "") + environment() + ("_\n" if args.markdown else "\n"))
    for key in ["a", "b"] if args.workload == "all" else [args.workload]:
        w = make_workload(key, args.epochs, args.target, args.max_epochs)
        rows = measure(w, libraries, args.alpha, args.warmup, args.repeats)
        print_table(w, rows, args.repeats, args.warmup, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
