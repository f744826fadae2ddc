"""The exported model predicts on what ``pd.read_csv`` gives for new rows: integer columns with
and without gaps, whole numbers in a column of floats, a text column with a blank, in process
(``mlflow.pyfunc``, ``model.load``) and over HTTP (the app ``tuner serve`` runs, and MLflow's own
scoring app); its example input is strict JSON; a request without rows, or a body that is not a
request, gets one short line and HTTP 400.

The model folder is written once per module from a two-epoch network (a few seconds).
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model
from sklearn.pipeline import Pipeline

import model
from tests.helpers import post_json, served_in_thread, small_classifier
from tuner.study.config import StudyConfig
from tuner.data.loading import load_splits
from tuner.result.model_folder import write_model_folder
from tuner.result.serving import create_app

pytestmark = pytest.mark.xdist_group("predict_ordinary_data")

COLUMNS = ["count", "age", "income", "city"]
#: New rows as a user writes them: integers only (no gap anywhere, whole incomes).
WHOLE = "count,age,income,city\n3,40,50,rome\n4,41,51,paris\n0,77,38,oslo\n"
#: New rows with gaps: an integer column with an empty cell, a blank text cell.
GAPS = "count,age,income,city\n3,40,50.5,rome\n4,,51,\n5,33,49.25,oslo\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A classification model folder trained on a CSV with an integer column, an integer column
    with gaps (float64 when read), a float column and a text column."""
    tmp = tmp_path_factory.mktemp("ordinary")
    rng = np.random.default_rng(0)
    n = 80
    age = rng.integers(18, 80, n).astype(float)
    age[::7] = np.nan
    frame = pd.DataFrame({
        "count": rng.integers(0, 9, n), "age": age, "income": rng.normal(50, 10, n).round(2),
        "city": rng.choice(["paris", "rome", "oslo"], n), "y": rng.choice(["a", "b"], n),
    })
    frame.to_csv(tmp / "train.csv", index=False)
    data = {"source": str(tmp / "train.csv"), "target": "y", "task": "classification"}
    splits = load_splits(StudyConfig.model_validate({"name": "t", "data": data, "space": {"batch_size": [8]}}))
    assert splits.X_train["count"].dtype == np.int64 and splits.X_train["age"].dtype == np.float64
    with pytest.warns(Warning):  # two epochs do not converge
        estimator = small_classifier(max_epochs=2, random_state=0).fit(splits.Xt_train, splits.y_train)
    pipeline = Pipeline([("preprocess", splits.preprocessor), ("mlp", estimator)])
    return write_model_folder(tmp / "model", pipeline, splits, {"study": "t"})


@pytest.fixture(scope="module")
def served(folder):
    """The base URL of the app `tuner serve` runs for the folder, on a thread of this process."""
    with served_in_thread(create_app(str(folder))) as url:
        yield url


