"""What defines a study: the settings that give its trials' values their meaning.

A study's trials are comparable only while the metric, the data and its split, the epoch budget
(``max_epochs``, and ``epoch_rows``: what an epoch is) and the search space stay the same. The first
run of a study stores them (the study user attribute :data:`DEFINITION_ATTR`); every later run,
worker or resume compares its own and stops with one line naming what changed, instead of ranking
accuracy against log loss or exporting a best trial from another space. What may change between
runs: the number of trials, the timeout, the sampler, the pruner, the ``[result]`` table (how the
final model is made) and the ``[warm_start]`` table: like the sampler, it only decides which trials
run first (it is applied once, when the study is created, :mod:`tuner.search.warm_start`), and every
trial is still trained and scored by the settings above.

The ``[objective] constraints`` define the study too. Each trial stores the values Optuna judges it
by (``cost - bound``, :mod:`tuner.search.constraints`), computed with the bounds of the run that
trained it: with other bounds on resume, ``study.best_trial``, the final model's members and the
sampler would judge old trials by the old bounds and new ones by the new, one study with two
meanings of "feasible". Other bounds on finished trials are what ``tuner export --where`` is for: it
reads the trials' stored costs, not their constraint values.
"""

from __future__ import annotations

from typing import Any

import optuna

from tuner.data.loading import Splits
from tuner.errors import TunerError
from tuner.study.config import StudyConfig

DEFINITION_ATTR = "definition"
#: Settings added to the definition after studies were stored without them, and the value a study
#: stored without one had: such a study is checked against that value.
ADDED_LATER: dict[str, Any] = {
    "objective.constraints": {},
    "objective.metrics": None,
    "budget.epoch_rows": None,
}
#: The study user attribute holding the study file's settings (StudyConfig.file_settings), so that
#: commands given only the study's name (``tuner export NAME``) can rebuild its config.
STUDY_FILE_ATTR = "study_file"
#: The study user attribute that records the final model's members (read back by the export).
FINAL_ATTR = "final_model"
#: The study user attributes of the final model's and the best trial's test scores, and the id of
#: the MLflow parent run that scored them: a run whose process could not log its summary (the
#: tracking store was down at its end) is finished from them later
#: (:mod:`tuner.storage.recovery`).
TEST_SCORES_ATTR = "test_scores"
BEST_TEST_SCORES_ATTR = "best_trial_test_scores"
SCORED_BY_ATTR = "scored_by_run"


def study_definition(config: StudyConfig, splits: Splits) -> dict[str, Any]:
    """The settings that define ``config``'s study, as flat JSON-safe key/value pairs (the space
    as fitted to the data)."""
    data = config.data
    definition: dict[str, Any] = {
        "task": config.task,
        "objective.metric": config.metric,
        "objective.validation_splits": config.objective.validation_splits,
        "objective.constraints": dict(config.objective.constraints),
        # A multi-objective study's objectives (None: one metric); :mod:`tuner.search.pareto`.
        "objective.metrics": config.objective.metrics,
        "direction": config.direction,
        "data.source": data.source,
        "data.target": data.target,
        "data.fingerprint": splits.fingerprint,
        "data.validation_fraction": data.validation_fraction,
        "data.test_fraction": data.test_fraction,
        "data.missing": data.missing,
        "seed": config.seed,
        "budget.max_epochs": config.budget.max_epochs,
        # What an epoch is: max_epochs, the pruner's steps and the refit's epochs count them.
        "budget.epoch_rows": config.budget.epoch_rows,
    }
    definition.update({f"space.{k}": v for k, v in config.space.describe().items()})
    return definition


class DefinitionChanged(TunerError):
    """A study file changed in what defines the study it names; ``replaceable`` when every trial
    of that study failed, so that nothing of value would be lost by starting it again."""

    def __init__(self, message: str, shown: str, replaceable: bool) -> None:
        super().__init__(message)
        self.shown = shown
        self.replaceable = replaceable


def only_failed(study: optuna.Study) -> bool:
    """Whether the study has trials and every one that ran failed (bad data, say)."""
    trials = study.get_trials(deepcopy=False)
    ran = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
    return bool(ran) and all(t.state == optuna.trial.TrialState.FAIL for t in ran)


def check_definition(study: optuna.Study, definition: dict[str, Any], path: str) -> None:
    """Store ``definition`` on a new study; on an existing one, TunerError naming every setting
    that differs from the stored one. A study from before definitions were stored is checked on
    its metric (the one setting it recorded) and then given the definition."""
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        old_metric = study.user_attrs.get("metric")
        if (
            old_metric is not None
            and old_metric != definition["objective.metric"]
            and study.get_trials(deepcopy=False)
        ):
            stored = {"objective.metric": old_metric}
        else:
            study.set_user_attr(DEFINITION_ATTR, definition)
            return
    stored = {key: value for key, value in ADDED_LATER.items() if key in definition} | stored
    changed = [key for key in stored if key in definition and stored[key] != definition[key]]
    if not changed:
        return
    shown = "; ".join(
        f"{key} was {_short(stored[key])}, now {_short(definition[key])}" for key in changed
    )
    raise DefinitionChanged(
        f"{path}: study {study.study_name!r} already exists in this storage with other settings "
        f"({shown}); its trials would not be comparable: give the study a new name (or another "
        "--storage), or restore the settings it was created with",
        shown,
        only_failed(study),
    )


def _short(value: Any) -> str:
    text = repr(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = repr(value[:12] + "…")  # a data fingerprint
    return text
