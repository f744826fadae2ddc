"""The ``tuner`` command. Heavy imports (optuna, mlflow, the model) happen inside commands so
that ``tuner --help`` answers at once."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tuner.cli.output import (
    console, costs_text, err_console, feasible_line, print_front, print_summary, print_table,
    print_trials, say,
)
from tuner.process import own_process
from tuner.study.files import study_name as resolve_study_name
from tuner.urls import redact_url

app = typer.Typer(
    help="Tune NumPy MLPs with Optuna; track every trial in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's single line breaks join (in "rich" mode the list keeps them)
)
StorageOpt = Annotated[
    Optional[str],
    typer.Option("--storage", help="Optuna storage URL (default: $TUNER_STORAGE or sqlite:///optuna.db)."),
]
TrackingOpt = Annotated[
    Optional[str],
    typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or MLflow's own)."),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--threads", min=1, envvar="TUNER_THREADS",
        help="BLAS threads per worker process (default 1: scale with workers, not threads).",
    ),
]


def _print_version(value: bool) -> None:
    """``--version``: the installed distribution's version, read from its metadata (no import
    of the tuner's libraries)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(DISTRIBUTION)
    except PackageNotFoundError:
        installed = "(not installed)"
    typer.echo(f"{DISTRIBUTION} {installed}")
    raise typer.Exit()


#: The name the package is installed under (pyproject.toml).
DISTRIBUTION = "mlp-tuner"


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Tune NumPy MLPs with Optuna; track every trial in MLflow."""


#: What ``tuner run`` and ``tuner worker`` say when Ctrl-C or SIGTERM stops them.
TRIALS_INTERRUPTED = "interrupted: a trial in progress is recorded as failed; run the same command to resume"


def user_errors(command=None, *, interrupted: str = TRIALS_INTERRUPTED):
    """Print errors a user can cause as one line on stderr and exit 1, without a traceback; at
    Ctrl-C or SIGTERM print ``interrupted`` (what stopping meant for this command) and exit 130.
    Used bare (``@user_errors``) or with the message (``@user_errors(interrupted=...)``)."""
    if command is None:
        return functools.partial(user_errors, interrupted=interrupted)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from tuner import interrupts
        from tuner.errors import TunerError

        interrupts.install()
        try:
            return command(*args, **kwargs)
        except TunerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(interrupted, highlight=False)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@user_errors
def run(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML), e.g. studies/digits.toml.")],
    trials: Annotated[Optional[int], typer.Option("--trials", min=1, help="Total number of trials of the study.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=1, help="Stop starting trials after S seconds.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Worker processes sharing the storage.")] = 1,
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Override the study's seed.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Create or resume a study and run it to its total budget of trials."""
    own_process()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    from tuner.study.config import load_config
    from tuner.runner import run_study

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

    def on_trial_end(study, trial) -> None:
        from tuner.runner import finished_count

        from tuner.search.pareto import is_multi

        best = ""
        try:
            if is_multi(study):
                best = f"Pareto front: {len(study.best_trials)} trials"
            else:
                best = f"best {config.objective.metric} {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:
            pass
        progress.update(task_id, completed=finished_count(study, config.budget.n_trials), best=best)

    with progress:
        result = run_study(
            config, jobs=jobs, storage=storage, tracking_uri=tracking_uri, callbacks=[on_trial_end],
            threads=threads, freeze_heap=True, notify=say,
        )
        on_trial_end(result.study, None)
    print_summary(result)


