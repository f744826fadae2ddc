"""The search space: how a study file's [space] table is parsed and a trial draws parameters.

Each [space] entry is one of
    a table {low, high, log, step}  a range (int or float, following the parameter),
    a list                          categorical choices,
    a scalar                        a fixed value (recorded as a trial user attribute),
    false                           dropped: the estimator's own default is used.
A true/false parameter (``robust_scaling``) takes ``[true, false]`` to be tuned, or ``true`` or
``false`` as a fixed value: its ``false`` is a value, not a drop.
Omitted entries take DEFAULT_SPACE. `n_layers` and `units` build `hidden_layer_sizes`: every layer
gets its own parameter `units_l0`, `units_l1`, ...; a dropped `n_layers` means one layer, a dropped
`units` means 64 units per layer, both dropped leaves `hidden_layer_sizes` to the estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model.activations import HIDDEN_ACTIVATIONS
from model.optimizers import OPTIMIZERS as MODEL_OPTIMIZERS
from model.schedules import SCHEDULES as MODEL_SCHEDULES

if TYPE_CHECKING:
    import optuna

#: The names the model knows, from its registries (in their order: the default choices).
ACTIVATIONS = tuple(HIDDEN_ACTIVATIONS)
OPTIMIZERS = tuple(MODEL_OPTIMIZERS)
SCHEDULES = tuple(MODEL_SCHEDULES)
#: Not coslog4 (a study file may list it): its cycles back to rate 0 suit a fixed epoch budget.
DEFAULT_SCHEDULES = tuple(s for s in SCHEDULES if s != "coslog4")
DEFAULT_UNITS = 64

DEFAULT_SPACE: dict[str, Any] = {
    "n_layers": {"low": 1, "high": 4},
    "units": {"low": 16, "high": 256, "log": True},
    "activation": list(ACTIVATIONS),
    "batch_size": [32, 64, 128, 256, 512],
    "learning_rate": {"low": 1e-4, "high": 0.1, "log": True},
    "lr_schedule": list(DEFAULT_SCHEDULES),
    "optimizer": list(OPTIMIZERS),
    "l2": {"low": 1e-6, "high": 1e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "patience": {"low": 3, "high": 20},
    # Off unless a study file sets it: the study's preprocessing standardises the inputs already,
    # and a trial's robust scaling would copy its training rows (the estimators' default is on).
    "robust_scaling": False,
    # Left to the estimator (no smoothing) unless a study file sets it.
    "label_smoothing": False,
}


@dataclass(frozen=True)
class Domain:
    """The values a parameter may take: integers or floats within bounds, or named choices."""

    kind: Literal["int", "float", "choice", "bool"]
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {_num(self.high)}")
        noun = "an integer" if self.kind == "int" else "a number"
        return f"{noun} {' and '.join(parts)}".strip()

    def check(self, value: Any) -> str | int | float:
        """The value converted to the parameter's type; else ValueError saying what is allowed."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{value!r} is not allowed (expected true or false)")
            return value
        if self.kind == "choice":
            if value not in self.choices or not isinstance(value, str):
                raise ValueError(f"{value!r} is not allowed (allowed: {', '.join(self.choices)})")
            return value
        return self.check_number(value)

    def check_number(self, value: Any) -> int | float:
        """:meth:`check` for an "int" or "float" parameter."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{value!r} is not a number (expected {self.describe()})")
        if self.kind == "int":
            if not float(value).is_integer():
                raise ValueError(f"{value!r} is not an integer (expected {self.describe()})")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{value!r} is not finite (expected {self.describe()})")
        too_low = self.low is not None and (
            value < self.low or (value == self.low and not self.low_inclusive)
        )
        too_high = self.high is not None and (
            value > self.high or (value == self.high and not self.high_inclusive)
        )
        if too_low or too_high:
            raise ValueError(f"{_num(value)} is out of bounds (expected {self.describe()})")
        return value


DOMAINS: dict[str, Domain] = {
    "n_layers": Domain("int", 1, 10),
    "units": Domain("int", 1, None),
    "activation": Domain("choice", choices=ACTIVATIONS),
    "batch_size": Domain("int", 1, None),
    "learning_rate": Domain("float", 0, None, low_inclusive=False),
    "lr_schedule": Domain("choice", choices=SCHEDULES),
    "optimizer": Domain("choice", choices=OPTIMIZERS),
    "l2": Domain("float", 0, None),
    "dropout": Domain("float", 0, 1, high_inclusive=False),
    "patience": Domain("int", 1, None),
    "robust_scaling": Domain("bool"),
    "label_smoothing": Domain("float", 0, 1, high_inclusive=False),
}
#: Parameters of MLPClassifier only: a regression study's default space drops them.
CLASSIFIER_ONLY = ("label_smoothing",)
#: The parameters drawn as themselves: every one but the two that build ``hidden_layer_sizes``.
SCALAR_PARAMS = tuple(name for name in DOMAINS if name not in ("n_layers", "units"))


def _num(value: float) -> str:
    return repr(value)


def _text(value: bool | str | int | float) -> str:
    """A value as a study file writes it (true/false for booleans)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Spec):
    """A numeric range, sampled on a log scale when ``log`` is true, on a ``step`` grid if given."""

    kind: Literal["range"] = "range"
    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    def describe(self) -> str:
        extra = ", log" if self.log else (f", step {_num(self.step)}" if self.step else "")
        return f"range({_num(self.low)}, {_num(self.high)}{extra})"


