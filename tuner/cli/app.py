"""The ``tuner`` command's subcommands that tune, read and export studies, registered with the
server commands of :mod:`tuner.cli.servers` on the app of :mod:`tuner.cli.command`. Heavy imports
(optuna, mlflow, the model) happen inside commands so that ``tuner --help`` answers at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tuner.cli.command import (
    StorageOpt,
    ThreadsOpt,
    TimeoutOpt,
    TrackingOpt,
    TrialsOpt,
    app,
    user_errors,
)
from tuner.cli.output import (
    console,
    err_console,
    feasible_line,
    print_export,
    print_front,
    print_summary,
    print_table,
    print_trials,
    say,
)
from tuner.cli.servers import serve, ui
from tuner.process import own_process
from tuner.study.files import study_name as resolve_study_name
from tuner.urls import redact_url

if TYPE_CHECKING:  # pragma: no cover
    import optuna

__all__ = ["app", "main"]


@app.command()
@user_errors
def run(
    study_file: Annotated[
        Path, typer.Argument(help="Study file (TOML), e.g. studies/digits.toml.")
    ],
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    jobs: Annotated[
        int, typer.Option("--jobs", min=1, help="Worker processes sharing the storage.")
    ] = 1,
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the study's seed.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Create or resume a study and run it to its total budget of trials."""
    own_process()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    from tuner.runner import run_study
    from tuner.study.config import load_config

    config = load_config(study_file).with_overrides(n_trials=trials, timeout=timeout, seed=seed)
    fold = Column(overflow="fold")  # a long study name or best value folds instead of being cut
    progress = Progress(
        TextColumn("[bold]{task.fields[study]}", table_column=fold),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}", table_column=fold.copy()),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task_id = progress.add_task("trials", total=config.budget.n_trials, study=config.name, best="")

    def on_trial_end(study: optuna.Study, trial: optuna.trial.FrozenTrial | None) -> None:
        from tuner.runner import finished_count
        from tuner.search.pareto import is_multi

        best = ""
        try:
            if is_multi(study):
                best = f"Pareto front: {len(study.best_trials)} trials"
            else:
                best = (
                    f"best {config.objective.metric} {study.best_value:.4f} "
                    f"(trial {study.best_trial.number})"
                )
        except ValueError:
            pass
        progress.update(task_id, completed=finished_count(study, config.budget.n_trials), best=best)

    with progress:
        result = run_study(
            config,
            jobs=jobs,
            storage=storage,
            tracking_uri=tracking_uri,
            callbacks=[on_trial_end],
            threads=threads,
            freeze_heap=True,
            notify=say,
        )
        on_trial_end(result.study, None)
    print_summary(result)


