"""The study file: a TOML document validated by pydantic into a StudyConfig.

The schema, with defaults, is documented at the top of ``studies/digits.toml``. Every problem is
reported as a ConfigError whose message has one line per problem:
"<file>: <key>: <what is wrong and what is allowed>".
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from tuner.errors import ConfigError
from tuner.study import metrics
from tuner.study.sections import (
    AUTO_SPLITS,
    AUTO_SPLITS_MAX_ROWS,
    MAX_FITTED_EPOCHS,
    BudgetConfig,
    DataConfig,
    KeyedError,
    ObjectiveConfig,
    PrunerConfig,
    ResultConfig,
    SamplerConfig,
    Section,
    StudyName,
    WarmStartConfig,
)
from tuner.study.space import (
    CLASSIFIER_ONLY,
    Choices,
    Dropped,
    Fixed,
    Range,
    SpaceConfig,
    fit_to_data,
)


class StudyConfig(Section):
    """A whole study file."""

    name: StudyName
    seed: int = Field(default=0, ge=0, lt=2**32)
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
        """'maximize' or 'minimize', from the metric (the first of a multi-objective study)."""
        return metrics.direction(self.metric)

    @property
    def objectives(self) -> list[str]:
        """The study's objectives in order: ``[metric]``, or ``[objective] metrics``."""
        return list(self.objective.metrics or [self.metric])

    @property
    def directions(self) -> list[str]:
        """Each objective's direction: a metric's own, a cost's "minimize".

        See :mod:`tuner.search.pareto`.
        """
        return [
            metrics.direction(name) if name in metrics.METRICS else "minimize"
            for name in self.objectives
        ]

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
                f"{self.objective.metric!r} does not fit a {task} task "
                f"(allowed: {', '.join(allowed)})",
            )
        return self

    @model_validator(mode="after")
    def _space_fits_task(self) -> StudyConfig:
        """A regression study drops the classifier-only parameters (label smoothing) its file
        leaves to the default space, and refuses those it sets."""
        if self.data.task != "regression":
            return self
        for name in CLASSIFIER_ONLY:
            spec = getattr(self.space, name)
            if name in self.space.model_fields_set and not isinstance(spec, Dropped):
                raise KeyedError(
                    f"space.{name}",
                    f"{spec.describe()} applies to classification only; "
                    "remove it or set it to false",
                )
            if not isinstance(spec, Dropped):
                space = self.space.model_copy(update={name: Dropped()})
                space.model_fields_set.discard(name)  # still the default
                object.__setattr__(self, "space", space)
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
                    f"{value} with objective.constraints: the final model would average {value} "
                    "networks, whose latency and size add up past the bounds each trial meets; "
                    "set it to 1 (the default there)",
                )
        if self.result.ensemble != 1 or self.result.seeds != 1:
            result = self.result.model_copy(update={"ensemble": 1, "seeds": 1})
            # Still defaults as far as the file goes.
            result.model_fields_set.difference_update({"ensemble", "seeds"})
            object.__setattr__(self, "result", result)
        return self

    def _check_objectives(self, task: str) -> None:
        """``metrics``: not with ``metric``; its metrics fit the task; no Optuna pruner (they do
        not support multi-objective studies: the README's "Multi-objective studies" says why
        none replaces them). An unset ``[pruner] name`` becomes "none"."""
        names = self.objective.metrics or []
        if "metric" in self.objective.model_fields_set:
            raise KeyedError(
                "objective.metrics",
                "give either metric or metrics, not both (metrics[0] is the study's metric)",
            )
        allowed = metrics.metrics_for_task(task)
        wrong = [n for n in names if n in metrics.METRICS and n not in allowed]
        if wrong:
            raise KeyedError(
                "objective.metrics",
                f"{', '.join(map(repr, wrong))} do(es) not fit a {task} task "
                f"(allowed: {', '.join(allowed)})",
            )
        if "name" not in self.pruner.model_fields_set:
            self.pruner = PrunerConfig(name="none")
        elif self.pruner.name != "none":
            raise KeyedError(
                "pruner.name",
                f"{self.pruner.name!r}: Optuna's pruners do not support a multi-objective study "
                '(objective.metrics); use "none" or leave [pruner] out',
            )
        self.objective.metric = names[0]
        self.objective.model_fields_set.discard("metric")  # still given by metrics alone

    @model_validator(mode="after")
    def _check_warm_start(self) -> StudyConfig:
        if self.warm_start is not None and self.sampler.name == "grid":
            raise KeyedError(
                "warm_start",
                "the grid sampler tries every point of its grid anyway: remove [warm_start] "
                "or pick another sampler",
            )
        return self

    def with_overrides(
        self,
        n_trials: int | None = None,
        timeout: float | None = None,
        seed: int | None = None,
        max_epochs: int | None = None,
    ) -> StudyConfig:
        """A copy with the budget/seed values given replaced (None keeps the file's value)."""
        budget = {"n_trials": n_trials, "timeout": timeout, "max_epochs": max_epochs}
        given = {
            k: v for k, v in self.budget.model_dump().items() if k in self.budget.model_fields_set
        }
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
        defaults: stored with the study (:data:`tuner.study.definition.STUDY_FILE_ATTR`), so that
        ``tuner export NAME`` works without the file; read back by :func:`config_from_settings`,
        the defaults are fitted to the data again."""
        full = self.model_dump(mode="json")
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            part = getattr(self, key)
            out[key] = (
                {k: full[key][k] for k in part.model_fields_set}
                if isinstance(part, BaseModel)
                else full[key]
            )
        return out

    def fitted_to_data(self, n_train: int, n_val: int | None = None) -> StudyConfig:
        """A copy whose default space entries fit a training set of ``n_train`` rows.

        See :func:`tuner.study.space.fit_to_data`; the study file's own entries are kept. With
        ``n_val`` (the validation rows), ``validation_splits = "auto"`` is resolved to a number too.
        """
        update: dict[str, Any] = {"space": fit_to_data(self.space, n_train)}
        if n_val is not None and self.objective.validation_splits == "auto":
            splits = AUTO_SPLITS if n_train + n_val < AUTO_SPLITS_MAX_ROWS else 1
            objective = self.objective.model_copy(update={"validation_splits": splits})
            # Still "auto" as far as the file goes.
            objective.model_fields_set.discard("validation_splits")
            update["objective"] = objective
        if "max_epochs" not in self.budget.model_fields_set:
            # Enough optimiser steps on small data: about 2,000 batches of 32 rows, at most
            # MAX_FITTED_EPOCHS; an epoch is the training rows, or epoch_rows of them.
            epoch = min(n_train, self.budget.epoch_rows or n_train)
            epochs = min(
                MAX_FITTED_EPOCHS, max(self.budget.max_epochs, math.ceil(64_000 / max(1, epoch)))
            )
            budget = self.budget.model_copy(update={"max_epochs": epochs})
            budget.model_fields_set.discard("max_epochs")
            update["budget"] = budget
        fitted = self.model_copy(update=update)
        fitted._path = self._path
        return fitted

    def flat_settings(self) -> dict[str, str | int | float | bool]:
        """Dotted keys to scalar values (None left out), e.g. for MLflow params."""
        flat: dict[str, Any] = {
            "name": self.name,
            "seed": self.seed,
            "task": self.task,
            "direction": self.direction,
        }
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
        raise ConfigError(
            f"{path}: not a study file: it is not UTF-8 text (a TOML file is)"
        ) from None
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
        return (
            f"{err['input']!r} must start with a letter or digit "
            "and use only letters, digits, '_', '.', '-'"
        )
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
            f"{config.path}: space.batch_size: {', '.join(map(str, too_big))} exceed(s) the "
            f"training set ({n_train} rows); use values from 1 to {n_train}"
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
