"""The mini-batch training loop: epochs, shuffling, schedules, stopping rules and callbacks.

It knows nothing of what it trains for: the estimator passes an ``evaluate`` function that
returns the validation metrics, and the name of the one that early stopping watches.

An epoch is one pass over the rows, or, with ``epoch_rows``, the next ``epoch_rows`` rows of a
running shuffled order: on a large data set the schedule, validation, callbacks and stopping rules
then act several times a pass instead of once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .network import Network
from .optimizers import Optimizer
from .schedules import Schedule

#: ``callback(epoch, logs)`` after each epoch (1-based); returning True stops training.
EpochCallback = Callable[[int, dict[str, float]], "bool | None"]


class DivergenceError(ValueError):
    """The training loss became NaN or infinite."""


@dataclass
class StoppingRules:
    """When to stop: the epoch budget, convergence of the loss, or early stopping."""

    max_epochs: int
    tol: float = 1e-4
    n_iter_no_change: int = 10
    early_stopping: bool = False
    patience: int = 10
    #: Whether a higher value of the monitored validation metric is better (accuracy, R²) or a
    #: lower one (a loss).
    higher_is_better: bool = True


@dataclass
class TrainingState:
    """What the loop carries across ``fit``/``partial_fit`` calls."""

    epoch: int = 0
    steps: int = 0
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_score: float = -math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stop_reason: str = ""


def train(
    network: Network,
    optimizer: Optimizer,
    schedule: Schedule,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    batch_size: int,
    l2: float,
    rules: StoppingRules,
    rng: np.random.Generator,
    state: TrainingState,
    evaluate: Callable[[], dict[str, float]] | None = None,
    monitor: str | None = None,
    callbacks: Sequence[EpochCallback] = (),
    epoch_rows: int | None = None,
) -> TrainingState:
    """Run up to ``rules.max_epochs`` epochs of shuffled mini-batch descent on (X, Y).

    An epoch is ``epoch_rows`` rows (None, or at least the number of rows: one pass) taken in
    turn from a shuffled order of the rows, drawn afresh when used up (:class:`_RowOrder`), so
    that every row is seen once a pass. With ``rules.early_stopping`` the weights of the epoch
    with the best ``monitor`` value (the highest, or the lowest when ``rules.higher_is_better``
    is false) are restored at the end.
    """
    n = X.shape[0]
    m = n if epoch_rows is None else min(max(1, int(epoch_rows)), n)
    batch_size = min(max(1, batch_size), m)
    batches = _BatchBuffers(X, Y, batch_size, m)
    order = _RowOrder(n, rng)
    best_params = network.params.copy() if rules.early_stopping else None
    # Python floats throughout: a NumPy float64 scalar (say a learning rate from a parameter
    # grid) would make every float32 update compute in float64.
    penalty = 0.0 if optimizer.decouples_weight_decay else float(l2)
    state.stop_reason = "max_epochs"
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(rules.max_epochs):
            lr = float(schedule.rate(state.epoch))
            total = 0.0
            for Xb, Yb in batches.shuffled(order.next(m)):
                loss = network.loss_and_gradients(Xb, Yb, penalty, rng)
                if not math.isfinite(loss):
                    state.stop_reason = "diverged"
                    raise DivergenceError(
                        f"training diverged at epoch {state.epoch + 1}: the loss is {loss}; "
                        "lower the learning rate or scale the features"
                    )
                optimizer.step(network.grads, lr)
                total += loss * Xb.shape[0]
            state.epoch += 1
            state.steps += math.ceil(m / batch_size)
            epoch_loss = total / m
            state.loss_curve.append(epoch_loss)
            schedule.observe(epoch_loss)
            logs = {"loss": epoch_loss, "lr": lr}
            if evaluate is not None:
                logs.update(evaluate())
            stop = _should_stop(state, rules, logs, monitor, network, best_params)
            if any([bool(cb(state.epoch, dict(logs))) for cb in callbacks]):
                state.stop_reason, stop = "callback", True
            if stop:
                break
    if best_params is not None and state.validation_scores:
        np.copyto(network.params, best_params)
    return state


#: Rows are gathered for several batches at a time, about this many bytes of X and Y together:
#: few NumPy calls per batch when batches are small, little memory above the inputs when the
#: data set is large.
GATHER_BYTES = 1 << 20


class _RowOrder:
    """The rows' running shuffled order, handed out an epoch at a time.

    Each call to :meth:`next` takes the next rows of the current permutation, and draws a fresh
    one from ``rng`` when the current one is used up: a pass sees every row once, and an epoch
    of all ``n`` rows is one ``rng.permutation(n)``, the same draws as one permutation an epoch.
    """

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.perm = np.empty(0, dtype=np.intp)
        self.position = 0

    def next(self, m: int) -> np.ndarray:
        """The row indices of the next epoch of ``m`` rows (``m`` <= ``n``)."""
        if self.position == self.perm.size:
            self.perm, self.position = self.rng.permutation(self.n), 0
        rows = self.perm[self.position : self.position + m]
        self.position += rows.size
        if rows.size < m:  # the pass ends inside this epoch: the rest from the next pass
            self.perm, self.position = self.rng.permutation(self.n), m - rows.size
            rows = np.concatenate([rows, self.perm[: self.position]])
        return rows


class _BatchBuffers:
    """The mini-batches of one epoch, gathered into buffers reused all along the epoch.

    Each chunk of whole batches (about ``GATHER_BYTES``, at least one batch) is gathered at once
    (``np.take`` into the buffer), instead of a shuffled copy of the whole data set: training's
    memory stays one chunk above the inputs. A batch's arrays are overwritten when the next
    chunk is gathered, after the step that used them: the network's caches only live from a
    batch's forward pass to its backward pass.
    """

    def __init__(
        self, X: np.ndarray, Y: np.ndarray, batch_size: int, epoch_rows: int | None = None
    ) -> None:
        self.X, self.Y = X, Y
        n = X.shape[0] if epoch_rows is None else epoch_rows
        row_bytes = X[:1].nbytes + Y[:1].nbytes
        chunk = min(n, batch_size * max(1, GATHER_BYTES // (row_bytes * batch_size or 1)))
        Xc = np.empty((chunk, *X.shape[1:]), X.dtype)
        Yc = np.empty((chunk, *Y.shape[1:]), Y.dtype)
        # Per chunk: (start, stop, X rows, Y rows, its batches as (X rows, Y rows)); views cut
        # once, only the last chunk and batch may be shorter.
        self.chunks = []
        for start in range(0, n, chunk):
            rows = min(chunk, n - start)
            X_views, Y_views = (_batch_views(B, rows, batch_size) for B in (Xc, Yc))
            batches = list(zip(X_views, Y_views, strict=True))
            self.chunks.append((start, start + rows, Xc[:rows], Yc[:rows], batches))

    def shuffled(self, perm: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each batch of the rows in the order ``perm`` (an epoch's rows): (X rows, Y rows)."""
        for start, stop, Xc, Yc, batches in self.chunks:
            rows = perm[start:stop]
            # mode="clip" (the indices are in range): with the default mode, take with out=
            # gathers into a temporary first.
            np.take(self.X, rows, axis=0, out=Xc, mode="clip")
            np.take(self.Y, rows, axis=0, out=Yc, mode="clip")
            yield from batches


