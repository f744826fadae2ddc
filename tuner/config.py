"""The study file: a TOML document validated by pydantic into a StudyConfig.

The schema, with defaults, is documented at the top of studies/digits.toml. Every problem is reported
as a ConfigError whose message has one line per problem: "<file>: <key>: <what is wrong and what is allowed>".
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import metrics
from .costs import COSTS
from .errors import ConfigError
from .reading import DATA_SUFFIXES, infer_task
from .space import Choices, Fixed, Range, SpaceConfig, fit_to_data

class Bundled(NamedTuple):
    """A data set bundled with scikit-learn: its task and its loader in ``sklearn.datasets``."""

    task: str
    loader: str


#: The data sets a study may name as ``source = "sklearn:<name>"`` (loaded by tuner/data.py).
SKLEARN_DATASETS = {
    "digits": Bundled("classification", "load_digits"),
    "breast_cancer": Bundled("classification", "load_breast_cancer"),
    "wine": Bundled("classification", "load_wine"),
    "iris": Bundled("classification", "load_iris"),
    "diabetes": Bundled("regression", "load_diabetes"),
}
SAMPLER_OPTIONS = {
    "tpe": ("n_startup_trials", "n_ei_candidates", "multivariate", "group", "constant_liar"),
    "random": (),
    "cmaes": ("n_startup_trials", "sigma0", "popsize", "use_separable_cma", "with_margin", "lr_adapt"),
    "qmc": ("qmc_type", "scramble"),
    "grid": ("n_points",),
}
PRUNER_OPTIONS = {
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "percentile": ("percentile", "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "successive_halving": ("min_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count"),
    "hyperband": ("min_resource", "reduction_factor", "bootstrap_count"),
    "none": (),
}


class KeyedError(ValueError):
    """A validation problem that names its own key (used by cross-field checks)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


ColumnNames = list[Annotated[str, Field(min_length=1)]]


class DataConfig(_Section):
    """[data]: where the data comes from, how its columns are read, and how it is split.

    ``task``: inferred from a file's target column when not given (:func:`tuner.reading.infer_task`).
    ``na_values``: extra cell values read as missing (e.g. ``"unknown"``, ``"?"``, ``"-999"``).
    ``drop``: columns left out (identifiers, leaks). ``keep``: columns kept although they look
    like identifiers, which are otherwise left out. ``categorical`` / ``numeric``: columns whose
    type the reader would otherwise infer wrongly (numeric codes that are categories; a numeric
    column whose stray text should be missing values). The column names are checked against the
    data when it is loaded (:func:`tuner.data.load_frame`).
    """

    source: str
    target: str | None = None
    task: Literal["classification", "regression"] | None = None
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    missing: Literal["impute", "error"] = "impute"
    na_values: ColumnNames = Field(default_factory=list)
    drop: ColumnNames = Field(default_factory=list)
    keep: ColumnNames = Field(default_factory=list)
    categorical: ColumnNames = Field(default_factory=list)
    numeric: ColumnNames = Field(default_factory=list)

    @property
    def is_sklearn(self) -> bool:
        return self.source.startswith("sklearn:")

    @property
    def sklearn_name(self) -> str:
        return self.source.removeprefix("sklearn:")

    @field_validator("source")
    @classmethod
    def _check_source(cls, source: str, info: ValidationInfo) -> str:
        if source.startswith("sklearn:"):
            name = source.removeprefix("sklearn:")
            if name not in SKLEARN_DATASETS:
                allowed = ", ".join(f"sklearn:{n}" for n in SKLEARN_DATASETS)
                raise ValueError(f"unknown dataset {source!r} (allowed: {allowed}, or a .csv/.tsv/.parquet path)")
            return source
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / source).expanduser().resolve()
        if path.is_dir():
            inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)[:5]
            hint = f" (data files in it: {', '.join(inside)})" if inside else ""
            raise ValueError(f"{path} is a directory; name a .csv, .tsv or .parquet file{hint}")
        if not path.is_file():
            raise ValueError(f"file not found: {path} (relative paths resolve against the study file's folder)")
        return str(path)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        self._check_columns()
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise KeyedError(
                "data.test_fraction",
                f"validation_fraction + test_fraction must leave at least 10% for training "
                f"(got {self.validation_fraction} + {self.test_fraction})",
            )
        if self.is_sklearn:
            inferred = SKLEARN_DATASETS[self.sklearn_name].task
            if self.target is not None:
                raise KeyedError("data.target", f"{self.source} has its target built in; remove data.target")
            if self.task not in (None, inferred):
                raise KeyedError(
                    "data.task", f"{self.source} is a {inferred} dataset (got task = {self.task!r})"
                )
            self.task = inferred
        else:
            if self.target is None:
                raise KeyedError("data.target", "required for file sources: the name of the target column")
            if self.task is None:
                self.task = infer_task(self.source, self.target, self.na_values)
                self.model_fields_set.discard("task")  # inferred, not set by the file
        return self

    def _check_columns(self) -> None:
        """A column is named at most once across drop / categorical / numeric, in keep at most
        once and not also in drop, never as the target."""
        seen: dict[str, str] = {}
        for key in ("drop", "categorical", "numeric", "keep"):
            names = getattr(self, key)
            for i, column in enumerate(names):
                if column == self.target:
                    raise KeyedError(f"data.{key}", f"{column!r} is the target column")
                clash = key if column in names[:i] else seen.get(column)
                if clash and (key != "keep" or clash in ("keep", "drop")):
                    where = "twice" if clash == key else f"also in data.{clash}"
                    raise KeyedError(f"data.{key}", f"column {column!r} is named {where}")
                seen.setdefault(column, key)