@app.command()
@user_errors
def worker(
    study_file: Annotated[Path, typer.Argument(help="Study file (TOML) of the shared study.")],
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
    trials: Annotated[Optional[int], typer.Option("--trials", min=1, help="Total number of trials of the study.")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", min=1, help="Stop starting trials after S seconds.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Join (or create) a shared study and run trials until its total budget is reached."""
    own_process()
    from tuner.study.config import load_config
    from tuner.runner import finished_count, run_worker
    from tuner.storage.storages import open_storage, resolve_storage_url

    config = load_config(study_file).with_overrides(n_trials=trials, timeout=timeout)
    url = resolve_storage_url(storage)
    console.print(f"worker joining study {config.name!r} on {redact_url(url)}")
    ran = set(run_worker(config, url, tracking_uri, blas_threads=threads, freeze_heap=True, notify=say))
    import optuna

    from tuner.errors import TunerError
    from tuner.search.failures import none_completed

    study = optuna.load_study(study_name=config.name, storage=open_storage(url))
    console.print(f"study {config.name!r}: {finished_count(study, config.budget.n_trials)} of {config.budget.n_trials} trials finished")
    feasible = feasible_line(study)
    if feasible:
        console.print(feasible, highlight=False)
    mine = [t for t in study.get_trials(deepcopy=False) if t.number in ran]
    if mine and all(t.state == optuna.trial.TrialState.FAIL for t in mine):
        raise TunerError(none_completed(mine, f"none of the {len(mine)} trials this worker ran completed"))


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
        + (f"; logged missing artifacts: {'; '.join(report.artifacts)}" if report.artifacts else ""),
        highlight=False, soft_wrap=True,
    )
    problems = [f"trials {report.failed} could not be logged"] if report.failed else []
    if report.artifact_error:
        problems.append(
            f"the MLflow artifact store still refuses {'; '.join(report.artifacts_missing)} ({report.artifact_error})"
        )
    if problems:
        err_console.print(f"error: {'; '.join(problems)}; run sync again", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def status(
    study_name: Annotated[Optional[str], typer.Argument(help="A study name or study file; omit to list the studies.")] = None,
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
            best = f"{s.best_trial.value:.4f}" if s.best_trial is not None else "-"
            started = s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "-"
            table.add_row(s.study_name, str(s.n_trials), best, started)
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
        best = best_trial(study)  # the best of those that meet the constraints; see tuner/search/pareto.py
        console.print(f"best trial {best.number}: {best.values[0]:.4f}")
    except ValueError:
        console.print("no completed trial meets the constraints yet" if feasible else "no completed trial yet")


@app.command()
@user_errors(interrupted="stopped the MLflow UI")
def ui(
    tracking_uri: TrackingOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on the tracking store in use, on 127.0.0.1; Ctrl-C stops it."""
    import os

    from tuner.errors import TunerError
    from tuner.process import run_server
    from tuner.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("http"):
        console.print(f"the tracking store is a server already: open {redact_url(uri)}")
        return
    host = "127.0.0.1"
    _check_port_free(host, port)
    console.print(f"MLflow UI for {redact_url(uri)} at http://{host}:{port} (runs table: http://{host}:{port}/#/experiments; Ctrl-C stops it)")
    # The store's URL, password included, goes in the child's environment, not on its command
    # line, where `ps` shows it to every user of the machine. MLflow's job runner (GenAI scorers,
    # seven more processes) is off unless the user turns it on.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | os.environ | {"MLFLOW_BACKEND_STORE_URI": uri}
    code = run_server([sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)], env)
    raise TunerError(f"the MLflow UI stopped by itself (exit code {code}); its messages are above")


def _check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a port another process holds: the server would print its URL and then
    fail to bind. The test binds as uvicorn does (SO_REUSEADDR), so a port in TIME_WAIT is free."""
    import socket

    from tuner.errors import TunerError

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise TunerError(
                f"cannot listen on {host}:{port}: {exc.strerror.lower()}; stop what uses the port or choose another with --port"
            ) from None


@app.command()
@user_errors
def export(
    study: Annotated[str, typer.Argument(help="Study name or study file (.toml); the study's data is needed.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Model folder to write (default: exports/STUDY, the study's name).")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="With one trial (--trial/--best, the best by default): retrain its parameters on training + validation rows for the epochs the trial used.")] = False,
    best: Annotated[bool, typer.Option("--best", help="Export the best trial's own model instead of the study's final model.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an export folder that holds another model.")] = False,
    register: Annotated[Optional[str], typer.Option("--register", help="Also create a version of this registered model, alias 'champion'.")] = None,
    trial: Annotated[Optional[int], typer.Option("--trial", min=0, help="Export this trial's model instead of the study's final model.")] = None,
    where: Annotated[Optional[list[str]], typer.Option("--where", help="Export the most accurate trial whose measured costs meet this clause, e.g. 'latency_ms_row <= 0.2' (<= or <; costs: latency_ms_row, latency_ms_batch1000, size_kb, n_params); repeat for several.")] = None,
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Export the study's final model (or one trial's) as an MLflow pyfunc model (no pickle), logged to the study's MLflow run."""
    own_process()
    from tuner.result.export import export_study

    result = export_study(
        study, out=out, refit=refit, register_as=register, trial_number=trial, best=best, force=force,
        where=where, storage=storage, tracking_uri=tracking_uri, say=lambda m: console.print(m, highlight=False, markup=False),
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    from tuner.result.export import members_text

    members = members_text(result.metadata["members"])
    rows = "training + validation rows" if result.metadata["trained_on"] == "train+validation" else "training rows"
    what = {"trial": "the model trial {n} trained", "retrained": "trial {n}'s model, trained again",
            "refit": "trial {n}'s parameters refitted on training + validation rows",
            "final": "the final model (trials {members}, on {rows})"}[result.source]
    console.print(f"exported {what.format(n=result.trial_number, members=members, rows=rows)} of study {result.study_name!r} to {result.path}")
    scores = ", ".join(f"{k} {v:.4f}" for k, v in result.test_scores.items())
    validation = result.metadata.get("validation_score")
    metric = result.metadata["objective"]["metric"]
    shown = f"validation {metric} {validation:.4f} (trial); " if validation is not None else ""
    console.print(f"{shown}test split: {scores}", highlight=False)
    if result.metadata.get("costs"):
        console.print("costs measured here: " + costs_text(result.metadata["costs"]), highlight=False)
    if result.model_id:
        console.print(f"logged to MLflow run {result.run_id} as {result.model_uri}")
    if result.registered_name:
        console.print(f"registered {result.registered_name!r} version {result.registered_version}, "
                      f"alias champion: models:/{result.registered_name}@champion")
    from tuner.cli.hints import tuner_command

    console.print(f"serve it: {tuner_command()} serve {result.path}", highlight=False, soft_wrap=True)


@app.command()
@user_errors(interrupted="stopped serving the model")
def serve(
    model_dir: Annotated[Path, typer.Argument(help="An exported model folder (tuner export).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 5001,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (default: this machine only).")] = "127.0.0.1",
) -> None:
    """Serve an exported model over HTTP with MLflow's scoring server. The model is built from
    this installation's code: serving a folder runs no code from it. Bad requests get one line."""
    import os
    import shlex

    from tuner.errors import TunerError
    from tuner.process import run_server
    from tuner.result.serving import MODEL_ENV

    if not (model_dir / "MLmodel").is_file():
        raise TunerError(f"{model_dir}: not an exported model folder (no MLmodel file); run tuner export first")
    _check_port_free(host, port)
    env = os.environ | {MODEL_ENV: str(model_dir.resolve())}
    url = f"http://{host}:{port}"
    example = model_dir / "serving_input_example.json"
    console.print(f"serving {model_dir} at {url}/invocations (Ctrl-C stops it); try:", highlight=False, soft_wrap=True)
    console.print(
        f"curl -s -X POST {url}/invocations -H 'Content-Type: application/json' -d @{shlex.quote(str(example))}",
        highlight=False, soft_wrap=True,
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tuner.result.serving:create_app", "--host", host, "--port", str(port)]
    raise typer.Exit(run_server(cmd, env))


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":
    app()
