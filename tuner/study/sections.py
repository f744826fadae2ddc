"""The tables of a study file, each a pydantic model.

The tables are ``[data]``, ``[objective]``, ``[budget]``, ``[sampler]``, ``[pruner]``, ``[result]``
and ``[warm_start]``; :class:`tuner.study.config.StudyConfig` puts them together. A wrong value
raises a ValueError naming what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuner.data.reading import DATA_SUFFIXES, Task, infer_task
from tuner.search.costs import COSTS
from tuner.study import metrics


class Bundled(NamedTuple):
    """A data set bundled with scikit-learn: its task and its loader in ``sklearn.datasets``."""

    task: Task
    loader: str


#: The data sets a study may name as ``source = "sklearn:<name>"`` (loaded by
#: :mod:`tuner.data.loading`).
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
    "cmaes": (
        "n_startup_trials",
        "sigma0",
        "popsize",
        "use_separable_cma",
        "with_margin",
        "lr_adapt",
    ),
    "qmc": ("qmc_type", "scramble"),
    "grid": ("n_points",),
}
PRUNER_OPTIONS = {
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "percentile": (
        "percentile",
        "n_startup_trials",
        "n_warmup_steps",
        "interval_steps",
        "n_min_trials",
    ),
    "successive_halving": (
        "min_resource",
        "reduction_factor",
        "min_early_stopping_rate",
        "bootstrap_count",
    ),
    "hyperband": ("min_resource", "reduction_factor", "bootstrap_count"),
    "none": (),
}


class KeyedError(ValueError):
    """A validation problem that names its own key (used by cross-field checks)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


ColumnNames = list[Annotated[str, Field(min_length=1)]]


class DataConfig(Section):
    """[data]: where the data comes from, how its columns are read, and how it is split.

    ``task``: inferred from a file's target column when not given
    (:func:`tuner.data.reading.infer_task`). ``na_values``: extra cell values read as missing (e.g.
    ``"unknown"``, ``"?"``, ``"-999"``). ``drop``: columns left out (identifiers, leaks). ``keep``:
    columns kept although they look like identifiers, which are otherwise left out. ``categorical``
    / ``numeric``: columns whose type the reader would otherwise infer wrongly (numeric codes that
    are categories; a numeric column whose stray text should be missing values). The column names
    are checked against the data when it is loaded (:func:`tuner.data.loading.load_frame`).
    """

    source: str
    target: str | None = None
    task: Task | None = None
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
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
                raise ValueError(
                    f"unknown dataset {source!r} (allowed: {allowed}, or a .csv/.tsv/.parquet path)"
                )
            return source
        base = Path((info.context or {}).get("base_dir", "."))
        path = (base / source).expanduser().resolve()
        if path.is_dir():
            inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in DATA_SUFFIXES)[:5]
            hint = f" (data files in it: {', '.join(inside)})" if inside else ""
            raise ValueError(f"{path} is a directory; name a .csv, .tsv or .parquet file{hint}")
        if not path.is_file():
            raise ValueError(
                f"file not found: {path} (relative paths resolve against the study file's folder)"
            )
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
                raise KeyedError(
                    "data.target", f"{self.source} has its target built in; remove data.target"
                )
            if self.task not in (None, inferred):
                raise KeyedError(
                    "data.task", f"{self.source} is a {inferred} dataset (got task = {self.task!r})"
                )
            self.task = inferred
        else:
            if self.target is None:
                raise KeyedError(
                    "data.target", "required for file sources: the name of the target column"
                )
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
#: rows are fewer than AUTO_SPLITS_MAX_ROWS, else one (:mod:`tuner.search.resampling`).
AUTO_SPLITS = 5
AUTO_SPLITS_MAX_ROWS = 1000
MAX_VALIDATION_SPLITS = 20


