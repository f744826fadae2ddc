"""Learning-rate schedules: the rate for each epoch, decreasing over training.

Decaying schedules are laid out over ``max_epochs`` so that one name means the same shape of
decay whatever the budget: the rate ends near 1/100 of its start (step: halved four times;
coslog4 runs four cycles that each end near 0).
"""

from __future__ import annotations

import math


class Schedule:
    """Learning rate as a function of the epoch (0-based); ``observe`` sees each epoch's loss."""

    name: str = ""
    #: Whether the schedule is laid out over ``max_epochs`` and so ends training by design there
    #: (a constant rate or reduce-on-plateau has no end; running out of epochs is then a warning).
    ends_at_max_epochs: bool = True

    def __init__(self, initial_rate: float, max_epochs: int, patience: int = 5, tol: float = 1e-4):
        self.initial_rate = initial_rate
        self.max_epochs = max(1, max_epochs)

    def rate(self, epoch: int) -> float:
        raise NotImplementedError

    def observe(self, loss: float) -> None:
        """Called after each epoch with its training loss (used by reduce-on-plateau)."""


class Constant(Schedule):
    name = "constant"
    ends_at_max_epochs = False

    def rate(self, epoch: int) -> float:
        return self.initial_rate


class Step(Schedule):
    """Halve the rate every quarter of the epoch budget."""

    name = "step"

    def rate(self, epoch: int) -> float:
        period = max(1, self.max_epochs // 4)
        return self.initial_rate * 0.5 ** (epoch // period)


class Exponential(Schedule):
    """lr_0 * gamma^epoch, with gamma such that the rate reaches lr_0 / 100 at max_epochs."""

    name = "exponential"

    def rate(self, epoch: int) -> float:
        return self.initial_rate * 0.01 ** (epoch / self.max_epochs)


class InverseTime(Schedule):
    """lr_0 / (1 + k * epoch), with k such that the rate reaches lr_0 / 100 at max_epochs."""

    name = "inverse_time"

    def rate(self, epoch: int) -> float:
        return self.initial_rate / (1.0 + 99.0 * epoch / self.max_epochs)


class Cosine(Schedule):
    """Cosine annealing from lr_0 down to lr_0 / 100 at max_epochs."""

    name = "cosine"

    def rate(self, epoch: int) -> float:
        floor = self.initial_rate * 0.01
        progress = min(epoch / self.max_epochs, 1.0)
        return floor + (self.initial_rate - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CosLog(Schedule):
    """RealMLP's "coslog4": four cosine cycles on a logarithmic time axis, each longer than the
    last, lr_0 * (1 - cos(2 pi log2(1 + 15 t))) / 2 with t the training progress in [0, 1].

    The rate is 0 at t = 0 and at the end of every cycle (t = 1/15, 3/15, 7/15, 1) and lr_0 in the
    middle of each. An epoch takes the rate of its midpoint, t = (epoch + 1/2) / max_epochs, so no
    epoch trains at rate 0.
    """

    name = "coslog4"
    cycles = 4

    def rate(self, epoch: int) -> float:
        progress = min((epoch + 0.5) / self.max_epochs, 1.0)
        phase = math.log2(1.0 + (2**self.cycles - 1) * progress)
        return self.initial_rate * 0.5 * (1.0 - math.cos(2.0 * math.pi * phase))


class ReduceOnPlateau(Schedule):
    """Halve the rate when the training loss has not improved by ``tol`` for ``patience`` epochs."""

    name = "plateau"
    ends_at_max_epochs = False

    def __init__(self, initial_rate: float, max_epochs: int, patience: int = 5, tol: float = 1e-4):
        super().__init__(initial_rate, max_epochs)
        self.patience, self.tol = max(1, patience), tol
        self.current = initial_rate
        self.best = math.inf
        self.bad_epochs = 0

    def rate(self, epoch: int) -> float:
        return self.current

    def observe(self, loss: float) -> None:
        if loss < self.best - self.tol:
            self.best, self.bad_epochs = loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.current *= 0.5
            self.bad_epochs = 0


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (Constant, Step, Exponential, InverseTime, Cosine, CosLog, ReduceOnPlateau)
}


def make_schedule(
    name: str, initial_rate: float, max_epochs: int, patience: int = 5, tol: float = 1e-4
) -> Schedule:
    """The schedule called ``name``; a clear ValueError for an unknown one."""
    if not isinstance(name, str) or name not in SCHEDULES:
        allowed = ", ".join(SCHEDULES)
        raise ValueError(f"unknown lr_schedule {name!r}; expected one of: {allowed}")
    return SCHEDULES[name](initial_rate, max_epochs, patience=patience, tol=tol)
