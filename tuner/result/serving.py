"""The HTTP app of ``tuner serve``: MLflow's scoring server for an exported model, with short
errors.

MLflow's scoring server answers a bad request (a missing column, a value of the wrong type) with
the request's whole DataFrame, and often the model's schema, inside the message: ``Failed to
predict data '<frame>' ... Error: Incompatible input types for column ash. ...``. For a request of
many rows that is pages of text around the one line that matters. This app is the same server
(same routes, same request and answer formats, built by ``mlflow.pyfunc.scoring_server.init``)
whose error answers from ``/invocations`` keep only that line (:func:`short_message`).

Two kinds of request are answered before MLflow sees them (:class:`CheckedRequests`): a body that is
not a scoring request (empty, not JSON, not an object, none of the protocol's keys) gets one line
saying what is expected, where MLflow answers with its long note on the protocol of MLflow 2.0; a
request without rows is told so. A CSV body (``Content-Type: text/csv``) is read as ``pd.read_csv``
reads a file and passed on as JSON: MLflow reads CSV with the column types of the signature, which
declares its columns ``Any`` (:mod:`tuner.result.model_folder`) and gives it none.

Serving a folder runs no code from it: the app's model is built from this installation's code
(:func:`load_installed`: ``model.load`` reads ``model.npz``, plain arrays checked before they
are read, and :class:`tuner.result.pyfunc_model.TunedMLPModel` wraps it), not from the folder's
``pyfunc_model.py`` and ``code/``, which ``mlflow.pyfunc.load_model`` would import. Request
bodies are limited in size (:data:`MAX_BODY_BYTES`, HTTP 413), and no answer repeats more than a
short piece of what was sent (:data:`MAX_MESSAGE`).

``tuner serve`` starts it as ``uvicorn --factory tuner.result.serving:create_app`` with the model
folder in the child's environment variable :data:`MODEL_ENV`.
"""

from __future__ import annotations

import io
import json
import os
import re

#: The environment variable that names the model folder for :func:`create_app`.
MODEL_ENV = "TUNER_SERVE_MODEL"
#: The environment variable that sets :data:`MAX_BODY_BYTES` for :func:`create_app`.
MAX_BODY_ENV = "TUNER_SERVE_MAX_BODY_MB"
#: The largest request body accepted, by default (64 MB: about a million rows of ten numbers).
MAX_BODY_BYTES = 64 * 2**20
#: The longest error message an answer carries: a message that quotes a value keeps its start.
MAX_MESSAGE = 300


#: The parts of MLflow's scoring errors that repeat the request (and the schema) before saying
#: what is wrong: the predict wrapper of the scoring server, then schema enforcement.
REQUEST_DUMPS = (
    re.compile(r"^Failed to predict data '.*?'\. \nError: ", re.S),
    re.compile(r"^Failed to enforce schema of data '.*?' with schema '.*?'\. Error: ", re.S),
)


def short_message(message: str) -> str:
    """What is wrong, from a scoring error message: without the request and schema MLflow puts
    before it, without its long hint, on one line of at most :data:`MAX_MESSAGE` characters."""
    for dump in REQUEST_DUMPS:
        message = dump.sub("", message, count=1)
    return clipped(" ".join(message.split(" Hint:", 1)[0].split()))


def clipped(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE` characters, marked where it was cut."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


#: The keys of MLflow's scoring protocol that hold the rows (a request has exactly one of them).
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
EXPECTED = (
    'expected a JSON object with "dataframe_split" or "dataframe_records" '
    '(or "instances", "inputs"), as in serving_input_example.json'
)
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
    return json.dumps(
        {"dataframe_split": split}, default=lambda v: v.item() if hasattr(v, "item") else str(v)
    ).encode()


class TooLarge(Exception):
    """A request body over the size limit (HTTP 413)."""


class CheckedRequests:
    """ASGI middleware for ``POST /invocations``: refuses a body over ``max_body`` bytes with
    HTTP 413, a body that is not a scoring request or holds no rows (:func:`check_request`) with
    HTTP 400 and one line, and passes a CSV body on as JSON (:func:`csv_as_json`). Other requests
    pass as they are."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/invocations" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(receive, self.max_body)
        except TooLarge:
            limit = f"{self.max_body / 2**20:.3g} MB"
            return await _refuse(
                send, f"request too large: over {limit}; send fewer rows per request", 413
            )
        headers = dict(scope["headers"])
        content_type = (
            headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        )
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


async def _read_body(receive, limit: int) -> bytes:
    """The request body, read until it ends or passes ``limit`` bytes (:class:`TooLarge`)."""
    chunks, more, size = [], True, 0
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise TooLarge
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


async def _refuse(send, message: str, status: int = 400) -> None:
    code = "BAD_REQUEST" if status == 400 else "REQUEST_TOO_LARGE"
    content = json.dumps({"error_code": code, "message": clipped(message)}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


def create_app(model_dir: str | None = None):
    """MLflow's scoring app for ``model_dir`` (default: ``$TUNER_SERVE_MODEL``) whose client
    errors on ``/invocations`` carry :func:`short_message` and no stack trace, behind
    :class:`CheckedRequests`."""
    from fastapi import Request
    from fastapi.responses import Response
    from mlflow.pyfunc import scoring_server

    app = scoring_server.init(load_installed(model_dir or os.environ[MODEL_ENV]))

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

    max_body = int(float(os.environ.get(MAX_BODY_ENV, MAX_BODY_BYTES / 2**20)) * 2**20)
    app.add_middleware(CheckedRequests, max_body=max_body)
    return app


class _InstalledModel:
    """What a ``PyFuncModel`` calls to predict: this installation's ``TunedMLPModel``."""

    def __init__(self, python_model):
        self.python_model = python_model

    def predict(self, data, params=None):
        return self.python_model.predict(None, data, params)


def load_installed(model_dir: str):
    """The exported model in ``model_dir`` as a ``PyFuncModel`` built from this installation's
    code: its ``MLmodel`` (signature, metadata) and its ``model.npz`` through ``model.load``;
    nothing from the folder is imported."""
    from types import SimpleNamespace

    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    from tuner.result.pyfunc_model import ARTIFACT_NAME, TunedMLPModel

    folder = os.path.abspath(model_dir)
    meta = Model.load(os.path.join(folder, "MLmodel"))
    artifact = os.path.realpath(
        os.path.join(folder, meta.flavors["python_function"]["artifacts"][ARTIFACT_NAME]["path"])
    )
    if os.path.commonpath([artifact, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise ValueError(f"{model_dir}: the MLmodel file names weights outside the folder")
    python_model = TunedMLPModel()
    python_model.load_context(SimpleNamespace(artifacts={ARTIFACT_NAME: artifact}))
    return PyFuncModel(model_meta=meta, model_impl=_InstalledModel(python_model))