#: ``[objective] validation_splits = "auto"``: AUTO_SPLITS splits when the training + validation
#: rows are fewer than AUTO_SPLITS_MAX_ROWS, else one (tuner/resampling.py).
AUTO_SPLITS = 5
AUTO_SPLITS_MAX_ROWS = 1000
MAX_VALIDATION_SPLITS = 20


class ObjectiveConfig(_Section):
    """[objective]: the validation metric to optimise (default: accuracy or rmse, by task), on
    how many train / validation splits each trial is scored (see tuner/resampling.py; "auto" is
    resolved by :meth:`StudyConfig.fitted_to_data`), and upper bounds on a trial's measured costs
    (``constraints = {latency_ms_row = 0.2, size_kb = 50}``, names from tuner/costs.py ``COSTS``;
    see tuner/requirements.py)."""

    metric: str | None = None
    #: A multi-objective study (tuner/pareto.py): the first is the study's validation metric, the
    #: others validation metrics or cost names; None for a single-objective study.
    metrics: list[str] | None = None
    validation_splits: int | str = "auto"
    constraints: dict[str, float] = Field(default_factory=dict)

    @field_validator("constraints", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> dict[str, float]:
        """One message for every bad entry: unknown cost names, bounds that are not positive numbers."""
        if not isinstance(value, dict):
            raise ValueError(
                f"must be a table of cost = upper bound, e.g. {{latency_ms_row = 0.2}} (got {value!r}; "
                f"costs: {', '.join(COSTS)})"
            )
        problems = []
        for name, bound in value.items():
            if name not in COSTS:
                problems.append(f"unknown cost {name!r}")
            elif isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (0 < bound < math.inf):
                problems.append(f"{name} = {bound!r} is not a positive number")
        if problems:
            raise ValueError(f"{'; '.join(problems)} (costs: {', '.join(COSTS)}; each an upper bound > 0)")
        return {name: float(bound) for name, bound in value.items()}

    @field_validator("validation_splits", mode="before")
    @classmethod
    def _splits(cls, value: Any) -> int | str:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value != "auto" and not (whole and 1 <= value <= MAX_VALIDATION_SPLITS):
            raise ValueError(f"must be \"auto\" or a whole number from 1 to {MAX_VALIDATION_SPLITS}, got {value!r}")
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> list[str] | None:
        """One message for every mistake in ``metrics`` (unknown, repeated, a cost first, too many)."""
        if value is None:  # a single-objective study's settings, dumped and validated again
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"must be a list of names, e.g. [\"accuracy\", \"latency_ms_row\"] (got {value!r})")
        problems = []
        if not 2 <= len(value) <= MAX_OBJECTIVES:
            problems.append(
                f"give 2 to {MAX_OBJECTIVES} names (got {len(value)}); one metric alone is `metric = \"...\"`"
            )
        unknown = [v for v in value if v not in metrics.METRICS and v not in COSTS]
        if unknown:
            problems.append(
                f"unknown {', '.join(map(repr, unknown))} (metrics: {', '.join(metrics.METRICS)}; costs: {', '.join(COSTS)})"
            )
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            problems.append(f"{', '.join(map(repr, repeated))} named twice")
        if value and value[0] in COSTS:
            problems.append(f"the first must be a validation metric, not the cost {value[0]!r} (it is the study's metric)")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("metric")
    @classmethod
    def _known(cls, metric: str | None) -> str | None:
        if metric is not None and metric not in metrics.METRICS:
            raise ValueError(f"unknown metric {metric!r} (allowed: {', '.join(metrics.METRICS)})")
        return metric


