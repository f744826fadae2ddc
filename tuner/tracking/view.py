"""The runs table a study's link opens: a view stored on its experiment, so that what a user
compares (validation and test scores, the main hyperparameters, each trial's state) is on screen
at once, not behind MLflow's column picker and a collapsed parent run.

MLflow's UI keeps a shared view as the experiment tag ``mlflow.sharedViewState.<key>`` (the
search and table state as JSON) and opens it from a link with ``viewStateShareKey=<key>``. The
view sorts the runs by the trials' validation score, which also lists them flat instead of
nested under their parent run (the UI nests children only when sorted by date or unsorted), and
selects the columns. The table's layout stays the user's: another view or sort is one click.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from tuner.tracking.keys import FINAL_PREFIX, TAG_STATE, mlflow_key

if TYPE_CHECKING:  # pragma: no cover
    import optuna

logger = logging.getLogger(__name__)

#: The key of the tuner's view: the experiment tag ``mlflow.sharedViewState.tuner``.
VIEW_KEY = "tuner"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
#: The hyperparameters shown as columns, when the study tunes them (the rest are one click away).
MAIN_PARAMS = (
    "n_layers",
    "units_l0",
    "activation",
    "optimizer",
    "learning_rate",
    "batch_size",
    "dropout",
)


def view_state(study: optuna.Study) -> dict[str, Any]:
    """The view of the study's runs: sorted by the trials' validation score (``final_val_<metric>``,
    best first), with the columns state, validation score, the final model's test score and
    the main hyperparameters the study tunes."""
    metric = str(study.user_attrs.get("metric", "value"))
    score = mlflow_key(f"final_val_{metric}")
    tuned = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    params = [p for p in MAIN_PARAMS if p in tuned] or sorted(tuned)[:8]
    columns = [
        f"tags.`{TAG_STATE}`",
        f"metrics.`{score}`",
        f"metrics.`{mlflow_key(f'{FINAL_PREFIX}test_{metric}')}`",
    ]
    return {
        "searchFilter": "",
        "orderByKey": f"metrics.`{score}`",
        "orderByAsc": study.directions[0].name == "MINIMIZE",
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "hideEmptyCharts": True,  # the chart view: no empty sections for the parent run's metrics
        "selectedColumns": columns + [f"params.`{mlflow_key(p)}`" for p in params],
    }


def store_view(client, experiment_id: str, study: optuna.Study) -> None:
    """Store (or update) the study's view on its experiment; best effort: a store that refuses
    it leaves the UI's default table."""
    try:
        client.set_experiment_tag(experiment_id, VIEW_TAG, json.dumps(view_state(study)))
    except Exception as exc:  # a view is a convenience, never a failure
        logger.debug("cannot store the study's view of its runs", exc_info=exc)
