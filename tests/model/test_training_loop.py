"""The training loop's bookkeeping: the epoch loss is the objective over every sample, the stopping
rules fire on the exact epoch they promise, and early stopping restores the best epoch's weights."""

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_classification
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import model
from model import MLPClassifier
from model.losses import CategoricalCrossEntropy
from model.network import Network
from model.optimizers import Adam
from model.schedules import make_schedule
from model import training
from model.training import StoppingRules, TrainingState, _BatchBuffers, _should_stop, train
from tests.helpers import small_classifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_full_batch_epoch_loss_is_the_objective_at_the_initial_weights(monkeypatch, l2):
    """With one batch, epoch 1's loss is J(W0) = (1/m) sum L + (l2/2m) ||W0||^2 over all m samples."""
    X, y = make_classification(n_samples=50, n_features=7, random_state=3)
    initial = []
    original = Network.initialize

    def recording_initialize(self, rng):
        original(self, rng)
        initial.append(self.params.copy())

    monkeypatch.setattr(Network, "initialize", recording_initialize)
    clf = small_classifier(hidden_layer_sizes=(5,), optimizer="sgd", l2=l2, batch_size=50, max_epochs=1,
                        dtype="float64", random_state=0).fit(X, y)
    net = clf._network
    net.params[:] = initial[0]
    expected = net.loss_and_gradients(X, y.reshape(-1, 1).astype(float), l2)
    assert clf.loss_curve_[0] == pytest.approx(expected, rel=1e-12)
    p = 1 / (1 + np.exp(-net.predict_logits(X).ravel()))  # the same, written out
    by_hand = log_loss(y, p) + l2 / (2 * 50) * sum(float((W**2).sum()) for W in net.coefs)
    assert clf.loss_curve_[0] == pytest.approx(by_hand, rel=1e-9)
    assert clf.stop_reason_ == "max_epochs"


def _run_rules(rules: StoppingRules, values: list[float], key: str = "val_accuracy"):
    """Feed one value per epoch to ``_should_stop``; return the epoch it stopped at and the state.

    The network's parameters at epoch k are [k], so ``best`` shows which epoch was saved."""
    state, net = TrainingState(), SimpleNamespace(params=np.zeros(1))
    best = np.full(1, -1.0)
    for epoch, value in enumerate(values, start=1):
        state.epoch = epoch
        net.params[:] = epoch
        if key == "loss":
            state.loss_curve.append(value)
            logs = {"loss": value}
        else:
            state.loss_curve.append(1.0)
            logs = {"loss": 1.0, key: value}
        if _should_stop(state, rules, logs, "val_accuracy", net, best):
            return epoch, state, best
    return None, state, best


def test_early_stopping_waits_exactly_patience_epochs_without_an_improvement_by_more_than_tol():
    rules = StoppingRules(max_epochs=100, tol=0.125, early_stopping=True, patience=2)
    # 0.625 is not above best + tol = 0.625 (strict), so epochs 3 and 4 do not improve
    stopped, state, best = _run_rules(rules, [0.25, 0.5, 0.625, 0.5, 0.875])
    assert stopped == 4 and state.stop_reason == "early_stopping"
    assert state.best_epoch == 2 and state.best_score == 0.5 and best[0] == 2.0
    assert state.validation_scores == [0.25, 0.5, 0.625, 0.5]
    # an improvement resets the count: with patience 3, epoch 5 improves and the run goes on
    stopped, state, best = _run_rules(rules.__class__(100, 0.125, early_stopping=True, patience=3),
                                      [0.25, 0.5, 0.625, 0.5, 0.875, 0.875, 0.875, 0.875])
    assert stopped == 8 and state.best_epoch == 5 and best[0] == 5.0


