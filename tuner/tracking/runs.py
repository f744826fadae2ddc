"""Finding a study's runs in its experiment: trial runs by number, the latest parent run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tuner.tracking.keys import TAG_MISSING, TAG_ROLE, TAG_STUDY, TAG_TRIAL, quote

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run


def search_trial_runs(
    client: MlflowClient, experiment_id: str, study_name: str, extra_filter: str = ""
) -> Iterator[Run]:
    quoted = quote(study_name)
    clauses = [f"tags.`{TAG_STUDY}` = {quoted}"] if quoted else []
    if extra_filter:
        clauses.append(extra_filter)
    filter_string = " AND ".join(clauses)
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        for run in page:
            tags = run.data.tags
            if tags.get(TAG_STUDY) == study_name and TAG_TRIAL in tags:
                yield run
        token = page.token
        if not token:
            return


def find_trial_run(
    client: MlflowClient, experiment_id: str, study_name: str, trial_number: int
) -> Run | None:
    """The latest (by start time) active child run of a trial; None if it was never logged."""
    runs = search_trial_runs(
        client, experiment_id, study_name, f"tags.`{TAG_TRIAL}` = '{int(trial_number)}'"
    )
    return next(runs, None)


def trial_runs(client: MlflowClient, experiment_id: str, study_name: str) -> dict[int, Run]:
    """All trials of a study logged in an experiment: trial number -> its latest child run.

    A trial whose run status is still RUNNING while Optuna says it is finished had its end
    logging lost (see :attr:`StudyTracker.unlogged_trials`).
    """
    found: dict[int, Run] = {}
    for run in search_trial_runs(client, experiment_id, study_name):
        try:
            number = int(run.data.tags[TAG_TRIAL])
        except ValueError:
            continue
        found.setdefault(number, run)  # runs come newest first
    return found


def latest_parent_run(client: MlflowClient, experiment_id: str, study_name: str) -> Run | None:
    """The study's latest parent run in its experiment (a ``tuner run`` or worker), or None."""
    quoted = quote(study_name)
    filters = [f"tags.`{TAG_ROLE}` = 'parent'"]
    if quoted:
        filters.append(f"tags.`{TAG_STUDY}` = {quoted}")
    found = client.search_runs(
        [experiment_id],
        filter_string=" AND ".join(filters),
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    return found[0] if found else None


def runs_missing_artifacts(client: MlflowClient, experiment_id: str, study_name: str) -> list[Run]:
    """The study's runs (trials' and parents') tagged ``tuner.missing``: artifacts the store
    refused when they were logged."""
    quoted = quote(study_name)
    filters = [f"tags.`{TAG_MISSING}` LIKE '%'"] + (
        [f"tags.`{TAG_STUDY}` = {quoted}"] if quoted else []
    )
    found = client.search_runs(
        [experiment_id], filter_string=" AND ".join(filters), max_results=1000
    )
    return [run for run in found if run.data.tags.get(TAG_STUDY) == study_name]


def new_points(client: MlflowClient, run: Run, metrics: list[Metric]) -> list[Metric]:
    """The points of ``metrics`` that ``run`` holds none at yet: a point is a metric's key and
    step.

    For a run logged again (``tuner sync``, a run finished for a process that ended): its first
    logging may have landed before the store stopped answering, and the second one has other
    timestamps (a trial's come from Optuna's record), so the store would keep both. Reads the
    history of the keys ``run`` already has (``run`` as found: its latest metrics name them).
    """
    steps = {
        key: {point.step for point in client.get_metric_history(run.info.run_id, key)}
        for key in {m.key for m in metrics} & set(run.data.metrics)
    }
    return [m for m in metrics if m.step not in steps.get(m.key, ())]
