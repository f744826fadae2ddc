"""What a trained model costs to deploy, measured: its parameters, its saved size, its latency.

Every completed trial (and, in a constrained study, every pruned one: :mod:`tuner.search.objective`)
is measured once, in the process that trained it, right after training (:func:`measure_costs`), the
same way for every trial:

- ``n_params``: the network's weights and biases.
- ``size_kb``: the size of the file :func:`model.save` writes for the network (the ``.npz`` of
  plain arrays and its JSON header) without its training curves (loss and validation score per
  epoch: a record of the training that no prediction needs, whose length follows the epochs
  trained), in kB (1,000 bytes): what a deployment must hold, fixed by the architecture and the
  labels. A file saved with the curves, as ``tuner export`` writes it, is larger by them.
- ``latency_ms_row``: the fastest of :data:`ROW_REPEATS` calls of ``predict`` on one row, in ms.
- ``latency_ms_batch1000``: the fastest of :data:`BATCH_REPEATS` calls of ``predict`` on 1,000
  rows, in ms.

The fastest call, not the median, as ``timeit`` advises: a trial is timed while the tuner's own
logging threads run, and a call they interrupt is slower for reasons that are not the model's
(``bench/bench_latency_spread.py`` measures the spread; the README's "Tuning for deployment" has the
figures).

The rows are the study's validation rows (repeated to 1,000 when there are fewer), already
preprocessed: the study's preprocessing is **excluded** from size and latency. It is fitted once per
study, is the same for every trial, and would add the same (pandas-bound) time to each; what a
trial's parameters change is the network, so the costs measure the network alone. BLAS is held to
:data:`MEASURE_THREADS` thread while measuring, whatever the process trains with: the costs do not
depend on ``--threads``, and a measurement at export time (:mod:`tuner.result.export`) is made like
the trial's (OpenBLAS's threads spin while another process holds a core, which makes the latency of
a small network many times its one-thread figure on a busy machine). One warm-up call on one row
precedes the timings. The 1,000-row calls are most of the measuring time.

In a constrained study, a trial's network is also measured **before** it trains
(:func:`measure_untrained`): a copy of it is initialised on a few training rows, without training,
and measured the same way. Its parameter count is the trained network's; its latency is that of the
same layers (a network's weights do not change how long ``predict`` takes, up to the timing's
noise); its saved size is the trained network's (the same arrays and header: the curves are not
counted). A trial whose untrained network already breaks a bound (a timed cost by a margin,
:func:`over_bound_untrained`) is pruned before it trains (:mod:`tuner.search.objective`) and does
not use the budget (:mod:`tuner.storage.budget`), so an infeasible architecture costs a constrained
study a measurement, not a training.

The costs are stored on the Optuna trial as user attributes ``cost_<name>`` and logged as metrics of
the trial's MLflow run (the trial's summary, :mod:`tuner.search.objective`). The names are the fixed
set :data:`COSTS`: a study file's ``[objective] constraints`` and ``tuner export --where`` use them.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

import numpy as np

from tuner.threads import limit_blas_threads

#: The cost names, in the order they are shown, with their unit (for messages and the README).
COSTS = {
    "latency_ms_row": "ms to predict one row",
    "latency_ms_batch1000": "ms to predict 1,000 rows",
    "size_kb": "kB of the saved network, without its training curves",
    "n_params": "weights and biases",
}
#: The prefix of a cost's trial user attribute (and of its MLflow metric).
ATTR_PREFIX = "cost_"
#: Timed calls per latency (the fastest is kept) and the rows of a batch.
ROW_REPEATS = 11
BATCH_REPEATS = 5
BATCH_ROWS = 1000
#: BLAS threads while measuring (:mod:`tuner.threads`'s policy for a worker).
MEASURE_THREADS = 1


def attr_name(cost: str) -> str:
    """The trial user attribute holding ``cost`` (``cost_latency_ms_row``, ...)."""
    return ATTR_PREFIX + cost


def _fastest_ms(call, repeats: int, warm_up: bool = True) -> float:
    if warm_up:  # the first call of a model pays for caches a served model has warm
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) * 1000.0


def saved_size_kb(estimator) -> float:
    """kB (1,000 bytes) of the file :func:`model.save` writes for ``estimator`` without its
    training curves (written to memory: the same bytes, without the disk's variable time)."""
    import copy

    from model.serialization import write

    network = copy.copy(estimator)  # the same weights, its own (empty) curves
    network.loss_curve_, network.validation_scores_ = [], []
    buffer = io.BytesIO()
    write(network, buffer)
    return buffer.getbuffer().nbytes / 1000.0


def measure_costs(estimator, rows: np.ndarray) -> dict[str, float]:
    """The costs (:data:`COSTS`) of a fitted network, by name; ``rows`` are preprocessed rows
    (the validation split), at least one. See the module docstring for how each is measured."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        raise ValueError("measuring latency needs at least one row")
    one = rows[:1]
    batch = (
        np.resize(rows, (BATCH_ROWS, *rows.shape[1:]))
        if len(rows) < BATCH_ROWS
        else rows[:BATCH_ROWS]
    )
    with limit_blas_threads(MEASURE_THREADS):
        return {
            "latency_ms_row": _fastest_ms(lambda: estimator.predict(one), ROW_REPEATS),
            # No warm-up of its own: the one-row calls warmed the model, and a 1,000-row call is
            # most of the measuring time.
            "latency_ms_batch1000": _fastest_ms(
                lambda: estimator.predict(batch), BATCH_REPEATS, warm_up=False
            ),
            "size_kb": saved_size_kb(estimator),
            "n_params": float(estimator.n_params_),
        }


#: Training rows the untrained copy is initialised on (one epoch of ``partial_fit`` over them).
PROBE_ROWS = 32
#: A timed cost (the latencies) of an untrained network prunes its trial only above this many
#: times the bound: one network's timed latency varies from measurement to measurement
#: (``bench/bench_latency_spread.py``), and a network near the bound should train and be judged by
#: its own measurement rather than be dropped by a slow one. Exact costs use the bound itself.
UNTRAINED_TIMING_MARGIN = 1.25
#: The costs that are timed (the others are exact).
TIMED_COSTS = ("latency_ms_row", "latency_ms_batch1000")


def over_bound_untrained(costs: dict[str, float], bounds: dict[str, float]) -> dict[str, float]:
    """The bounds that an untrained network's ``costs`` break for certain, by cost name: an exact
    cost above its bound, a timed one above :data:`UNTRAINED_TIMING_MARGIN` times it."""
    return {
        name: bound
        for name, bound in bounds.items()
        if costs[name] > bound * (UNTRAINED_TIMING_MARGIN if name in TIMED_COSTS else 1.0)
    }


def measure_untrained(
    estimator, X: np.ndarray, y: np.ndarray, rows: np.ndarray
) -> dict[str, float]:
    """The costs of ``estimator``'s network before it trains: an unfitted copy (scikit-learn's
    ``clone``, same layers) initialised by one ``partial_fit`` epoch over the first
    :data:`PROBE_ROWS` training rows ``X``, ``y`` (a classifier is told every class of ``y``), then
    measured by :func:`measure_costs` on ``rows``. ``estimator`` itself is not touched."""
    import warnings

    from sklearn.base import clone, is_classifier

    probe = clone(estimator)
    n = min(len(X), PROBE_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if is_classifier(probe) and np.ndim(y) == 1:
            probe.partial_fit(X[:n], y[:n], classes=np.unique(y))
        else:
            probe.partial_fit(X[:n], y[:n])
    return measure_costs(probe, rows)


def trial_costs(trial) -> dict[str, float]:
    """The costs stored on a trial (an Optuna trial or FrozenTrial), by name; a cost not measured
    (a failed trial, a pruned trial of an unconstrained study, a trial stored without costs) is
    absent."""
    attrs = trial.user_attrs
    out = {}
    for name in COSTS:
        value = attrs.get(attr_name(name))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def as_attrs(costs: dict[str, Any]) -> dict[str, float]:
    """``costs`` keyed by their user attribute (and MLflow metric) names."""
    return {attr_name(name): float(value) for name, value in costs.items()}
