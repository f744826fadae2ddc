"""The commands that start a server and stay in the foreground until Ctrl-C: ``tuner ui`` (the
MLflow UI on the tracking store) and ``tuner serve`` (an exported model over HTTP).

Both run the server as a child process through :func:`tuner.process.run_server`, and both refuse
a port that another process holds before they print the server's address
(:func:`check_port_free`). :mod:`tuner.cli.app` registers them on the ``tuner`` app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tuner.cli.command import TrackingOpt, user_errors
from tuner.cli.output import console
from tuner.urls import redact_url


@user_errors(interrupted="stopped the MLflow UI")
def ui(
    tracking_uri: TrackingOpt = None,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port on 127.0.0.1.")
    ] = 5000,
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
    check_port_free(host, port)
    console.print(
        f"MLflow UI for {redact_url(uri)} at http://{host}:{port} "
        f"(runs table: http://{host}:{port}/#/experiments; Ctrl-C stops it)"
    )
    # The store's URL, password included, goes in the child's environment, not on its command
    # line, where `ps` shows it to every user of the machine. MLflow's job runner (GenAI scorers,
    # seven more processes) is off unless the user turns it on.
    env = (
        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        | os.environ
        | {"MLFLOW_BACKEND_STORE_URI": uri}
    )
    code = run_server(
        [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)], env
    )
    raise TunerError(f"the MLflow UI stopped by itself (exit code {code}); its messages are above")


def check_port_free(host: str, port: int) -> None:
    """Refuse, in one line, a port another process holds: the server would print its URL and then
    fail to bind. The test binds as uvicorn does (SO_REUSEADDR), so a port in TIME_WAIT is free."""
    import socket

    from tuner.errors import TunerError

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise TunerError(
                f"cannot listen on {host}:{port}: {reason}; "
                "stop what uses the port or choose another with --port"
            ) from None


@user_errors(interrupted="stopped serving the model")
def serve(
    model_dir: Annotated[Path, typer.Argument(help="An exported model folder (tuner export).")],
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")
    ] = 5001,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default: this machine only).")
    ] = "127.0.0.1",
) -> None:
    """Serve an exported model over HTTP with MLflow's scoring server. The model is built from
    this installation's code: serving a folder runs no code from it. Bad requests get one line."""
    import os
    import shlex

    from tuner.errors import TunerError
    from tuner.process import run_server
    from tuner.result.serving import MODEL_ENV

    if not (model_dir / "MLmodel").is_file():
        raise TunerError(
            f"{model_dir}: not an exported model folder (no MLmodel file); run tuner export first"
        )
    check_port_free(host, port)
    env = os.environ | {MODEL_ENV: str(model_dir.resolve())}
    url = f"http://{host}:{port}"
    example = shlex.quote(str(model_dir / "serving_input_example.json"))
    console.print(
        f"serving {model_dir} at {url}/invocations (Ctrl-C stops it); try:",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"curl -s -X POST {url}/invocations -H 'Content-Type: application/json' -d @{example}",
        highlight=False,
        soft_wrap=True,
    )
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tuner.result.serving:create_app",
        "--host",
        host,
        "--port",
        str(port),
    ]
    raise typer.Exit(run_server(cmd, env))
