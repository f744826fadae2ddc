"""The ``tuner`` command's Typer app and what its subcommands share: ``--version``, the storage,
tracking and thread options, and :func:`user_errors`, which turns a user's mistake or an
interrupt into one line and an exit code.

The subcommands live in :mod:`tuner.cli.app` (tuning, reading and exporting studies) and
:mod:`tuner.cli.servers` (the MLflow UI and the model server); :mod:`tuner.cli.app` registers
them all on :data:`app`, in the order ``tuner --help`` lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, overload

import typer

from tuner.cli.output import err_console
from tuner.urls import redact_url

app = typer.Typer(
    help="Tune NumPy MLPs with Optuna; track every trial in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # A docstring's single line breaks join (in "rich" mode the list keeps them).
    rich_markup_mode="markdown",
)
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage", help="Optuna storage URL (default: $TUNER_STORAGE or sqlite:///optuna.db)."
    ),
]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or MLflow's own).",
    ),
]
TrialsOpt = Annotated[
    int | None, typer.Option("--trials", min=1, help="Total number of trials of the study.")
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=1, help="Stop starting trials after S seconds.")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        envvar="TUNER_THREADS",
        help="BLAS threads per worker process (default 1: scale with workers, not threads).",
    ),
]

#: The name the package is installed under (``[project] name`` in pyproject.toml).
DISTRIBUTION = "mlp-tuner"


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


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Tune NumPy MLPs with Optuna; track every trial in MLflow."""


#: What ``tuner run`` and ``tuner worker`` say when Ctrl-C or SIGTERM stops them.
TRIALS_INTERRUPTED = (
    "interrupted: a trial in progress is recorded as failed; run the same command to resume"
)

Command = TypeVar("Command", bound=Callable[..., Any])


@overload
def user_errors(command: Command, *, interrupted: str = ...) -> Command: ...


@overload
def user_errors(
    command: None = None, *, interrupted: str = ...
) -> Callable[[Command], Command]: ...


def user_errors(
    command: Callable[..., Any] | None = None, *, interrupted: str = TRIALS_INTERRUPTED
) -> Any:
    """Print errors a user can cause as one line on stderr and exit 1, without a traceback; at
    Ctrl-C or SIGTERM print ``interrupted`` (what stopping meant for this command) and exit 130.
    Used bare (``@user_errors``) or with the message (``@user_errors(interrupted=...)``)."""
    if command is None:
        return functools.partial(user_errors, interrupted=interrupted)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tuner import interrupts
        from tuner.errors import TunerError, full_disk

        interrupts.install()
        try:
            return command(*args, **kwargs)
        except TunerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(interrupted, highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if (reason := full_disk(exc)) is None:
                raise
            err_console.print(
                f"[bold red]error:[/] the disk is full ({redact_url(reason)}): a store could not "
                "be written; free some space and run the same command to resume",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper
