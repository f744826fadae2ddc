"""Every learning-rate schedule's rate at the first, a middle and the last epoch against its
formula; reduce-on-plateau's reductions; and the rates the training loop actually uses."""

import math

import pytest
from sklearn.datasets import make_classification

from model.schedules import SCHEDULES, make_schedule
from tests.helpers import small_classifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

LR, T = 0.1, 40  # initial rate and epoch budget; epochs are 0-based, the last is T - 1 = 39
FLOOR = LR / 100

#: name -> {epoch: rate}, each rate written out from the schedule's formula.
EXPECTED = {
    "constant": {0: LR, 20: LR, 39: LR},
    # halved every T // 4 = 10 epochs
    "step": {0: LR, 9: LR, 10: LR / 2, 20: LR / 4, 39: LR / 8},
    # LR * 0.01 ** (epoch / T)
    "exponential": {0: LR, 20: LR / 10, 39: LR * 0.01 ** (39 / 40)},
    # LR / (1 + 99 epoch / T)
    "inverse_time": {0: LR, 20: LR / 50.5, 39: LR / (1 + 99 * 39 / 40)},
    # FLOOR + (LR - FLOOR) (1 + cos(pi epoch / T)) / 2
    "cosine": {0: LR, 20: (LR + FLOOR) / 2, 39: FLOOR + (LR - FLOOR) * (1 + math.cos(math.pi * 39 / 40)) / 2},
    # LR (1 - cos(2 pi log2(1 + 15 t))) / 2 at each epoch's midpoint t = (epoch + 1/2) / T
    "coslog4": {e: LR * (1 - math.cos(2 * math.pi * math.log2(1 + 15 * (e + 0.5) / T))) / 2 for e in (0, 20, 39)},
    # without losses to observe, plateau keeps its rate
    "plateau": {0: LR, 20: LR, 39: LR},
}


def test_every_schedule_is_covered():
    assert set(EXPECTED) == set(SCHEDULES)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_rate_matches_the_formula(name):
    schedule = make_schedule(name, LR, T)
    for epoch, rate in EXPECTED[name].items():
        assert schedule.rate(epoch) == pytest.approx(rate, rel=1e-12), (name, epoch)


def test_step_with_a_budget_not_divisible_by_four():
    s = make_schedule("step", 1.0, 10)  # period 10 // 4 = 2
    assert [s.rate(e) for e in range(10)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625]
    s = make_schedule("step", 1.0, 5)  # period 1
    assert [s.rate(e) for e in range(5)] == [1, 0.5, 0.25, 0.125, 0.0625]


def test_a_budget_of_one_epoch_or_none():
    """Laid out over max(1, max_epochs): with one epoch, epoch 1 is already the end of the decay."""
    for max_epochs in (1, 0):
        assert make_schedule("exponential", 1.0, max_epochs).rate(1) == pytest.approx(0.01, rel=1e-12)
        assert make_schedule("inverse_time", 1.0, max_epochs).rate(1) == pytest.approx(0.01, rel=1e-12)


def test_an_unknown_schedule_is_refused_with_the_known_ones_listed():
    with pytest.raises(ValueError, match="unknown lr_schedule 'linear'; expected one of: constant, step, "
                                         "exponential, inverse_time, cosine, coslog4, plateau$"):
        make_schedule("linear", LR, T)


def test_cosine_stays_at_its_floor_past_the_budget():
    s = make_schedule("cosine", LR, T)
    assert s.rate(T) == pytest.approx(FLOOR, rel=1e-12)
    assert s.rate(3 * T) == pytest.approx(FLOOR, rel=1e-12)


def test_coslog4_runs_four_cycles_that_end_near_zero_and_peak_at_the_initial_rate():
    """Four cycles over the budget: the rate rises to LR and falls back near 0 four times, the
    cycles end at t = 1/15, 3/15, 7/15 and 1 (each cycle twice as long as the one before), and no
    epoch trains at rate 0 (an epoch takes the rate of its midpoint)."""
    budget = 1500  # epochs of 1/1500: each cycle's end and peak fall within an epoch's half-width
    s = make_schedule("coslog4", LR, budget)
    rates = [s.rate(e) for e in range(budget)]
    assert min(rates) > 0
    for end in (1 / 15, 3 / 15, 7 / 15, 1.0):
        epoch = min(int(end * budget), budget - 1)
        assert rates[epoch] < 1e-3 * LR, (end, rates[epoch])
    for peak in (2**0.5 - 1, 2**1.5 - 1, 2**2.5 - 1, 2**3.5 - 1):  # log2(1 + 15 t) = k + 1/2
        epoch = int(peak / 15 * budget)
        assert rates[epoch] > 0.999 * LR, (peak, rates[epoch])
    rising = [b > a for a, b in zip(rates, rates[1:])]
    assert sum(1 for a, b in zip(rising, rising[1:]) if a and not b) == 4  # four maxima


def test_plateau_halves_after_patience_epochs_without_improvement_by_tol():
    s = make_schedule("plateau", 0.8, T, patience=3, tol=0.01)
    losses = [
        1.0,    # first loss: best = 1.0
        0.995,  # better, but not by tol: bad 1
        0.9,    # improved by more than tol: reset
        0.9,    # bad 1
        0.895,  # bad 2 (improvement below tol)
        0.9,    # bad 3 -> halve to 0.4, counter reset
        0.9,    # bad 1
        0.9,    # bad 2
        0.9,    # bad 3 -> halve to 0.2
        0.5,    # improved: reset
        0.5,    # bad 1
        0.5,    # bad 2
    ]
    rates = []
    for epoch, loss in enumerate(losses):
        rates.append(s.rate(epoch))
        s.observe(loss)
    assert rates == [0.8] * 6 + [0.4] * 3 + [0.2] * 3
    s.observe(0.5)  # bad 3 -> halve to 0.1
    assert s.rate(len(losses)) == pytest.approx(0.1)


def test_plateau_needs_an_improvement_by_more_than_tol():
    s = make_schedule("plateau", 1.0, T, patience=1, tol=0.25)  # binary fractions: exact arithmetic
    rates = []
    losses = [
        1.0,  # best = 1.0
        0.75,  # not below best - tol = 0.75: bad, and patience 1 -> halve
        0.5,  # below 0.75: best = 0.5
        0.0,  # below 0.25: best = 0.0
        0.0,  # bad -> halve
    ]
    for epoch, loss in enumerate(losses):
        s.observe(loss)
        rates.append(s.rate(epoch + 1))
    assert rates == [1.0, 0.5, 0.5, 0.5, 0.25]


@pytest.mark.parametrize("name", ["step", "exponential", "inverse_time", "cosine", "coslog4"])
def test_training_uses_the_scheduled_rate_each_epoch(name):
    """The rate in each epoch's logs is the schedule's for that epoch, laid out over max_epochs."""
    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    seen = []
    small_classifier(hidden_layer_sizes=(4,), lr_schedule=name, learning_rate=LR, max_epochs=8, batch_size=40,
                  n_iter_no_change=100, random_state=0).fit(X, y, callbacks=[lambda e, logs: seen.append(logs)])
    expected = make_schedule(name, LR, 8)
    assert [logs["lr"] for logs in seen] == pytest.approx([expected.rate(e) for e in range(8)], rel=1e-12)
    assert seen[-1]["lr"] < max(logs["lr"] for logs in seen)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_running_out_of_epochs_warns_only_without_a_schedule_laid_out_over_them(name):
    """A decaying schedule ends training at max_epochs by design; a constant rate or
    reduce-on-plateau that reaches max_epochs stopped before the loss converged."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = make_classification(n_samples=40, n_features=4, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = small_classifier(hidden_layer_sizes=(4,), lr_schedule=name, max_epochs=3, random_state=0).fit(X, y)
    assert clf.stop_reason_ == "max_epochs"
    warned = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(warned) == (1 if name in ("constant", "plateau") else 0)
