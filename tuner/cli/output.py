"""What the ``tuner`` command prints: results tables that fit the terminal, a study's summary,
its best trials, and the line that leads to its MLflow runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from tuner.urls import redact_url

if TYPE_CHECKING:  # pragma: no cover
    import optuna

    from tuner.result.metadata import ExportResult
    from tuner.runner import StudyResult
    from tuner.tracking import StudyTracker

# Lines are written whole (the terminal wraps them; a log keeps them on one line); tables are laid
# out at the terminal's width (80 columns when there is none), their cells folded, never cut.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def column_header(name: str) -> str:
    """A column header for a parameter or metric name, with spaces for underscores: a narrow
    terminal wraps the header between its words (``learning`` / ``rate``) rather than in them."""
    return name.replace("_", " ")


def print_table(table: Table) -> None:
    """Print a results table whose cells fold onto more lines where the terminal is too narrow,
    instead of being cut with an ellipsis (a cut header or value is one nobody can read)."""
    for column in table.columns:
        column.overflow = "fold"
    keep_values_whole(table, console.width)
    console.print(table, soft_wrap=False)  # laid out at the console's width


def keep_values_whole(table: Table, width: int) -> None:
    """Where ``table`` is wider than ``width`` but its values fit whole, give each column the width
    of its longest value (or header word) plus what is left over in turn, so that headers wrap
    between words and values stay whole: rich alone narrows every column alike and folds values
    that would fit. Narrower still, rich folds what it must."""
    values = [[str(cell) for cell in column.cells] for column in table.columns]
    headers = [str(column.header) for column in table.columns]
    natural = [
        max([len(header), *map(len, cells)]) for header, cells in zip(headers, values, strict=True)
    ]
    least = [
        max([1, *map(len, header.split()), *map(len, cells)])
        for header, cells in zip(headers, values, strict=True)
    ]
    room = width - (3 * len(natural) + 1)  # one space each side of a cell, a border between columns
    if sum(natural) <= room or sum(least) > room:
        return
    slack = room - sum(least)
    for column, low, high in zip(table.columns, least, natural, strict=True):
        column.width = low + min(high - low, slack)
        slack -= column.width - low


def say(line: str) -> None:
    """A line the run tells the user as it goes (a new study's warm start), as it is written."""
    console.print(line, highlight=False, soft_wrap=True, markup=False)


def print_summary(result: StudyResult) -> None:
    """What ``tuner run`` prints at the end: the top trials, the best trial (a multi-objective
    study's Pareto front and primary trial) with its parameters and costs, the final model's test
    scores, and where the study's runs are in MLflow. TunerError when no trial completed, or when
    none meets the study's constraints."""
    study, config = result.study, result.config
    print_trials(study, config.metric, limit=10)
    best = _best_of_run(study)
    _print_best(study, best, config.metric)
    if result.test_scores:
        _print_final(result)
    if result.tracker is not None:
        console.print(where_to_look(config.name, result.tracker), highlight=False, soft_wrap=True)


def _best_of_run(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The trial the run's summary shows (:func:`tuner.search.pareto.best_trial`: the best of those
    that meet the constraints), after the feasibility line and a multi-objective study's front;
    TunerError when no trial completed (a diverging study, say) or none meets the constraints."""
    import optuna

    from tuner.errors import TunerError
    from tuner.search.constraints import no_feasible_message
    from tuner.search.failures import none_completed
    from tuner.search.pareto import best_trial, is_multi

    n_complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    if not n_complete:
        raise TunerError(none_completed(study.trials) or "no trial completed: none ran")
    feasible = feasible_line(study)
    if feasible:
        console.print(feasible, highlight=False)
    try:
        best = best_trial(study)
    except ValueError:
        raise TunerError(no_feasible_message(study.study_name, n_complete)) from None
    if is_multi(study):
        print_front(study)
    return best


def _print_best(study: optuna.Study, best: optuna.trial.FrozenTrial, metric: str) -> None:
    """The best (or primary) trial: its validation score, its parameters and measured costs."""
    from tuner.search.costs import trial_costs
    from tuner.search.pareto import is_multi

    what = (
        "[bold]best trial[/]"
        if not is_multi(study)
        else "[bold]primary trial[/] (the front's best on its metric)"
    )
    console.print(f"\n{what} {best.number}: validation {metric} = {best.values[0]:.4f}")
    for key, value in best.params.items():
        console.print(f"  {key} = {value}")
    costs = trial_costs(best)
    if costs:
        console.print("  costs: " + costs_text(costs), highlight=False)


def _print_final(result: StudyResult) -> None:
    """The final model: its members, the rows it trained on, its test scores and, when it is not
    the best trial's own model, the best trial's scores beside them."""
    from tuner.search.pareto import is_multi
    from tuner.tracking.keys import members_text

    final = result.final
    alone = (
        "primary trial, no ensemble (tuner/search/pareto.py)"
        if is_multi(result.study)
        else "best trial"
    )
    what = (
        alone
        if final is None or len(final.members) == 1
        else f"ensemble of trials {members_text(final.members)}"
    )
    if final is not None and final.is_defaults:
        what = "the estimator's defaults (no trial lowered their validation loss)"
    if final is not None and final.seeds > 1:
        what += f", each trained with {final.seeds} seeds"
    rows = (
        "training + validation rows" if final is not None and final.refit else "the training rows"
    )
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.test_scores.items())
    console.print(
        f"[bold]final model[/]: {what}, trained on {rows} (see \\[result] in the study file)"
    )
    console.print(f"[bold]test split[/] (scored once): final model {scores}")
    if result.best_trial_scores and final is not None and (final.kind != "single" or final.refit):
        trial_alone = ", ".join(f"{k} {v:.4f}" for k, v in result.best_trial_scores.items())
        console.print(f"  best trial alone, as trained in its trial: {trial_alone}")


def costs_text(costs: dict[str, float]) -> str:
    """``latency_ms_row 0.081, ..., n_params 4810`` (:mod:`tuner.search.costs`)."""
    return ", ".join(f"{k} {v:.4g}" for k, v in costs.items())


def feasible_line(study: optuna.Study) -> str | None:
    """``N of M completed trials meet the constraints`` for a constrained study, else None
    (:func:`tuner.search.constraints.feasible_line`)."""
    from tuner.search.constraints import feasible_line

    return feasible_line(study.get_trials(deepcopy=False))


def print_front(study: optuna.Study) -> None:
    """A multi-objective study's Pareto front: one row per trial, one column per objective."""
    from tuner.search.pareto import front_rows, objective_names

    rows = front_rows(study)
    names = objective_names(study)
    table = Table(title=f"Pareto front: {len(rows)} trials")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(str(row["trial"]), *(f"{row[name]:.4g}" for name in names))
    print_table(table)


def where_to_look(name: str, tracker: StudyTracker) -> str:
    """The one line that leads to the study's runs: the runs table's link on a tracking server,
    else the command that starts the UI on this store and the link it will serve."""
    import shlex

    from tuner.cli.hints import tuner_command
    from tuner.tracking import experiment_url, resolve_tracking_uri

    uri = tracker.tracking_uri
    try:
        experiment = tracker.experiment_id
    except Exception:  # the store went away at the end: say where it was, no link
        experiment = None
    url = experiment_url(uri, experiment) if experiment else None
    if url:
        return f"MLflow: the study's runs are at {redact_url(url)}"
    command = f"{tuner_command()} ui"
    if uri != resolve_tracking_uri(None):  # a store other than the one `tuner ui` opens by itself
        command += f" --tracking-uri {shlex.quote(redact_url(uri))}"
    # The experiment, which a storage may set apart.
    name = getattr(tracker, "experiment_name", None) or name
    line = f"MLflow: experiment {name!r} at {redact_url(uri)}; browse it with `{command}`"
    return line + (
        f", then open {experiment_url('http://127.0.0.1:5000', experiment)}" if experiment else ""
    )


def print_trials(study: optuna.Study, metric: str, limit: int = 10) -> None:
    """The study's trial counts by state, and a table of its ``limit`` best completed trials on
    its metric (the first objective) with their main parameters and, in a constrained study,
    whether each meets the constraints."""
    from tuner.search.constraints import feasible, ranked_trials

    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    console.print(
        f"study {study.study_name!r}: "
        + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items()))
    )
    complete = ranked_trials(study, feasible_only=False)  # on the first objective, the metric
    top = complete[:limit]
    if not top:
        return
    table = Table(title=f"top {len(top)} trials by validation {metric}")
    table.add_column("trial", justify="right")
    table.add_column(column_header(metric), justify="right")
    table.add_column("layers")
    for name in ("activation", "optimizer", "learning_rate", "batch_size"):
        table.add_column(column_header(name))
    constrained = any(t.constraints for t in complete)
    if constrained:
        table.add_column("meets constraints")
    for t in top:
        # Values the study file fixes are user attributes (see tuner.study.space).
        p = {**t.user_attrs, **t.params}
        layers = "-".join(
            str(p[f"units_l{i}"]) for i in range(p.get("n_layers", 0)) if f"units_l{i}" in p
        )
        lr = p.get("learning_rate")
        table.add_row(
            str(t.number),
            f"{t.values[0]:.4f}",
            layers or "-",
            str(p.get("activation", "-")),
            str(p.get("optimizer", "-")),
            f"{lr:.2e}" if isinstance(lr, float) else "-",
            str(p.get("batch_size", "-")),
            *(["yes" if feasible(t) else "no"] if constrained else []),
        )
    print_table(table)


