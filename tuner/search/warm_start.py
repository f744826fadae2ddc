"""Warm start: a new study's first trials are the best trials of earlier studies.

A study file's ``[warm_start]`` table (``from = ["digits"]``, ``count = 5``, optional ``storage``)
makes a new study begin where earlier ones ended: the ``count`` best completed trials of each source
study (by the source's own direction and constraints,
:func:`tuner.search.constraints.ranked_trials`; a multi-objective source gives its Pareto front,
earliest first) are enqueued, so that they run first and the sampler learns from them at once,
instead of spending its start-up trials finding that region again.

Filtered to the current space (:func:`candidates`): a parameter the current space does not draw
(fixed, dropped, or a layer beyond its ``n_layers``) is dropped from the trial; a trial with a value
the current space cannot draw (outside a range, not among the choices, off a step grid:
:func:`tuner.study.space.check_in_spec`, since Optuna would run it with a warning only) is skipped,
not replaced by the next best: the user asked for the sources' best, not for weaker trials that
happen to fit. A value the source fixed (a trial user attribute, :mod:`tuner.study.space`) is taken
as the source's configuration too; a parameter the source did not have is left to the sampler.

Once per study: only when this run creates the study. The sources are read before the study
exists (:func:`read_sources`), so a missing source is one error line and leaves no study behind.
The trials are enqueued under the study's budget lock, and the study user attribute
:data:`WARM_START_ATTR` records it: a resume, another worker, or a worker that raced this one to
create the study sees it and enqueues nothing again.

Order: after the defaults trial (``[result] start_from_defaults``): it is one trial, and it keeps
that setting's promise (the study never ends worse on validation than no tuning) whatever the
budget or timeout; a warm trial equal to it is not queued twice. The enqueued trials are capped
at the study's budget.

Not part of the study's definition (:mod:`tuner.study.definition`): like the sampler, it only
decides which trials run first; every trial is still trained and scored by the study's own settings,
so their values stay comparable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import optuna

from tuner.errors import TunerError
from tuner.search.constraints import ranked_trials
from tuner.storage.storages import load_existing_study, open_storage
from tuner.study.config import StudyConfig
from tuner.study.space import SpaceConfig, check_in_spec, suggest_params
from tuner.urls import redact_url

logger = logging.getLogger(__name__)

#: Study user attribute: what the warm start enqueued, one entry per source (set once).
WARM_START_ATTR = "warm_start"
#: Trial user attribute of an enqueued trial: the source trial it repeats, ``"<study>#<number>"``.
TRIAL_ATTR = "warm_start_from"
#: Parent run tags: the sources (``name (storage): N enqueued, M skipped``), the trials enqueued.
TAG_FROM = "tuner.warm_start_from"
TAG_ENQUEUED = "tuner.warm_start_enqueued"
#: Reasons shown per source line before "and N more".
SHOWN_REASONS = 3

Notify = Callable[[str], None]


@dataclass
class Source:
    """One source study's trials, filtered to the current space."""

    name: str
    #: Where it is, without a password.
    storage: str
    #: How many best trials were taken (``count``, or fewer when it has fewer).
    taken: int
    #: ``(params, "<study>#<number>")`` to enqueue, best first.
    trials: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    #: Why the others were skipped, one reason per trial.
    skipped: list[str] = field(default_factory=list)
    #: Source parameters the current space does not draw.
    dropped: set[str] = field(default_factory=set)


class _Outside(ValueError):
    """A source value the current space cannot draw."""


class _Probe:
    """Stands in for an Optuna trial in :func:`tuner.study.space.suggest_params`, so that exactly
    the parameters the current space draws are asked for: each draw is answered with the source's
    value, checked against the space, or (the source has none) with a stand-in that is not
    enqueued (a range's high, the largest choice: so that a missing ``n_layers`` still asks for
    every layer's units)."""

    def __init__(self, values: Mapping[str, Any], space: SpaceConfig) -> None:
        self.values, self.space = values, space
        self.params: dict[str, Any] = {}

    def _take(self, name: str, stand_in: Any) -> Any:
        if name not in self.values:
            return stand_in
        domain = "units" if name.startswith("units_l") else name
        try:
            value = check_in_spec(domain, getattr(self.space, domain), self.values[name])
        except ValueError as exc:
            raise _Outside(f"{name} {exc}") from None
        self.params[name] = value
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> Any:
        return self._take(name, high)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> Any:
        return self._take(name, high)

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._take(name, max(choices))

    def set_user_attr(self, key: str, value: Any) -> None:  # a value the current space fixes
        pass


def best_trials(source: optuna.Study, count: int) -> list[optuna.trial.FrozenTrial]:
    """The ``count`` best completed trials of ``source``: by its direction among those meeting
    its constraints; for a multi-objective study, its Pareto front, earliest first."""
    if len(source.directions) > 1:
        return sorted(source.best_trials, key=lambda t: t.number)[:count]
    return ranked_trials(source)[:count]