class Choices(_Spec):
    """Categorical choices."""

    kind: Literal["choices"] = "choices"
    values: tuple[bool | str | int | float, ...]

    def describe(self) -> str:
        return "[" + ", ".join(map(_text, self.values)) + "]"


class Fixed(_Spec):
    """One value, used in every trial."""

    kind: Literal["fixed"] = "fixed"
    value: bool | str | int | float

    def describe(self) -> str:
        return _text(self.value)


class Dropped(_Spec):
    """Not passed to the estimator, which uses its own default."""

    kind: Literal["dropped"] = "dropped"

    def describe(self) -> str:
        return "dropped"


ParamSpec = Annotated[Range | Choices | Fixed | Dropped, Field(discriminator="kind")]
RANGE_KEYS = ("low", "high", "log", "step")


def parse_spec(name: str, raw: Any) -> Range | Choices | Fixed | Dropped:
    """Parse one [space] entry for parameter `name`; ValueError with a readable reason otherwise."""
    domain = DOMAINS[name]
    if isinstance(raw, dict) and "kind" in raw:
        raw = _undump(raw)
    if isinstance(raw, Range | Choices | Fixed | Dropped):
        return raw
    if domain.kind == "bool" and isinstance(raw, bool):
        return Fixed(value=raw)
    if raw is False:
        return Dropped()
    if raw is True:
        raise ValueError("true is not a value here; use false to drop the parameter")
    if isinstance(raw, dict):
        return _parse_range(domain, raw)
    if isinstance(raw, list | tuple):
        if not raw:
            raise ValueError(f"the list of choices is empty (expected {domain.describe()})")
        values = tuple(domain.check(v) for v in raw)
        if len(set(values)) != len(values):
            raise ValueError(f"the choices {list(raw)} repeat a value")
        return Choices(values=values)
    return Fixed(value=domain.check(raw))


def _undump(raw: dict[str, Any]) -> Any:
    kind = raw["kind"]
    rest = {k: v for k, v in raw.items() if k != "kind"}
    if kind == "range":
        return {k: v for k, v in rest.items() if v is not None}
    if kind == "choices":
        return list(rest.get("values", []))
    if kind == "fixed":
        return rest.get("value")
    if kind == "dropped":
        return Dropped()
    raise ValueError(f"unknown kind {kind!r} (allowed: range, choices, fixed, dropped)")


def _parse_range(domain: Domain, raw: dict[str, Any]) -> Range:
    if domain.kind in ("choice", "bool"):
        raise ValueError(
            "a range does not fit a categorical parameter; "
            f"give a list of choices ({domain.describe()})"
        )
    unknown = sorted(set(raw) - set(RANGE_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in range (allowed: {', '.join(RANGE_KEYS)})")
    if "low" not in raw or "high" not in raw:
        raise ValueError("a range needs both low and high")
    low, high = raw["low"], raw["high"]
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} ({value!r}) is not a number")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false (got {log!r})")
    if low >= high:
        raise ValueError(f"low ({_num(low)}) must be below high ({_num(high)})")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0 (got low = {_num(low)})")
    low, high = domain.check_number(low), domain.check_number(high)
    step = raw.get("step")
    if step is not None:
        if log:
            raise ValueError("log and step cannot be combined")
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise ValueError(f"step must be a positive number (got {step!r})")
        if domain.kind == "int" and not float(step).is_integer():
            raise ValueError(f"step must be an integer for an integer parameter (got {step!r})")
    return Range(low=low, high=high, log=log, step=step)