@app.command()
@user_errors
def worker(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML) of the shared study.")],
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
    trials: TrialsOpt = None,
    timeout: TimeoutOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Join (or create) a shared study and run trials until its total budget is reached."""
    own_process()
    from tuner.runner import finished_count, run_worker
    from tuner.storage.storages import open_storage, resolve_storage_url
    from tuner.study.config import load_config

    config = load_config(study_file).with_overrides(n_trials=trials, timeout=timeout)
    url = resolve_storage_url(storage)
    console.print(f"worker joining study {config.name!r} on {redact_url(url)}")
    ran = set(
        run_worker(config, url, tracking_uri, blas_threads=threads, freeze_heap=True, notify=say)
    )
    import optuna

    from tuner.errors import TunerError
    from tuner.search.failures import none_completed

    study = optuna.load_study(study_name=config.name, storage=open_storage(url))
    n_trials = config.budget.n_trials
    console.print(
        f"study {config.name!r}: {finished_count(study, n_trials)} of {n_trials} trials finished"
    )
    feasible = feasible_line(study)
    if feasible:
        console.print(feasible, highlight=False)
    mine = [t for t in study.get_trials(deepcopy=False) if t.number in ran]
    if mine and all(t.state == optuna.trial.TrialState.FAIL for t in mine):
        raise TunerError(
            none_completed(mine, f"none of the {len(mine)} trials this worker ran completed")
        )


@app.command()
@user_errors
def sync(
    study_name: Annotated[str, typer.Argument(help="A study name or study file.")],
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Log to MLflow every finished trial that MLflow is missing (after a tracking outage), and the
    artifacts its store refused (runs tagged tuner.missing)."""
    own_process()
    from tuner.tracking.sync import sync_study

    name = resolve_study_name(study_name)
    report = sync_study(study_name, storage=storage, tracking_uri=tracking_uri)
    console.print(
        f"study {name!r}: {report.finished} finished trials; logged {len(report.logged)} missing, "
        f"closed {len(report.closed)} left running"
        + (f", closed {len(report.dead_runs)} runs of dead processes" if report.dead_runs else "")
        + (
            f"; logged missing artifacts: {'; '.join(report.artifacts)}" if report.artifacts else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    problems = [f"trials {report.failed} could not be logged"] if report.failed else []
    if report.artifact_error:
        problems.append(
            "the MLflow artifact store still refuses "
            f"{'; '.join(report.artifacts_missing)} ({report.artifact_error})"
        )
    if problems:
        err_console.print(
            f"error: {'; '.join(problems)}; run sync again", highlight=False, soft_wrap=True
        )
        raise typer.Exit(1)


@app.command()
@user_errors
def status(
    study_name: Annotated[
        str | None, typer.Argument(help="A study name or study file; omit to list the studies.")
    ] = None,
    storage: StorageOpt = None,
) -> None:
    """List the studies in a storage, or show one study's trials."""
    own_process()
    import optuna

    from tuner.storage.storages import load_existing_study, open_storage, resolve_storage_url

    url = resolve_storage_url(storage)
    store = open_storage(url, read_only=True)
    if study_name is None:
        summaries = optuna.get_all_study_summaries(storage=store)
        if not summaries:
            console.print(f"no studies in {redact_url(url)}")
            return
        table = Table(title=f"studies in {redact_url(url)}")
        for col in ("study", "trials", "best value", "started"):
            table.add_column(col)
        for s in summaries:
            value = f"{s.best_trial.value:.4f}" if s.best_trial is not None else "-"
            started = s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-"
            table.add_row(s.study_name, str(s.n_trials), value, started)
        print_table(table)
        return
    name = resolve_study_name(study_name)
    study = load_existing_study(name, store, url)
    metric = study.user_attrs.get("metric", "value")
    print_trials(study, metric)
    feasible = feasible_line(study)
    if feasible:
        console.print(feasible, highlight=False)
    from tuner.search.pareto import best_trial, is_multi

    if is_multi(study):
        print_front(study)
    try:
        # The best of those that meet the constraints (see tuner.search.pareto).
        best = best_trial(study)
        console.print(f"best trial {best.number}: {best.values[0]:.4f}")
    except ValueError:
        console.print(
            "no completed trial meets the constraints yet" if feasible else "no completed trial yet"
        )


app.command()(ui)


@app.command()
@user_errors
def export(
    study: Annotated[
        str, typer.Argument(help="Study name or study file (.toml); the study's data is needed.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Model folder to write (default: exports/STUDY, the study's name)."
        ),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="With one trial (--trial/--best, the best by default): retrain its parameters "
            "on training + validation rows for the epochs the trial used.",
        ),
    ] = False,
    best: Annotated[
        bool,
        typer.Option(
            "--best", help="Export the best trial's own model instead of the study's final model."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an export folder that holds another model.")
    ] = False,
    register: Annotated[
        str | None,
        typer.Option(
            "--register", help="Also create a version of this registered model, alias 'champion'."
        ),
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            "--trial", min=0, help="Export this trial's model instead of the study's final model."
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Export the most accurate trial whose measured costs meet this clause, e.g. "
            "'latency_ms_row <= 0.2' (<= or <; costs: latency_ms_row, latency_ms_batch1000, "
            "size_kb, n_params); repeat for several.",
        ),
    ] = None,
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Export the study's final model (or one trial's) as an MLflow pyfunc model (no pickle),
    logged to the study's MLflow run."""
    own_process()
    from tuner.result.export import export_study

    result = export_study(
        study,
        out=out,
        refit=refit,
        register_as=register,
        trial_number=trial,
        best=best,
        force=force,
        where=where,
        storage=storage,
        tracking_uri=tracking_uri,
        say=lambda m: console.print(m, highlight=False, markup=False),
    )
    print_export(result)


app.command()(serve)


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":
    app()