def candidates(
    source: optuna.Study, count: int, space: SpaceConfig, max_epochs: int, shown: str
) -> Source:
    """``source``'s best trials as trials of ``space`` (see the module's docstring);
    ``shown`` is where the source is, for messages."""
    taken = best_trials(source, count)
    out = Source(source.study_name, shown, len(taken))
    for trial in taken:
        origin = f"{source.study_name}#{trial.number}"
        probe = _Probe({**trial.user_attrs, **trial.params}, space)
        try:
            # The probe answers the suggest_* calls suggest_params makes of a trial.
            suggest_params(cast("optuna.Trial", probe), space, max_epochs)
        except _Outside as exc:
            out.skipped.append(f"trial {trial.number}: {exc}")
            continue
        out.dropped |= set(trial.params) - set(probe.params)
        out.trials.append((probe.params, origin))
    return out


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def read_sources(
    config: StudyConfig, storage: optuna.storages.BaseStorage, storage_url: str | None
) -> list[Source] | None:
    """The sources' trials for a study this run is about to create; None when the study file
    has no ``[warm_start]`` or the study exists already. Called before the study is created: a
    source missing from its storage (or a storage that cannot be opened) is a TunerError of one
    line naming it and the storage (without a password), and no study is left behind."""
    settings = config.warm_start
    if settings is None or study_exists(storage, config.name):
        return None
    url = settings.storage or storage_url
    shown = redact_url(url) if url else "the study's storage"
    source_storage = storage
    if settings.storage is not None and settings.storage != storage_url:
        try:
            source_storage = open_storage(settings.storage, read_only=True)
        except TunerError as exc:
            raise TunerError(f"{config.path}: warm_start.storage: {exc}") from None
    sources = []
    for name in settings.from_:
        try:
            study = load_existing_study(name, source_storage, shown)
        except TunerError as exc:
            raise TunerError(f"{config.path}: warm_start.from: {exc}") from None
        sources.append(
            candidates(study, settings.count, config.space, config.budget.max_epochs, shown)
        )
    return sources


def enqueue_once(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    config: StudyConfig,
    sources: list[Source] | None,
    queued: list[dict[str, Any]],
    notify: Notify | None = None,
) -> None:
    """Enqueue the ``sources``' trials (:func:`read_sources`) in the new ``study`` after the
    trials ``queued`` before them (the defaults trial), once per study (see the module's
    docstring); tell ``notify`` (default: this module's logger) one line per source. With
    ``sources`` None (the study existed), a study that has run trials without a warm start is
    told that ``[warm_start]`` applies only to a new study."""
    notify = notify or logger.info
    if config.warm_start is None:
        return
    if sources is None:
        if WARM_START_ATTR not in study.user_attrs and any(
            t.state.is_finished() for t in study.get_trials(deepcopy=False)
        ):
            notify(
                f"warm start: study {study.study_name!r} already has trials, "
                "and [warm_start] applies only when a study is created: "
                "give the study a new name to start it from the sources' best trials"
            )
        return
    queued = list(queued)
    n_trials = config.budget.n_trials
    record = []
    with _held(storage, study):
        if WARM_START_ATTR in study.user_attrs:  # another worker created the study at the same time
            return
        for source in sources:
            enqueued, skipped = 0, list(source.skipped)
            for params, origin in source.trials:
                number = origin.rpartition("#")[2]
                if params in queued:
                    skipped.append(f"trial {number}: the same as a trial queued before it")
                elif len(queued) >= n_trials:
                    skipped.append(f"trial {number}: over the study's {n_trials} trials")
                else:
                    study.enqueue_trial(
                        params, user_attrs={TRIAL_ATTR: origin}, skip_if_exists=True
                    )
                    queued.append(params)
                    enqueued += 1
            record.append(
                {
                    "study": source.name,
                    "storage": source.storage,
                    "enqueued": enqueued,
                    "skipped": len(skipped),
                }
            )
            notify(_line(source, enqueued, skipped, config.warm_start.count))
        study.set_user_attr(WARM_START_ATTR, record)


def _held(
    storage: optuna.storages.BaseStorage, study: optuna.Study
) -> contextlib.AbstractContextManager[object]:
    """The study's budget lock (:meth:`tuner.storage.budget.BudgetGuard.held`), shared by every
    worker; nothing on a storage without the guard."""
    guard = getattr(storage, "budget", None)
    if guard is None:
        return contextlib.nullcontext()
    return guard.held(storage.get_study_id_from_name(study.study_name))


def _line(source: Source, enqueued: int, skipped: list[str], count: int) -> str:
    """``warm start from study 'digits' (sqlite:///o.db): 4 of its 5 best trials enqueued, 1
    skipped (trial 7: learning_rate 0.2 is out of bounds (...)); not drawn here, dropped: l2``."""
    line = f"warm start from study {source.name!r} ({source.storage}): "
    if not source.taken:
        return line + "no completed trial (meeting its constraints) to start from; nothing enqueued"
    line += f"{enqueued} of its {source.taken} best trials enqueued"
    if source.taken < count:
        line += (
            f" (only {source.taken} of the {count} asked for: "
            "it has no more completed trials that count)"
        )
    if skipped:
        reasons = "; ".join(skipped[:SHOWN_REASONS])
        if len(skipped) > SHOWN_REASONS:
            reasons += f"; and {len(skipped) - SHOWN_REASONS} more"
        line += f", {len(skipped)} skipped ({reasons})"
    if source.dropped:
        line += (
            f"; parameters this space does not draw, dropped: {', '.join(sorted(source.dropped))}"
        )
    return line


def parent_tags(study: optuna.Study) -> dict[str, str]:
    """The parent run's tags for a warm-started study (none otherwise): :data:`TAG_FROM` lists
    each source's name, storage (without a password) and counts; :data:`TAG_ENQUEUED` the
    trials enqueued in all."""
    record = study.user_attrs.get(WARM_START_ATTR)
    if not record:
        return {}
    sources = "; ".join(
        f"{s['study']} ({s['storage']}): {s['enqueued']} enqueued, {s['skipped']} skipped"
        for s in record
    )
    return {TAG_FROM: sources[:8000], TAG_ENQUEUED: str(sum(s["enqueued"] for s in record))}
