"""Where an epoch of this project's MLP goes: the time of each part of a training step, against the
epoch's matrix products alone, measured in one process.

    python bench/bench_epoch_parts.py                   # workloads (a) and (b) of bench_mlp.py
    python bench/bench_epoch_parts.py --workload a --repeats 5 --markdown

The epoch is the one ``bench/bench_mlp.py`` times: one ``partial_fit`` call of our
``MLPClassifier`` (Adam, ReLU, L2, no ``robust_scaling``) over the whole workload. The profile runs that same code with
timers wrapped around its parts, by replacing attributes of the live objects (each layer's
``forward`` and ``backward``, its activation's, the output loss, the optimizer's ``step``, the
training loop, and ``np.dot`` as the network module sees it). Each part's time is exclusive:
the time of the parts it calls, and of their timers (calibrated on an empty call), is taken out.
So the rows add up to the instrumented epoch, and "rest of the step" is what the network's
``loss_and_gradients`` does outside the layers (the L2 penalty on all weights, the input cast).

The matmul-only bound is the same epoch's matrix products and nothing else: per batch, the
forward products X W of every layer and the backward products (the weight gradients A^T dZ of
every layer, the input gradients dZ W^T of every layer but the first), into preallocated float32
outputs, over the same batch shapes. The plain epoch, the instrumented one and the bound are
interleaved over ``--repeats``; reported is each part's best time over the repeats (on a
shared machine the steadier figure) and, for whole epochs, the median too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_mlp import LEARNING_RATE, Workload, environment, make_workload  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from tables import format_table  # noqa: E402

import model.estimators  # noqa: E402
import model.network  # noqa: E402
from model import MLPClassifier  # noqa: E402


class Profiler:
    """Exclusive time per label of wrapped callables, with a stack for nesting."""

    def __init__(self) -> None:
        self.times: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [label, time spent in children]
        self.overhead = 0.0  # a timer's own cost, charged to the caller, per wrapped call

    def wrap(self, label: str | Callable[[], str], fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            frame = [label() if callable(label) else label, 0.0]
            self._stack.append(frame)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self._stack.pop()
                self.times[frame[0]] += elapsed - frame[1]
                self.calls[frame[0]] += 1
                if self._stack:
                    self._stack[-1][1] += elapsed + self.overhead

        return timed

    def parent(self) -> str:
        return self._stack[-1][0] if self._stack else ""

    def calibrate(self, n: int = 2_000, tries: int = 20) -> None:
        """The cost of one timer around an empty call, as seen by its caller: the least over
        ``tries`` runs of ``n`` calls, so that a busy moment does not inflate it."""
        inner = self.wrap("calibration", lambda: None)
        outer = self.wrap("calibration outer", lambda: [inner() for _ in range(n)])
        plains, timed = [], []
        for _ in range(tries):
            self.reset()
            start = time.perf_counter()
            [(lambda: None)() for _ in range(n)]
            plains.append(time.perf_counter() - start)
            outer()
            timed.append(self.times["calibration outer"])
        self.overhead = max(0.0, (min(timed) - min(plains)) / n)
        self.reset()

    def reset(self) -> None:
        self.times.clear()
        self.calls.clear()


def build(w: Workload, seed: int = 0, dropout: float = 0.0) -> MLPClassifier:
    """Our model as bench_mlp.py builds it, after one (warm-up) epoch."""
    clf = MLPClassifier(hidden_layer_sizes=w.hidden, activation="relu", optimizer="adam",
                        learning_rate=LEARNING_RATE, batch_size=w.batch_size, max_epochs=1,
                        tol=0.0, n_iter_no_change=10**9, l2=1e-4, random_state=seed,
                        dtype="float32", dropout=dropout, robust_scaling=False,
                        lr_schedule="constant")
    epoch(clf, w)
    return clf


def epoch(clf: MLPClassifier, w: Workload) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit(w.X, w.y, classes=w.classes)
    return time.perf_counter() - start


def instrument(clf: MLPClassifier, prof: Profiler) -> Callable[[], None]:
    """Wrap the parts of the model's training step; returns the function that unwraps them."""
    net, opt = clf._network, clf._optimizer
    undo: list[Callable[[], None]] = []

    def patch(owner: Any, name: str, label: str | Callable[[], str]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, prof.wrap(label, original))
        undo.append(lambda: setattr(owner, name, original))

    last = len(net.layers) - 1
    for k, layer in enumerate(net.layers):
        patch(layer, "forward", f"layer {k + 1} forward: bias add, dropout, glue")
        patch(layer, "backward", f"layer {k + 1} backward: dropout, glue")
        if k < last:
            patch(layer.activation, "forward", f"layer {k + 1} {layer.activation.name} forward")
            patch(layer.activation, "backward", f"layer {k + 1} {layer.activation.name} backward")
    patch(net.output, "loss_and_delta", f"output {net.output.name}: loss and its gradient")
    patch(net, "loss_and_gradients", "rest of the step: L2 penalty, input cast")
    patch(opt, "step", f"optimizer {opt.name} update, all parameters")
    patch(model.estimators, "train", "training loop: batch gathering, bookkeeping")
    real_np = model.network.np
    model.network.np = SimpleNamespace(**{
        name: getattr(real_np, name) for name in dir(real_np) if not name.startswith("__")
    })
    model.network.np.dot = prof.wrap(lambda: _matmul_label(prof.parent()), real_np.dot)
    undo.append(lambda: setattr(model.network, "np", real_np))

    def unwrap() -> None:
        for step in reversed(undo):
            step()

    return unwrap


