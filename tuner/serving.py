"""The HTTP app of ``tuner serve``: MLflow's scoring server for an exported model, with short errors.

MLflow's scoring server answers a bad request (a missing column, a value of the wrong type) with
the request's whole DataFrame, and often the model's schema, inside the message: ``Failed to
predict data '<frame>' ... Error: Incompatible input types for column ash. ...``. For a request of
many rows that is pages of text around the one line that matters. This app is the same server
(same routes, same request and answer formats, built by ``mlflow.pyfunc.scoring_server.init``)
whose error answers from ``/invocations`` keep only that line (:func:`short_message`).

``tuner serve`` starts it as ``uvicorn --factory tuner.serving:create_app`` with the model folder
in the child's environment variable :data:`MODEL_ENV`.
"""

from __future__ import annotations

import json
import os
import re

#: The environment variable that names the model folder for :func:`create_app`.
MODEL_ENV = "TUNER_SERVE_MODEL"


#: The parts of MLflow's scoring errors that repeat the request (and the schema) before saying
#: what is wrong: the predict wrapper of the scoring server, then schema enforcement.
REQUEST_DUMPS = (
    re.compile(r"^Failed to predict data '.*?'\. \nError: ", re.S),
    re.compile(r"^Failed to enforce schema of data '.*?' with schema '.*?'\. Error: ", re.S),
)


def short_message(message: str) -> str:
    """What is wrong, from a scoring error message: without the request and schema MLflow puts
    before it, without its long hint, on one line."""
    for dump in REQUEST_DUMPS:
        message = dump.sub("", message, count=1)
    return " ".join(message.split(" Hint:", 1)[0].split())


def create_app(model_dir: str | None = None):
    """MLflow's scoring app for ``model_dir`` (default: ``$TUNER_SERVE_MODEL``) whose client
    errors on ``/invocations`` carry :func:`short_message` and no stack trace."""
    from fastapi import Request
    from fastapi.responses import Response
    from mlflow.pyfunc import scoring_server

    model = scoring_server.load_model_with_mlflow_config(model_dir or os.environ[MODEL_ENV])
    app = scoring_server.init(model)

    @app.middleware("http")
    async def short_errors(request: Request, call_next):
        response = await call_next(request)
        if request.url.path != "/invocations" or not 400 <= response.status_code < 500:
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        try:
            error = json.loads(body)
            error["message"] = short_message(error["message"])
            error.pop("stack_trace", None)
            body = json.dumps(error).encode()
        except (ValueError, KeyError, TypeError):  # not MLflow's JSON error: pass it on as it is
            pass
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(content=body, status_code=response.status_code, headers=headers)

    return app