#: The most objectives a multi-objective study may have (a front over more is hard to read or fill).
MAX_OBJECTIVES = 3


class BudgetConfig(_Section):
    """[budget]: how many trials, how long, and how many epochs per trial."""

    n_trials: int = Field(40, ge=1)
    timeout: float | None = Field(None, gt=0)
    max_epochs: int = Field(50, ge=1)


class SamplerConfig(_Section):
    """[sampler]: the Optuna sampler and its options (checked per sampler name)."""

    name: Literal["tpe", "random", "cmaes", "qmc", "grid"] = "tpe"
    n_startup_trials: int | None = Field(None, ge=0)
    n_ei_candidates: int | None = Field(None, ge=1)
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None
    sigma0: float | None = Field(None, gt=0)
    popsize: int | None = Field(None, ge=1)
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None
    qmc_type: Literal["sobol", "halton"] | None = None
    scramble: bool | None = None
    n_points: int | None = Field(None, ge=2)

    def options(self) -> dict[str, Any]:
        """The options given in the file (not None), without the name."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        _check_options("sampler", self.name, self.options(), SAMPLER_OPTIONS)
        return self


class PrunerConfig(_Section):
    """[pruner]: the Optuna pruner and its options (checked per pruner name)."""

    name: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int | None = Field(None, ge=0)
    n_warmup_steps: int | None = Field(None, ge=0)
    interval_steps: int | None = Field(None, ge=1)
    n_min_trials: int | None = Field(None, ge=1)
    percentile: float | None = Field(None, ge=0, le=100)
    min_resource: int | None = Field(None, ge=1)
    reduction_factor: int | None = Field(None, ge=2)
    min_early_stopping_rate: int | None = Field(None, ge=0)
    bootstrap_count: int | None = Field(None, ge=0)

    def options(self) -> dict[str, Any]:
        """The options given in the file (not None), without the name."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    @model_validator(mode="after")
    def _check(self) -> PrunerConfig:
        _check_options("pruner", self.name, self.options(), PRUNER_OPTIONS)
        return self


def _check_options(section: str, name: str, given: dict[str, Any], table: dict[str, tuple[str, ...]]) -> None:
    for key in given:
        if key not in table[name]:
            allowed = ", ".join(table[name]) or "none"
            raise KeyedError(f"{section}.{key}", f"not an option of the {name!r} {section} (options: {allowed})")


#: The most epochs a study's default epoch budget grows to on a small training set.
MAX_FITTED_EPOCHS = 200


class ResultConfig(_Section):
    """[result]: what a study hands back besides its best trial.

    ``start_from_defaults``: the estimator's own defaults (clipped into the space) are the first
    trial, so a study never ends worse on validation than no tuning. ``refit``: the final model
    is trained again on training + validation rows for the epochs its trial needed, as
    ``GridSearchCV(refit=True)`` does. ``ensemble``: up to this many trials, chosen greedily on
    validation (Caruana et al., 2004), are averaged into the final model; 1 keeps the best trial
    alone. ``seeds``: with ``refit``, each chosen trial is refit this many times, its trial's seed
    first, and the copies averaged (without refit the members are the trials' own models): a
    network's test score varies from seed to seed about as much as the top trials differ, and
    averaging copies removes that variance (tuner/final.py). Under ``[objective] constraints``
    and in a multi-objective study both are 1 (see :meth:`StudyConfig._one_network`).
    """

    start_from_defaults: bool = True
    refit: bool = True
    ensemble: int = Field(5, ge=1, le=50)
    seeds: int = Field(3, ge=1, le=20)