def read(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


def test_new_rows_are_typed_as_a_user_gets_them():
    whole, gaps = read(WHOLE), read(GAPS)
    assert {c: str(whole[c].dtype) for c in COLUMNS[:3]} == {"count": "int64", "age": "int64", "income": "int64"}
    assert gaps["age"].dtype == np.float64 and gaps["age"].isna().any() and gaps["city"].isna().any()


@pytest.mark.parametrize("text", [WHOLE, GAPS], ids=["whole", "gaps"])
def test_pyfunc_and_model_load_predict_read_csv_output(folder, text):
    rows = read(text)
    expected = model.load(folder).predict(rows)
    assert len(expected) == len(rows) and set(expected) <= {"a", "b"}
    pyfunc = mlflow.pyfunc.load_model(str(folder))
    np.testing.assert_array_equal(pyfunc.predict(rows), expected)
    proba = pyfunc.predict(rows, params={"predict_proba": True})
    np.testing.assert_array_equal(proba.to_numpy(), model.load(folder).predict_proba(rows))
    # a column more (the target, an id) is left aside
    np.testing.assert_array_equal(pyfunc.predict(rows.assign(y="a", id=range(len(rows)))), expected)


def test_columns_and_values_are_still_checked_in_one_line(folder):
    pyfunc = mlflow.pyfunc.load_model(str(folder))
    rows = read(GAPS)
    with pytest.raises(mlflow.exceptions.MlflowException) as missing:
        pyfunc.predict(rows.rename(columns={"age": "Age"}))
    assert missing.value.message == "invalid input: missing column(s): 'age'"
    with pytest.raises(mlflow.exceptions.MlflowException) as text:
        pyfunc.predict(rows.assign(income=["x", "1", "2"]))
    assert text.value.message == "invalid input: column 'income' should be numeric but holds 'x'"
    with pytest.raises(mlflow.exceptions.MlflowException, match="^no rows to predict"):
        pyfunc.predict(rows.head(0))


def test_signature_names_every_column_and_takes_any_type(folder):
    inputs = Model.load(str(folder)).signature.inputs.inputs
    assert [c.name for c in inputs] == COLUMNS
    assert {repr(c.type) for c in inputs} == {"Any"} and not any(c.required for c in inputs)


def test_example_inputs_are_strict_json_with_null_for_a_missing_value(folder):
    def refuse(constant):
        pytest.fail(f"not JSON: {constant}")

    for name in ("input_example.json", "serving_input_example.json"):
        parsed = json.loads((folder / name).read_text(), parse_constant=refuse)
        split = parsed.get("dataframe_split", parsed)
        assert split["columns"] == COLUMNS
        assert any(cell is None for row in split["data"] for cell in row), name
    example = json.loads((folder / "serving_input_example.json").read_text())
    rows = pd.DataFrame(example["dataframe_split"]["data"], columns=COLUMNS)
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(str(folder)).predict(rows), model.load(folder).predict(rows))


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def as_requests(rows: pd.DataFrame) -> list[dict]:
    """The rows as JSON requests, as pandas writes them (integers stay integers, NaN is null)."""
    return [{"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
            {"dataframe_records": json.loads(rows.to_json(orient="records"))}]


@pytest.mark.parametrize("app", ["tuner", "mlflow"])
def test_served_json_from_read_csv_output(folder, app):
    """Over HTTP, through the app `tuner serve` runs and through MLflow's own scoring app (what
    `mlflow models serve` runs): the answers are those of model.load."""
    from mlflow.pyfunc import scoring_server

    if app == "tuner":
        server = create_app(str(folder))
    else:
        server = scoring_server.init(scoring_server.load_model_with_mlflow_config(str(folder)))
    with served_in_thread(server) as url:
        for text in (WHOLE, GAPS):
            rows = read(text)
            for body in as_requests(rows):
                assert ("null" in json.dumps(body)) == (text == GAPS)
                status, answer = post_json(f"{url}/invocations", body)
                assert status == 200, answer
                assert answer["predictions"] == list(model.load(folder).predict(rows))


def test_tuner_serve_reads_a_csv_body_as_read_csv_does(folder, served):
    for text in (WHOLE, GAPS):
        status, answer = post(f"{served}/invocations", text.encode(), "text/csv")
        assert status == 200, answer
        assert answer["predictions"] == list(model.load(folder).predict(read(text)))
    status, answer = post(f"{served}/invocations", b"count,age,income,city\n", "text/csv")
    assert status == 400 and answer["message"].startswith("no rows to predict")


EXPECTED = ('expected a JSON object with "dataframe_split" or "dataframe_records" '
            '(or "instances", "inputs"), as in serving_input_example.json')


@pytest.mark.parametrize(("body", "message"), [
    (b'{"dataframe_records": []}', "no rows to predict: the request holds no rows"),
    (b'{"dataframe_split": {"columns": ["count", "age", "income", "city"], "data": []}}',
     "no rows to predict: the request holds no rows"),
    (b'{"instances": []}', "no rows to predict: the request holds no rows"),
    (b"", f"empty request: {EXPECTED}"),
    (b"  \n", f"empty request: {EXPECTED}"),
    (b"{}", f"not a scoring request (keys: none): {EXPECTED}"),
    (b'{"rows": [{"count": 1}]}', f'not a scoring request (keys: "rows"): {EXPECTED}'),
    (b'{"dataframe_records": [], "inputs": []}',
     f'not a scoring request (keys: "dataframe_records", "inputs"): {EXPECTED}'),
    (b"count,age\n1,2\n", f"the request is not JSON: {EXPECTED}"),
    (b"\xff\xfe", f"the request is not JSON: {EXPECTED}"),
    (b"[1, 2]", f"the request is not a JSON object: {EXPECTED}"),
], ids=["records", "split", "instances", "empty", "blank", "object", "wrong-key", "two-keys", "csv-as-json",
        "not-utf8", "list"])
def test_tuner_serve_answers_a_bad_request_in_one_line(served, body, message):
    status, answer = post(f"{served}/invocations", body, "application/json")
    assert status == 400
    assert answer["message"] == message and "\n" not in answer["message"] and len(answer["message"]) < 200


def test_serving_a_folder_runs_no_code_from_it(folder, tmp_path):
    """The app is built from this installation's code: a folder whose pyfunc_model.py and
    code/model/ were replaced by hostile code is served without running either."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    marker = tmp_path / "ran"
    hostile = f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit('hostile code ran')\n"
    (copy / "pyfunc_model.py").write_text(hostile)
    (copy / "code" / "model" / "__init__.py").write_text(hostile)
    with served_in_thread(create_app(str(copy))) as url:
        status, answer = post(f"{url}/invocations", WHOLE.encode(), "text/csv")
    assert status == 200, answer
    assert answer["predictions"] == list(model.load(folder).predict(read(WHOLE)))
    assert not marker.exists()


def test_a_body_over_the_size_limit_is_refused_with_413(folder, monkeypatch):
    from tuner.result.serving import MAX_BODY_ENV

    monkeypatch.setenv(MAX_BODY_ENV, "0.01")  # about 10 kB
    rows = "".join(f"{i % 9},40,50,rome\n" for i in range(2000))
    with served_in_thread(create_app(str(folder))) as url:
        status, answer = post(f"{url}/invocations", ("count,age,income,city\n" + rows).encode(), "text/csv")
        small_status, _ = post(f"{url}/invocations", WHOLE.encode(), "text/csv")
    assert status == 413 and answer["message"].startswith("request too large: over 0.01 MB")
    assert small_status == 200


@pytest.mark.parametrize("body", [
    {"dataframe_records": [{"count": "x" * 100_000, "age": 1, "income": 2, "city": "rome"}]},
    {"k" * 50_000: 1},
], ids=["bad-value", "long-key"])
def test_an_answer_never_echoes_a_large_request(served, body):
    status, answer = post(f"{served}/invocations", json.dumps(body).encode(), "application/json")
    assert status == 400
    assert len(answer["message"]) <= 300 and "\n" not in answer["message"]