def print_export(result: ExportResult) -> None:
    """What ``tuner export`` made: its notes, the model and where it went, its validation and
    test scores, its measured costs, its MLflow run and registered version, and how to serve it."""
    from tuner.cli.hints import tuner_command
    from tuner.tracking.keys import members_text

    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    meta = result.metadata
    members = members_text(meta["members"])
    rows = (
        "training + validation rows"
        if meta["trained_on"] == "train+validation"
        else "training rows"
    )
    what = {
        "trial": "the model trial {n} trained",
        "retrained": "trial {n}'s model, trained again",
        "refit": "trial {n}'s parameters refitted on training + validation rows",
        "final": "the final model (trials {members}, on {rows})",
    }[result.source]
    console.print(
        f"exported {what.format(n=result.trial_number, members=members, rows=rows)} "
        f"of study {result.study_name!r} to {result.path}"
    )
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.test_scores.items())
    validation = meta.get("validation_score")
    metric = meta["objective"]["metric"]
    shown = f"validation {metric} {validation:.4f} (trial); " if validation is not None else ""
    console.print(f"{shown}test split: {scores}", highlight=False)
    if meta.get("costs"):
        console.print("costs measured here: " + costs_text(meta["costs"]), highlight=False)
    if result.model_id:
        console.print(f"logged to MLflow run {result.run_id} as {result.model_uri}")
    if result.registered_name:
        console.print(
            f"registered {result.registered_name!r} version {result.registered_version}, "
            f"alias champion: models:/{result.registered_name}@champion"
        )
    console.print(
        f"serve it: {tuner_command()} serve {result.path}", highlight=False, soft_wrap=True
    )