#: A study name as the study file's ``name`` allows it (also the names ``[warm_start] from`` lists).
STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
StudyName = Annotated[str, Field(pattern=STUDY_NAME, max_length=100)]


class WarmStartConfig(_Section):
    """[warm_start]: a new study starts with the best trials of earlier studies (tuner/warm_start.py).

    ``from`` (``from_`` in Python): the source studies' names; ``count``: the best completed
    trials taken from each; ``storage``: the Optuna storage URL the sources are in (default: the
    study's own storage). Applied once, when the study is created.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: list[StudyName] = Field(alias="from", min_length=1)
    count: int = Field(5, ge=1, le=100)
    storage: str | None = Field(None, min_length=1)

    @field_validator("from_")
    @classmethod
    def _once(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(map(repr, repeated))} more than once")
        return names


class StudyConfig(_Section):
    """A whole study file."""

    name: StudyName
    seed: int = Field(0, ge=0, lt=2**32)
    data: DataConfig
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: SpaceConfig = Field(default_factory=SpaceConfig)
    result: ResultConfig = Field(default_factory=ResultConfig)
    warm_start: WarmStartConfig | None = None

    _path: str = PrivateAttr(default="<study>")

    @property
    def task(self) -> str:
        """'classification' or 'regression': the study file's, else inferred at validation (the
        bundled data set's task, or from a file's target column)."""
        assert self.data.task is not None
        return self.data.task

    @property
    def metric(self) -> str:
        """The metric optimised (the task's default when the file names none)."""
        assert self.objective.metric is not None
        return self.objective.metric

    @property
    def direction(self) -> str:
        """'maximize' or 'minimize', derived from the metric (the first of a multi-objective study)."""
        return metrics.direction(self.metric)

    @property
    def objectives(self) -> list[str]:
        """The study's objectives in order: ``[metric]``, or ``[objective] metrics``."""
        return list(self.objective.metrics or [self.metric])

    @property
    def directions(self) -> list[str]:
        """Each objective's direction: a metric's own, a cost's "minimize" (tuner/pareto.py)."""
        return [metrics.direction(name) if name in metrics.METRICS else "minimize" for name in self.objectives]

    @property
    def multi_objective(self) -> bool:
        """Whether the study has several objectives (an Optuna multi-objective study)."""
        return self.objective.metrics is not None

    @property
    def path(self) -> str:
        """The study file this config was loaded from (for messages)."""
        return self._path

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        task = self.data.task
        assert task is not None
        if self.objective.metrics is not None:
            self._check_objectives(task)
        if self.objective.metric is None:
            self.objective.metric = metrics.DEFAULT_METRIC[task]
        allowed = metrics.metrics_for_task(task)
        if self.objective.metric not in allowed:
            raise KeyedError(
                "objective.metric",
                f"{self.objective.metric!r} does not fit a {task} task (allowed: {', '.join(allowed)})",
            )
        return self

    @model_validator(mode="after")
    def _one_network(self) -> StudyConfig:
        """Under ``[objective] constraints`` and in a multi-objective study the final model is one
        network: ``[result] ensemble`` and ``seeds`` are 1. An average of N networks takes about N
        times one network's latency and size, so an ensemble of trials that each meet the bounds
        would not meet them itself, and would not be the point of the front it was chosen as.
        Under constraints a file that sets either above 1 is refused; a multi-objective study
        uses 1 whatever the file says (the README's "Multi-objective studies")."""
        if not (self.objective.constraints or self.multi_objective):
            return self
        for key in ("ensemble", "seeds") if self.objective.constraints else ():
            value = getattr(self.result, key)
            if key in self.result.model_fields_set and value > 1:
                raise KeyedError(
                    f"result.{key}",
                    f"{value} with objective.constraints: the final model would average {value} networks, whose "
                    "latency and size add up past the bounds each trial meets; set it to 1 (the default there)",
                )
        if self.result.ensemble != 1 or self.result.seeds != 1:
            result = self.result.model_copy(update={"ensemble": 1, "seeds": 1})
            result.model_fields_set.difference_update({"ensemble", "seeds"})  # still defaults for the file
            object.__setattr__(self, "result", result)
        return self

    def _check_objectives(self, task: str) -> None:
        """``metrics``: not with ``metric``; its metrics fit the task; no Optuna pruner (they do
        not support multi-objective studies: the README's "Multi-objective studies" says why
        none replaces them). An unset ``[pruner] name`` becomes "none"."""
        names = self.objective.metrics or []
        if "metric" in self.objective.model_fields_set:
            raise KeyedError("objective.metrics", "give either metric or metrics, not both (metrics[0] is the study's metric)")
        allowed = metrics.metrics_for_task(task)
        wrong = [n for n in names if n in metrics.METRICS and n not in allowed]
        if wrong:
            raise KeyedError(
                "objective.metrics", f"{', '.join(map(repr, wrong))} do(es) not fit a {task} task (allowed: {', '.join(allowed)})"
            )
        if "name" not in self.pruner.model_fields_set:
            self.pruner = PrunerConfig(name="none")
        elif self.pruner.name != "none":
            raise KeyedError(
                "pruner.name",
                f"{self.pruner.name!r}: Optuna's pruners do not support a multi-objective study (objective.metrics); "
                "use \"none\" or leave [pruner] out",
            )
        self.objective.metric = names[0]
        self.objective.model_fields_set.discard("metric")  # still given by metrics alone

    @model_validator(mode="after")
    def _check_warm_start(self) -> StudyConfig:
        if self.warm_start is not None and self.sampler.name == "grid":
            raise KeyedError(
                "warm_start", "the grid sampler tries every point of its grid anyway: remove [warm_start] or pick another sampler"
            )
        return self

    def with_overrides(
        self,
        n_trials: int | None = None,
        timeout: float | None = None,
        seed: int | None = None,
        max_epochs: int | None = None,
    ) -> StudyConfig:
        """A copy with budget/seed values replaced by the ones given (None keeps the file's value)."""
        budget = {"n_trials": n_trials, "timeout": timeout, "max_epochs": max_epochs}
        given = {k: v for k, v in self.budget.model_dump().items() if k in self.budget.model_fields_set}
        budget = given | {k: v for k, v in budget.items() if v is not None}
        raw = self.model_dump() | {"budget": budget}
        if self.multi_objective:
            raw["objective"].pop("metric")  # metrics[0]
        # Only the [space] entries the file set: the others stay defaults that fit the data.
        raw["space"] = {k: v for k, v in raw["space"].items() if k in self.space.model_fields_set}
        if seed is not None:
            raw["seed"] = seed
        return _validate(raw, self._path, base_dir=None)

    def file_settings(self) -> dict[str, Any]:
        """The settings the study file set, JSON-safe (data paths absolute), and nothing it left to
        defaults: stored with the study (:data:`tuner.definition.STUDY_FILE_ATTR`), so that
        ``tuner export NAME`` works without the file; read back by :func:`config_from_settings`,
        the defaults are fitted to the data again."""
        full = self.model_dump(mode="json")
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            part = getattr(self, key)
            out[key] = {k: full[key][k] for k in part.model_fields_set} if isinstance(part, BaseModel) else full[key]
        return out

    def fitted_to_data(self, n_train: int, n_val: int | None = None) -> StudyConfig:
        """A copy whose default space entries fit a training set of ``n_train`` rows (see
        :func:`tuner.space.fit_to_data`); the study file's own entries are kept. With ``n_val``
        (the validation rows), ``validation_splits = "auto"`` is resolved to a number too."""
        update: dict[str, Any] = {"space": fit_to_data(self.space, n_train)}
        if n_val is not None and self.objective.validation_splits == "auto":
            splits = AUTO_SPLITS if n_train + n_val < AUTO_SPLITS_MAX_ROWS else 1
            objective = self.objective.model_copy(update={"validation_splits": splits})
            objective.model_fields_set.discard("validation_splits")  # still "auto" as far as the file goes
            update["objective"] = objective
        if "max_epochs" not in self.budget.model_fields_set:
            # Enough optimiser steps on small data: about 2,000 batches of 32 rows, up to 200 epochs.
            epochs = min(MAX_FITTED_EPOCHS, max(self.budget.max_epochs, math.ceil(64_000 / max(1, n_train))))
            budget = self.budget.model_copy(update={"max_epochs": epochs})
            budget.model_fields_set.discard("max_epochs")
            update["budget"] = budget
        fitted = self.model_copy(update=update)
        fitted._path = self._path
        return fitted

    def flat_settings(self) -> dict[str, str | int | float | bool]:
        """Dotted keys to scalar values (None left out), e.g. for MLflow params."""
        flat: dict[str, Any] = {"name": self.name, "seed": self.seed, "task": self.task, "direction": self.direction}
        for section in ("data", "objective", "budget", "result"):
            for key, value in getattr(self, section).model_dump().items():
                if isinstance(value, list):  # data.drop and the like: text, left out when empty
                    value = ", ".join(map(str, value)) or None
                elif isinstance(value, dict):  # objective.constraints: text, left out when empty
                    value = ", ".join(f"{k} <= {v:g}" for k, v in value.items()) or None
                if value is not None:
                    flat[f"{section}.{key}"] = value
        for section in ("sampler", "pruner"):
            part = getattr(self, section)
            flat[f"{section}.name"] = part.name
            flat.update({f"{section}.{k}": v for k, v in part.options().items()})
        flat.update({f"space.{k}": v for k, v in self.space.describe().items()})
        return flat


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study file; ConfigError with one line per problem otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: study file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a study file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a study file: it is not UTF-8 text (a TOML file is)") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read study file: {exc.strerror or exc}") from None
    return _validate(raw, str(path), base_dir=path.resolve().parent)