class ObjectiveConfig(Section):
    """[objective]: what a trial is scored by, on how many splits, and bounds on its costs.

    ``metric``: the validation metric to optimise (default: accuracy or rmse, by task).
    ``validation_splits``: on how many train / validation splits each trial is scored (see
    :mod:`tuner.search.resampling`; "auto" is resolved by :meth:`StudyConfig.fitted_to_data`).
    ``constraints``: upper bounds on a trial's measured costs
    (``constraints = {latency_ms_row = 0.2, size_kb = 50}``, names from
    :data:`tuner.search.costs.COSTS`; see :mod:`tuner.search.constraints`).
    """

    metric: str | None = None
    #: A multi-objective study (:mod:`tuner.search.pareto`): the first is the study's validation
    #: metric, the others validation metrics or cost names; None for a single-objective study.
    metrics: list[str] | None = None
    validation_splits: int | str = "auto"
    constraints: dict[str, float] = Field(default_factory=dict)

    @field_validator("constraints", mode="before")
    @classmethod
    def _bounds(cls, value: Any) -> dict[str, float]:
        """One message for every bad entry: unknown cost names, bounds that are not positive."""
        if not isinstance(value, dict):
            raise ValueError(
                "must be a table of cost = upper bound, e.g. {latency_ms_row = 0.2} "
                f"(got {value!r}; costs: {', '.join(COSTS)})"
            )
        problems = []
        for name, bound in value.items():
            if name not in COSTS:
                problems.append(f"unknown cost {name!r}")
            elif (
                isinstance(bound, bool)
                or not isinstance(bound, (int, float))
                or not (0 < bound < math.inf)
            ):
                problems.append(f"{name} = {bound!r} is not a positive number")
        if problems:
            raise ValueError(
                f"{'; '.join(problems)} (costs: {', '.join(COSTS)}; each an upper bound > 0)"
            )
        return {name: float(bound) for name, bound in value.items()}

    @field_validator("validation_splits", mode="before")
    @classmethod
    def _splits(cls, value: Any) -> int | str:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value != "auto" and not (whole and 1 <= value <= MAX_VALIDATION_SPLITS):
            raise ValueError(
                f'must be "auto" or a whole number from 1 to {MAX_VALIDATION_SPLITS}, got {value!r}'
            )
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> list[str] | None:
        """One message for every mistake in ``metrics``: unknown, repeated, cost first, too many."""
        if value is None:  # a single-objective study's settings, dumped and validated again
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(
                f'must be a list of names, e.g. ["accuracy", "latency_ms_row"] (got {value!r})'
            )
        problems = []
        if not 2 <= len(value) <= MAX_OBJECTIVES:
            problems.append(
                f"give 2 to {MAX_OBJECTIVES} names (got {len(value)}); "
                'one metric alone is `metric = "..."`'
            )
        unknown = [v for v in value if v not in metrics.METRICS and v not in COSTS]
        if unknown:
            problems.append(
                f"unknown {', '.join(map(repr, unknown))} (metrics: "
                f"{', '.join(metrics.METRICS)}; costs: {', '.join(COSTS)})"
            )
        repeated = sorted({v for v in value if value.count(v) > 1})
        if repeated:
            problems.append(f"{', '.join(map(repr, repeated))} named twice")
        if value and value[0] in COSTS:
            problems.append(
                f"the first must be a validation metric, not the cost {value[0]!r} "
                "(it is the study's metric)"
            )
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