class SpaceConfig(BaseModel):
    """The [space] table: one entry per tunable parameter, defaulting to DEFAULT_SPACE."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_layers: ParamSpec = Field(
        default_factory=lambda: parse_spec("n_layers", DEFAULT_SPACE["n_layers"])
    )
    units: ParamSpec = Field(default_factory=lambda: parse_spec("units", DEFAULT_SPACE["units"]))
    activation: ParamSpec = Field(
        default_factory=lambda: parse_spec("activation", DEFAULT_SPACE["activation"])
    )
    batch_size: ParamSpec = Field(
        default_factory=lambda: parse_spec("batch_size", DEFAULT_SPACE["batch_size"])
    )
    learning_rate: ParamSpec = Field(
        default_factory=lambda: parse_spec("learning_rate", DEFAULT_SPACE["learning_rate"])
    )
    lr_schedule: ParamSpec = Field(
        default_factory=lambda: parse_spec("lr_schedule", DEFAULT_SPACE["lr_schedule"])
    )
    optimizer: ParamSpec = Field(
        default_factory=lambda: parse_spec("optimizer", DEFAULT_SPACE["optimizer"])
    )
    l2: ParamSpec = Field(default_factory=lambda: parse_spec("l2", DEFAULT_SPACE["l2"]))
    dropout: ParamSpec = Field(
        default_factory=lambda: parse_spec("dropout", DEFAULT_SPACE["dropout"])
    )
    patience: ParamSpec = Field(
        default_factory=lambda: parse_spec("patience", DEFAULT_SPACE["patience"])
    )
    robust_scaling: ParamSpec = Field(
        default_factory=lambda: parse_spec("robust_scaling", DEFAULT_SPACE["robust_scaling"])
    )
    label_smoothing: ParamSpec = Field(
        default_factory=lambda: parse_spec("label_smoothing", DEFAULT_SPACE["label_smoothing"])
    )

    @field_validator(*DOMAINS, mode="before")
    @classmethod
    def _parse(cls, raw: Any, info: Any) -> Any:
        return parse_spec(info.field_name, raw)

    def describe(self) -> dict[str, str]:
        """One short string per parameter, for logging."""
        return {name: getattr(self, name).describe() for name in DOMAINS}


def fit_to_data(space: SpaceConfig, n_train: int) -> SpaceConfig:
    """The space with the entries the study file left to their defaults fitted to a training set
    of ``n_train`` rows; entries the file sets are kept as written (and checked against the data
    by ``config.check_against_data``).

    Batch sizes: the default choices that leave at least two steps per epoch (a batch of more
    than half the rows learns one step an epoch); on a training set too small for any, one batch
    of all its rows.
    """
    if "batch_size" in space.model_fields_set:
        return space
    fitting = [b for b in DEFAULT_SPACE["batch_size"] if b <= n_train // 2]
    if len(fitting) > 1:
        spec: Range | Choices | Fixed | Dropped = Choices(values=tuple(fitting))
    else:
        spec = Fixed(value=fitting[0] if fitting else max(1, int(n_train)))
    fitted = space.model_copy(update={"batch_size": spec})
    fitted.model_fields_set.discard("batch_size")  # still the default, fitted again on other data
    return fitted


DEFAULTS_TRIAL: dict[str, Any] = {
    "n_layers": 1,
    "units": 64,
    "activation": "relu",
    "batch_size": 32,
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "optimizer": "adam",
    "l2": 1e-4,
    "dropout": 0.0,
    "patience": 10,
    "robust_scaling": False,
    "label_smoothing": 0.0,
}
"""A study's first trial, as space values: a small, quick network (one layer of 64 ReLU units,
Adam at a constant 1e-3, batches of 32, L2 1e-4, no dropout), a baseline that the pruner and the
sampler see first. The estimators' defaults, a larger network on a 256-epoch schedule, gained
nothing as a first trial within a study's epoch budget on development data (docs/benchmarks.md);
``patience`` is the estimators' default for early stopping, which every trial uses."""


def _clip(spec: Range, value: float, kind: str) -> int | float:
    value = min(max(value, spec.low), spec.high)
    if spec.step:
        value = spec.low + round((value - spec.low) / spec.step) * spec.step
        value = min(value, spec.high)
    return int(round(value)) if kind == "int" else float(value)