def config_from_settings(settings: dict[str, Any], origin: str) -> StudyConfig:
    """A StudyConfig from :meth:`StudyConfig.file_settings` (``origin`` names where they were
    stored, for messages)."""
    return _validate(settings, origin, base_dir=None)


def _validate(raw: dict[str, Any], path: str, base_dir: Path | None) -> StudyConfig:
    context = {"base_dir": base_dir} if base_dir is not None else {}
    try:
        config = StudyConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        lines = [f"{path}: {problem}" for problem in _problems(exc)]
        raise ConfigError("\n".join(lines)) from None
    config._path = path
    return config


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
        key = cause.key if isinstance(cause, KeyedError) else ".".join(loc)
        problems.append(f"{key}: {_describe(err, loc)}")
    return list(dict.fromkeys(problems))


def _describe(err: Any, loc: list[str]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        return f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        return f"{err['input']!r} is not allowed (allowed: {ctx.get('expected')})"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} must start with a letter or digit and use only letters, digits, '_', '.', '-'"
    if kind == "model_type" or kind == "dict_type":
        return f"must be a table (got {err['input']!r})"
    msg = err["msg"][0].lower() + err["msg"][1:]
    return f"{msg} (got {err['input']!r})"


def _allowed_keys(loc: list[str]) -> list[str]:
    model: Any = StudyConfig
    for part in loc:
        field = model.model_fields.get(part)
        model = field.annotation if field else None
        # An optional table (``WarmStartConfig | None``): its model.
        model = next((t for t in getattr(model, "__args__", ()) if t is not type(None)), model)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
    return [field.alias or name for name, field in model.model_fields.items()]