class BudgetConfig(Section):
    """[budget]: how many trials, how long, and how many epochs per trial.

    ``epoch_rows``: the training rows of one epoch (the estimators' ``epoch_rows``); None is one
    pass over the training split. ``max_epochs``, the pruner's steps, the learning-rate schedules
    and ``patience`` all count these epochs, so on a large training split a trial is reported,
    judged by the pruner and early-stopped several times a pass.
    """

    n_trials: int = Field(default=40, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    max_epochs: int = Field(default=50, ge=1)
    epoch_rows: int | None = Field(default=None, ge=1)


class SamplerConfig(Section):
    """[sampler]: the Optuna sampler and its options (checked per sampler name)."""

    name: Literal["tpe", "random", "cmaes", "qmc", "grid"] = "tpe"
    n_startup_trials: int | None = Field(default=None, ge=0)
    n_ei_candidates: int | None = Field(default=None, ge=1)
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None
    sigma0: float | None = Field(default=None, gt=0)
    popsize: int | None = Field(default=None, ge=1)
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None
    qmc_type: Literal["sobol", "halton"] | None = None
    scramble: bool | None = None
    n_points: int | None = Field(default=None, ge=2)

    def options(self) -> dict[str, Any]:
        """The options given in the file (not None), without the name."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        _check_options("sampler", self.name, self.options(), SAMPLER_OPTIONS)
        return self


class PrunerConfig(Section):
    """[pruner]: the Optuna pruner and its options (checked per pruner name)."""

    name: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int | None = Field(default=None, ge=0)
    n_warmup_steps: int | None = Field(default=None, ge=0)
    interval_steps: int | None = Field(default=None, ge=1)
    n_min_trials: int | None = Field(default=None, ge=1)
    percentile: float | None = Field(default=None, ge=0, le=100)
    min_resource: int | None = Field(default=None, ge=1)
    reduction_factor: int | None = Field(default=None, ge=2)
    min_early_stopping_rate: int | None = Field(default=None, ge=0)
    bootstrap_count: int | None = Field(default=None, ge=0)

    def options(self) -> dict[str, Any]:
        """The options given in the file (not None), without the name."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    @model_validator(mode="after")
    def _check(self) -> PrunerConfig:
        _check_options("pruner", self.name, self.options(), PRUNER_OPTIONS)
        return self


def _check_options(
    section: str, name: str, given: dict[str, Any], table: dict[str, tuple[str, ...]]
) -> None:
    for key in given:
        if key not in table[name]:
            allowed = ", ".join(table[name]) or "none"
            raise KeyedError(
                f"{section}.{key}", f"not an option of the {name!r} {section} (options: {allowed})"
            )


#: The most epochs a study's default epoch budget grows to on a small training set.
MAX_FITTED_EPOCHS = 200


class ResultConfig(Section):
    """[result]: what a study hands back besides its best trial.

    ``start_from_defaults``: a small baseline network (:data:`tuner.study.space.DEFAULTS_TRIAL`,
    clipped into the space) is the first trial. ``refit``: the final model
    is trained again on training + validation rows for the epochs its trial needed, as
    ``GridSearchCV(refit=True)`` does. ``ensemble``: up to this many trials, chosen greedily on
    validation (Caruana et al., 2004), are averaged into the final model; 1 keeps the best trial
    alone. ``seeds``: with ``refit``, each chosen trial is refit this many times, its trial's seed
    first, and the copies averaged (without refit the members are the trials' own models): a
    network's test score varies from seed to seed about as much as the top trials differ, and
    averaging copies removes that variance (:mod:`tuner.result.final`). Under ``[objective]
    constraints`` and in a multi-objective study both are 1 (see :meth:`StudyConfig._one_network`).
    ``defaults_candidate``: the estimator's defaults are one more candidate of the selection,
    trained as a member would be when picked (:mod:`tuner.result.final`); ``"auto"`` when their
    fit costs at most what the trials cost together.
    """

    start_from_defaults: bool = True
    refit: bool = True
    ensemble: int = Field(default=5, ge=1, le=50)
    seeds: int = Field(default=3, ge=1, le=20)
    defaults_candidate: bool | Literal["auto"] = "auto"


#: A study name as the study file's ``name`` allows it (also the names ``[warm_start] from`` lists).
STUDY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
StudyName = Annotated[str, Field(pattern=STUDY_NAME, max_length=100)]


class WarmStartConfig(Section):
    """[warm_start]: a new study starts with the best trials of earlier studies.

    See :mod:`tuner.search.warm_start`.

    ``from`` (``from_`` in Python): the source studies' names; ``count``: the best completed
    trials taken from each; ``storage``: the Optuna storage URL the sources are in (default: the
    study's own storage). Applied once, when the study is created.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: list[StudyName] = Field(alias="from", min_length=1)
    count: int = Field(default=5, ge=1, le=100)
    storage: str | None = Field(default=None, min_length=1)

    @field_validator("from_")
    @classmethod
    def _once(cls, names: list[str]) -> list[str]:
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names {', '.join(map(repr, repeated))} more than once")
        return names