def test_early_stopping_on_a_loss_counts_a_fall_by_more_than_tol_as_an_improvement():
    """early_stopping_metric="loss" monitors a loss (higher_is_better False): lower is better."""
    rules = StoppingRules(max_epochs=100, tol=0.125, early_stopping=True, patience=2, higher_is_better=False)
    # 0.375 is not below best - tol = 0.375 (strict), 0.75 is worse: epochs 3 and 4 do not improve
    stopped, state, best = _run_rules(rules, [1.0, 0.5, 0.375, 0.75, 0.125])
    assert stopped == 4 and state.stop_reason == "early_stopping"
    assert state.best_epoch == 2 and best[0] == 2.0
    assert state.validation_scores == [1.0, 0.5, 0.375, 0.75]  # recorded as logged, not negated


def test_convergence_stops_after_n_iter_no_change_epochs_without_a_drop_by_more_than_tol():
    rules = StoppingRules(max_epochs=100, tol=0.125, n_iter_no_change=2)
    # 0.875 is not below 1.0 - tol (strict): no improvement, though it is the best loss so far
    stopped, state, _ = _run_rules(rules, [1.0, 0.875, 0.75, 0.5], key="loss")
    assert stopped == 3 and state.stop_reason == "converged"
    assert state.best_epoch == 3 and state.best_loss == 0.75
    # a loss equal to the best does not move the best epoch
    stopped, state, _ = _run_rules(StoppingRules(100, 0.125, n_iter_no_change=3), [1.0, 0.5, 0.5, 0.5, 0.5], key="loss")
    assert stopped == 5 and state.best_epoch == 2


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    """The restored model's validation loss is the one logged at the best epoch, not the last."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    seen = []
    clf = small_classifier(hidden_layer_sizes=(16,), learning_rate=0.05, optimizer="sgd", early_stopping=True,
                        patience=3, max_epochs=60, dtype="float64", random_state=0)
    clf.fit(X_tr, y_tr, X_val=X_val, y_val=y_val, callbacks=[lambda e, logs: seen.append(logs)])
    assert clf.stop_reason_ == "early_stopping" and clf.best_epoch_ < clf.n_iter_ == len(seen)
    at_best, at_last = seen[clf.best_epoch_ - 1]["val_loss"], seen[-1]["val_loss"]
    assert abs(at_best - at_last) > 1e-3  # restoring is not a no-op
    assert log_loss(y_val, clf.predict_proba(X_val), labels=clf.classes_) == pytest.approx(at_best, rel=1e-6)


@pytest.mark.parametrize("gather_bytes", [1, 9 * 32, 1 << 20])  # a chunk of 1 batch, 2 batches, all
def test_batches_are_the_permuted_rows_in_order_the_last_one_shorter(monkeypatch, gather_bytes):
    monkeypatch.setattr(training, "GATHER_BYTES", gather_bytes)
    X = np.arange(30.0).reshape(10, 3)
    Y = np.arange(10.0)[:, None] * 100
    perm = np.random.default_rng(0).permutation(10)
    got = [(Xb.copy(), Yb.copy()) for Xb, Yb in _BatchBuffers(X, Y, 4).shuffled(perm)]
    assert [len(Xb) for Xb, _ in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([Xb for Xb, _ in got]), X[perm])
    np.testing.assert_array_equal(np.concatenate([Yb for _, Yb in got]), Y[perm])


@pytest.mark.parametrize("rows", [1, 31, 32, 33, 64, 100])
def test_batch_views_are_the_slices_of_the_buffer(rows):
    """The batches cut from a reshaped buffer are the views slicing would cut: the same memory,
    shape and strides, so a batch's products see the same layout bit for bit."""
    buffer = np.empty((100, 5), np.float32)
    views = training._batch_views(buffer, rows, 32)
    sliced = [buffer[lo : min(lo + 32, rows)] for lo in range(0, rows, 32)]
    assert [v.__array_interface__ for v in views] == [s.__array_interface__ for s in sliced]
    assert all(v.flags.c_contiguous and v.base is not None for v in views)