def _batch_views(buffer: np.ndarray, rows: int, batch_size: int) -> list[np.ndarray]:
    """The batches of the first ``rows`` rows of ``buffer``: views of ``batch_size`` rows, the
    last one shorter when ``batch_size`` does not divide ``rows``.

    The whole batches come from iterating a reshaped view, which NumPy cuts in C: the same
    views as slicing ``buffer[lo : lo + batch_size]`` batch by batch, for less than half the
    time on small batches, a cost each ``partial_fit`` call pays.
    """
    whole = rows - rows % batch_size
    views = list(buffer[:whole].reshape(-1, batch_size, *buffer.shape[1:]))
    if whole < rows:
        views.append(buffer[whole:rows])
    return views


def _should_stop(
    state: TrainingState,
    rules: StoppingRules,
    logs: dict[str, float],
    monitor: str | None,
    network: Network,
    best_params: np.ndarray | None,
) -> bool:
    """Track the best epoch; True when the loss converged or validation stopped improving."""
    if monitor is not None and monitor in logs:
        state.validation_scores.append(logs[monitor])
        score = logs[monitor] if rules.higher_is_better else -logs[monitor]
        if rules.early_stopping:
            if score > state.best_score + rules.tol:
                state.best_score, state.best_epoch = score, state.epoch
                state.epochs_without_improvement = 0
                assert best_params is not None, "early stopping keeps the best parameters"
                np.copyto(best_params, network.params)
            else:
                state.epochs_without_improvement += 1
            if state.epochs_without_improvement >= rules.patience:
                state.stop_reason = "early_stopping"
                return True
            return False
    loss = state.loss_curve[-1]
    if loss < state.best_loss - rules.tol:
        state.epochs_without_improvement = 0
    else:
        state.epochs_without_improvement += 1
    if loss < state.best_loss:
        state.best_loss, state.best_epoch = loss, state.epoch
    if state.epochs_without_improvement >= rules.n_iter_no_change:
        state.stop_reason = "converged"
        return True
    return False