def batch_size_values(config: StudyConfig) -> list[int]:
    """The batch sizes a study can draw (the top of a range), for checks against the data."""
    spec = config.space.batch_size
    if isinstance(spec, Range):
        return [int(spec.high)]
    if isinstance(spec, Choices):
        return [int(v) for v in spec.values]
    if isinstance(spec, Fixed):
        return [int(spec.value)]
    return []


def check_against_data(config: StudyConfig, n_train: int, n_classes: int | None = None) -> None:
    """Checks that need the data: batch sizes within the training set (the study file's own
    values; defaults are fitted to the data), binary-only metrics."""
    config = config.fitted_to_data(n_train)
    too_big = [v for v in batch_size_values(config) if v > n_train]
    if too_big:
        raise ConfigError(
            f"{config.path}: space.batch_size: {', '.join(map(str, too_big))} exceed(s) the training set "
            f"({n_train} rows); use values from 1 to {n_train}"
        )
    if config.task == "classification" and n_classes is not None:
        allowed = metrics.metrics_for_task(config.task, n_classes)
        key = "objective.metrics" if config.multi_objective else "objective.metric"
        for name in config.objectives:
            if name in metrics.METRICS and name not in allowed:
                raise ConfigError(
                    f"{config.path}: {key}: {name!r} needs a binary target but this one has "
                    f"{n_classes} classes (allowed: {', '.join(allowed)})"
                )