def test_training_holds_no_copy_of_the_data_set():
    """An epoch gathers its batches a chunk at a time into one reused buffer: memory above the
    inputs stays far below the size of X (a shuffled copy of X, or a temporary of take's, would be
    all of it)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100_000, 50)).astype(np.float32)
    Y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 100_000)]
    net = Network([50, 8, 2], "relu", CategoricalCrossEntropy())
    net.initialize(rng)
    rules = StoppingRules(max_epochs=2, tol=0.0, n_iter_no_change=10)
    tracemalloc.start()
    try:
        train(net, Adam(net.params), make_schedule("constant", 1e-3, 2), X, Y, batch_size=64, l2=1e-4,
              rules=rules, rng=rng, state=TrainingState())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.2 * X.nbytes


def _digits_fit(**kw):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:400])
    seen = []
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_size=32, max_epochs=4, dropout=0.1, random_state=0, **kw)
    return clf.fit(X, y[:400], X_val=X[:50], y_val=y[:50], callbacks=[lambda e, logs: seen.append(logs)]), seen


def test_an_epoch_of_at_least_every_row_is_one_pass_bit_for_bit():
    """epoch_rows >= the number of rows trains exactly as one pass an epoch (epoch_rows=None):
    the same shuffles, dropout masks, weights, curves and logs."""
    reference, logs = _digits_fit()
    for rows in (400, 401, 10**9):
        clf, seen = _digits_fit(epoch_rows=rows)
        np.testing.assert_array_equal(clf._network.params, reference._network.params)
        assert clf.loss_curve_ == reference.loss_curve_ and seen == logs
        assert clf.n_iter_ == reference.n_iter_ == 4 and clf.t_ == reference.t_ == 4 * 13


def test_epochs_of_a_quarter_of_the_rows_see_every_row_once_in_four_epochs(monkeypatch, tmp_path):
    """With epoch_rows = n/4 each epoch trains on n/4 rows, and epochs 4k+1..4k+4 together see every
    row exactly once; the loop's epoch bookkeeping (curve, steps, callbacks, max_epochs) counts them."""
    seen_rows = []
    original = _BatchBuffers.shuffled

    def recording(self, perm):
        seen_rows.append(perm.copy())
        return original(self, perm)

    monkeypatch.setattr(_BatchBuffers, "shuffled", recording)
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:400])
    epochs = []
    clf = MLPClassifier(hidden_layer_sizes=(8,), batch_size=32, max_epochs=8, epoch_rows=100, random_state=0)
    clf.fit(X, y[:400], callbacks=[lambda e, logs: epochs.append(e)])
    assert [len(rows) for rows in seen_rows] == [100] * 8
    for k in (0, 4):
        np.testing.assert_array_equal(np.sort(np.concatenate(seen_rows[k : k + 4])), np.arange(400))
    assert not np.array_equal(np.concatenate(seen_rows[:4]), np.concatenate(seen_rows[4:]))  # reshuffled
    assert epochs == list(range(1, 9)) and clf.n_iter_ == 8 and len(clf.loss_curve_) == 8
    assert clf.t_ == 8 * 4  # 4 batches of 32, 32, 32 and 4 rows an epoch
    clf.save(tmp_path / "model.npz")
    assert model.load(tmp_path / "model.npz").get_params()["epoch_rows"] == 100


def test_an_epoch_that_crosses_the_end_of_a_pass_takes_the_rest_from_the_next():
    """With epoch_rows not dividing n, the pass ends inside an epoch: that epoch holds the old order's
    last rows then the new order's first ones, and every pass sees each row once."""
    order = training._RowOrder(10, np.random.default_rng(0))
    epochs = [order.next(4) for _ in range(5)]  # 20 rows: exactly two passes
    assert [len(e) for e in epochs] == [4] * 5
    flat = np.concatenate(epochs)
    for k in (0, 10):
        np.testing.assert_array_equal(np.sort(flat[k : k + 10]), np.arange(10))
