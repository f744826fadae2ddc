"""The HTTP app of ``tuner serve``: MLflow's scoring server for an exported model, with short errors.

MLflow's scoring server answers a bad request (a missing column, a value of the wrong type) with
the request's whole DataFrame, and often the model's schema, inside the message: ``Failed to
predict data '<frame>' ... Error: Incompatible input types for column ash. ...``. For a request of
many rows that is pages of text around the one line that matters. This app is the same server
(same routes, same request and answer formats, built by ``mlflow.pyfunc.scoring_server.init``)
whose error answers from ``/invocations`` keep only that line (:func:`short_message`).

Two kinds of request are answered before MLflow sees them (:class:`CheckedRequests`): a body
that is not a scoring request (empty, not JSON, not an object, none of the protocol's keys) gets
one line saying what is expected, where MLflow answers with its long note on the protocol of
MLflow 2.0; a request without rows is told so. A CSV body (``Content-Type: text/csv``) is read
as ``pd.read_csv`` reads a file and passed on as JSON: MLflow reads CSV with the column types
of the signature, which declares its columns ``Any`` (tuner/model_folder.py) and gives it none.

``tuner serve`` starts it as ``uvicorn --factory tuner.serving:create_app`` with the model folder
in the child's environment variable :data:`MODEL_ENV`.
"""

from __future__ import annotations

import io
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


#: The keys of MLflow's scoring protocol that hold the rows (a request has exactly one of them).
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
EXPECTED = ('expected a JSON object with "dataframe_split" or "dataframe_records" '
            '(or "instances", "inputs"), as in serving_input_example.json')
NO_ROWS = "no rows to predict: the request holds no rows"


class Refused(ValueError):
    """A request answered with HTTP 400 and this one-line message."""


def check_request(body: bytes) -> None:
    """Refuse (:class:`Refused`) a JSON body that is not a scoring request or holds no rows."""
    if not body.strip():
        raise Refused(f"empty request: {EXPECTED}")
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(f"the request is not JSON: {EXPECTED}") from None
    if not isinstance(decoded, dict):
        raise Refused(f"the request is not a JSON object: {EXPECTED}")
    keys = [key for key in FORMATS if key in decoded]
    if len(keys) != 1:
        found = ", ".join(json.dumps(key) for key in decoded) or "none"
        raise Refused(f"not a scoring request (keys: {found}): {EXPECTED}")
    rows = decoded[keys[0]]
    if keys[0] == "dataframe_split" and isinstance(rows, dict):
        rows = rows.get("data")
    if isinstance(rows, dict) and rows and all(value == [] for value in rows.values()):
        rows = []  # "inputs" as columns, each without values
    if rows in ([], {}):
        raise Refused(NO_ROWS)


def csv_as_json(body: bytes) -> bytes:
    """A CSV body as a JSON ``dataframe_split`` request, its columns typed as ``pd.read_csv``
    types them (missing values as ``null``)."""
    import pandas as pd

    if not body.strip():
        raise Refused(NO_ROWS)
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise Refused(f"the request is not CSV: {' '.join(str(exc).split())}") from None
    cells = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    split = {"columns": [str(c) for c in frame.columns], "data": cells}
    return json.dumps({"dataframe_split": split}, default=lambda v: v.item() if hasattr(v, "item") else str(v)).encode()


class CheckedRequests:
    """ASGI middleware for ``POST /invocations``: refuses a body that is not a scoring request or
    holds no rows (:func:`check_request`) with HTTP 400 and one line, and passes a CSV body on as
    JSON (:func:`csv_as_json`). Other requests pass as they are."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/invocations" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        body = await _read_body(receive)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        try:
            if content_type == "text/csv":
                body = csv_as_json(body)
                headers[b"content-type"] = b"application/json"
                headers[b"content-length"] = str(len(body)).encode()
                scope = scope | {"headers": list(headers.items())}
            elif content_type == "application/json":
                check_request(body)
        except Refused as exc:
            return await _refuse(send, str(exc))
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """An ASGI ``receive`` that gives ``body`` once, then what ``receive`` gives."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send, message: str) -> None:
    content = json.dumps({"error_code": "BAD_REQUEST", "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def create_app(model_dir: str | None = None):
    """MLflow's scoring app for ``model_dir`` (default: ``$TUNER_SERVE_MODEL``) whose client
    errors on ``/invocations`` carry :func:`short_message` and no stack trace, behind
    :class:`CheckedRequests`."""
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

    app.add_middleware(CheckedRequests)
    return app