def _matmul_label(parent: str) -> str:
    """``np.dot`` in a layer's forward is X W; in its backward A^T dZ, dZ W^T and the bias
    gradient 1^T dZ; in the step, the L2 penalty's ||W||^2."""
    part = parent.split(":")[0]
    if part.endswith("forward"):
        return f"{part}: matmul X W"
    if part.endswith("backward"):
        return f"{part}: matmuls A^T dZ, dZ W^T and 1^T dZ"
    return f"{part}: np.dot"


def matmul_bound(w: Workload, clf: MLPClassifier) -> Callable[[], float]:
    """One epoch of the network's matrix products alone, in its dtype, into reused outputs."""
    sizes, dtype = clf._network.layer_sizes, clf._network.dtype
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((i, o)).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    n, bs = w.X.shape[0], w.batch_size
    shapes = [min(bs, n - lo) for lo in range(0, n, bs)]

    def buffers(m: int) -> SimpleNamespace:
        A = [rng.standard_normal((m, s)).astype(dtype) for s in sizes[:-1]]
        Z = [np.empty((m, s), dtype) for s in sizes[1:]]
        return SimpleNamespace(A=A, Z=Z, dW=[np.empty_like(W) for W in Ws],
                               dA=[np.empty_like(a) for a in A])

    per_shape = {m: buffers(m) for m in set(shapes)}

    def run() -> float:
        start = time.perf_counter()
        for m in shapes:
            b = per_shape[m]
            for A, W, Z in zip(b.A, Ws, b.Z):
                np.dot(A, W, out=Z)
            for k in range(len(Ws) - 1, -1, -1):
                np.dot(b.A[k].T, b.Z[k], out=b.dW[k])
                if k:
                    np.dot(b.Z[k], Ws[k].T, out=b.dA[k])
        return time.perf_counter() - start

    return run


def profile(w: Workload, repeats: int, dropout: float) -> tuple[list[list[str]], str]:
    clf_plain, clf_prof = build(w, 0, dropout), build(w, 0, dropout)
    bound = matmul_bound(w, clf_plain)
    bound()
    prof = Profiler()
    prof.calibrate()
    unwrap = instrument(clf_prof, prof)
    plains, bounds, instrumented, parts = [], [], [], []
    for _ in range(repeats):
        bounds.append(bound())
        plains.append(epoch(clf_plain, w))
        prof.reset()
        instrumented.append(epoch(clf_prof, w))
        parts.append(dict(prof.times))
        parts[-1]["partial_fit: input checks, target encoding"] = instrumented[-1] - sum(
            prof.times.values()) - prof.overhead * sum(prof.calls.values())
        parts[-1]["timers (instrumentation)"] = prof.overhead * sum(prof.calls.values())
    unwrap()
    steps = -(-w.X.shape[0] // w.batch_size)
    rows = []
    for label in parts[0]:
        t = min(p.get(label, 0.0) for p in parts)
        rows.append([label, f"{1e3 * t:.2f}", f"{1e6 * t / steps:.1f}",
                     f"{100 * t / min(instrumented):.1f}%"])
    rows.sort(key=lambda r: -float(r[1]))
    for label, times in [("instrumented epoch (the parts and their timers)", instrumented),
                         ("plain epoch (no timers)", plains), ("matmul-only bound", bounds)]:
        best, median = min(times), statistics.median(times)
        rows.append([label, f"{1e3 * best:.2f}", f"{1e6 * best / steps:.1f}",
                     f"median {1e3 * median:.2f} ms"])
    note = (f"{steps} steps an epoch, {repeats} repeats of each, interleaved; each part's best "
            f"(least) time over the repeats, as a share of the best instrumented epoch; plain "
            f"epoch / matmul-only bound: {min(plains) / min(bounds):.2f}x by best, "
            f"{statistics.median(plains) / statistics.median(bounds):.2f}x by median; "
            f"one timer costs {1e9 * prof.overhead:.0f} ns")
    return rows, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=["a", "b", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5,
                        help="epochs of each kind (default 5; 20 times as many for (b))")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout of the hidden layers")
    parser.add_argument("--markdown", action="store_true", help="print README-ready tables")
    args = parser.parse_args(argv)
    print(("_" if args.markdown else "") + environment() + ("_\n" if args.markdown else "\n"))
    for key in ["a", "b"] if args.workload == "all" else [args.workload]:
        w = make_workload(key, None)
        # (b)'s epochs last milliseconds: more of them, so a busy moment does not decide a row
        rows, note = profile(w, args.repeats * (20 if key == "b" else 1), args.dropout)
        print(f"**{w.title}**\n" if args.markdown else w.title)
        header = ["part", "ms/epoch (best)", "µs/step (best)", "share"]
        print(format_table(header, rows, args.markdown))
        print(f"\n{note}.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