def defaults_trial(space: SpaceConfig) -> dict[str, Any]:
    """:data:`DEFAULTS_TRIAL` as a trial of ``space`` (for ``study.enqueue_trial``): each value
    clipped into its range, or, for choices that do not include it, the first choice; fixed and
    dropped parameters are not drawn, so they are left out."""
    params: dict[str, Any] = {}

    def value_for(name: str, spec: Range | Choices | Fixed | Dropped) -> Any:
        default = DEFAULTS_TRIAL[name]
        if isinstance(spec, Range):
            return _clip(spec, default, DOMAINS[name].kind)
        if isinstance(spec, Choices):
            if default in spec.values:
                return default
            if DOMAINS[name].kind in ("choice", "bool"):
                return spec.values[0]
            if default <= 0:
                return min(spec.values, key=lambda v: abs(float(v) - default))
            return min(
                spec.values,
                key=lambda v: abs(math.log(float(v) / default)) if float(v) > 0 else math.inf,
            )
        return None

    n_layers = value_for("n_layers", space.n_layers)
    if n_layers is not None:
        params["n_layers"] = n_layers
    units = value_for("units", space.units)
    if units is not None and not (
        isinstance(space.n_layers, Dropped) and isinstance(space.units, Dropped)
    ):
        layers = n_layers or undrawn_layers(space)
        params.update({f"units_l{i}": units for i in range(int(layers))})
    for name in SCALAR_PARAMS:
        if (v := value_for(name, getattr(space, name))) is not None:
            params[name] = v
    return params


def undrawn_layers(space: SpaceConfig) -> int:
    """The number of hidden layers when ``n_layers`` is not drawn: its fixed value, else 1."""
    return int(space.n_layers.value) if isinstance(space.n_layers, Fixed) else 1


def check_in_spec(domain_name: str, spec: Range | Choices, value: Any) -> int | float | str:
    """``value`` converted as a draw from ``spec`` would be; else ValueError saying what is allowed.

    ``spec`` is a [space] range or choices of the parameter ``domain_name``. This is for values
    from elsewhere, such as an earlier study's trial (:mod:`tuner.search.warm_start`): Optuna would
    run an enqueued value outside the range with a warning only. A range checks with
    :meth:`Domain.check` and the range's own bounds, and its ``step`` grid.
    """
    domain = DOMAINS[domain_name]
    if isinstance(spec, Choices):
        value = domain.check(value)
        if value not in spec.values:
            raise ValueError(f"{value!r} is not among the choices {spec.describe()}")
        return value
    value = replace(
        domain, low=spec.low, high=spec.high, low_inclusive=True, high_inclusive=True
    ).check(value)
    if spec.step:
        steps = (value - spec.low) / spec.step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            raise ValueError(f"{_num(value)} is not on the grid of {spec.describe()}")
    return value


def default_space() -> SpaceConfig:
    """The course's tuning list (DEFAULT_SPACE) as a SpaceConfig."""
    return SpaceConfig()


def _draw(
    trial: optuna.trial.BaseTrial,
    param: str,
    domain_name: str,
    spec: Range | Choices | Fixed | Dropped,
) -> Any:
    if isinstance(spec, Range):
        if DOMAINS[domain_name].kind == "int":
            step = int(spec.step) if spec.step else 1
            return trial.suggest_int(param, int(spec.low), int(spec.high), step=step, log=spec.log)
        return trial.suggest_float(param, spec.low, spec.high, step=spec.step, log=spec.log)
    if isinstance(spec, Choices):
        return trial.suggest_categorical(param, list(spec.values))
    if isinstance(spec, Fixed):
        trial.set_user_attr(param, spec.value)
        return spec.value
    return None


def suggest_params(
    trial: optuna.trial.BaseTrial, space: SpaceConfig, max_epochs: int
) -> dict[str, Any]:
    """Draw one trial's keyword arguments for MLPClassifier/MLPRegressor.

    Dropped parameters are absent.
    """
    params: dict[str, Any] = {}
    if not (isinstance(space.n_layers, Dropped) and isinstance(space.units, Dropped)):
        n_layers = _draw(trial, "n_layers", "n_layers", space.n_layers) or 1
        sizes = [
            _draw(trial, f"units_l{i}", "units", space.units) or DEFAULT_UNITS
            for i in range(n_layers)
        ]
        params["hidden_layer_sizes"] = tuple(int(s) for s in sizes)
    for name in SCALAR_PARAMS:
        value = _draw(trial, name, name, getattr(space, name))
        if value is not None:
            params[name] = value
    params["max_epochs"] = int(max_epochs)
    return params


def params_from_trial(
    trial: optuna.trial.FrozenTrial, space: SpaceConfig, max_epochs: int
) -> dict[str, Any]:
    """The keyword arguments a finished trial used (e.g. the best trial, to refit it)."""
    from optuna.trial import FixedTrial

    return suggest_params(FixedTrial(trial.params, number=trial.number), space, max_epochs)
