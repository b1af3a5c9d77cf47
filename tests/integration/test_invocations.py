"""MLflow's scoring protocol (``POST /invocations``) against a real uvicorn server on 127.0.0.1.

The payloads are the ones MLflow's documentation and clients send (``mlflow
models serve`` docs, ``ScoringServerClient``/``dump_input_data``: a pandas
frame as ``to_dict(orient="split")``, index included); the answers must be
what an MLflow client reads (``{"predictions": [...]}``) and agree with
``/predict``, errors must carry MLflow's ``error_code``/``message`` beside
mlcycle's ``error``/``why``/``fix``, and every scored row must be logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from serve_fixtures import FEATURES, build_bundle, good_record, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.serve import ModelRuntime, PredictionLog, ServeSettings, create_app
from mlcycle.serve.http.parsing_mlflow import CSV_FALSE, CSV_TRUE, invocation_predict_fn
from mlcycle.serve.model import InputError

JSON = {"content-type": "application/json"}
ROWS = [good_record(i) for i in range(4)]
FRAME = pd.DataFrame(ROWS)[FEATURES]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("invocations"), n=400)


@pytest.fixture(scope="module")
def client(bundle: Path) -> Iterator[httpx.Client]:
    app = create_app(ModelRuntime.load(bundle, version=4), ServeSettings(max_body_bytes=100_000))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def expected(client: httpx.Client) -> dict[str, Any]:
    """What /predict answers for ROWS: the reference every MLflow form must agree with."""
    answer = client.post("/predict", json=ROWS, headers=JSON)
    assert answer.status_code == 200, answer.text
    return answer.json()


def invoke(client: httpx.Client, body: Any, content_type: str = "application/json") -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/invocations", content=content, headers={"content-type": content_type})


def assert_mlflow_error(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    # What MLflow's error handling reads, and mlcycle's own error shape.
    assert body["error_code"] == "BAD_REQUEST"
    assert body["error"] and body["error"] in body["message"] and body["fix"] in body["message"]
    assert {"why", "fix", "details", "request_id"} <= set(body)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if field is not None:
        assert field in [d["field"] for d in body["details"]], body
    return body


# --- what MLflow clients send -------------------------------------------------------


def mlflow_payloads() -> dict[str, Any]:
    """Each request shape of MLflow's docs and clients, for the rows ROWS."""
    split = FRAME.to_dict(orient="split")  # what ScoringServerClient sends: index included
    return {
        "dataframe_split (client, with index)": {"dataframe_split": split},
        "dataframe_split (docs, no index)": {
            "dataframe_split": {"columns": split["columns"], "data": split["data"]}
        },
        "dataframe_records": {"dataframe_records": FRAME.to_dict(orient="records")},
        "instances: records": {"instances": ROWS},
        "instances: rows": {"instances": FRAME.values.tolist()},
        "inputs: rows (docs curl)": {"inputs": FRAME.values.tolist()},
        "inputs: columns (dump_input_data of a dict)": {
            "inputs": {k: FRAME[k].tolist() for k in FEATURES}
        },
        "inputs: records": {"inputs": ROWS},
        "params predict_fn=predict": {
            "dataframe_records": ROWS,
            "params": {"predict_fn": "predict"},
        },
    }


@pytest.mark.parametrize("form", list(mlflow_payloads()))
def test_every_mlflow_payload_form_answers_as_predict(
    client: httpx.Client, expected: dict[str, Any], form: str
) -> None:
    # "application/json;" is the header of MLflow's own curl example.
    response = invoke(client, mlflow_payloads()[form], "application/json;")
    assert response.status_code == 200, response.text
    # Exactly MLflow's pyfunc shape for a scikit-learn classifier: the labels, nothing else.
    assert response.json() == {"predictions": expected["predictions"]}
    assert response.headers["x-model-version"] == "4"
    assert response.headers["x-model-name"] == "flights"


def test_an_mlflow_scoring_client_session(client: httpx.Client, expected: dict) -> None:
    """What mlflow.pyfunc's ScoringServerClient does: wait on /ping, read /version, invoke."""
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code == 200
    version = client.get("/version")
    assert version.status_code == 200 and version.text.strip()
    response = client.post(
        "/invocations",
        content=json.dumps({"dataframe_split": FRAME.to_dict(orient="split")}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    # PredictionsResponse.get_predictions("dataframe") reads "predictions" into a frame.
    predictions = pd.DataFrame(response.json()["predictions"])
    assert predictions[0].tolist() == expected["predictions"]


@pytest.mark.parametrize("content_type", ["text/csv", "application/csv", "text/csv; charset=utf-8"])
def test_csv_answers_as_json_does(
    client: httpx.Client, expected: dict[str, Any], content_type: str
) -> None:
    for body in (FRAME.to_csv(), FRAME.to_csv(index=False)):  # with pandas' index column, or not
        response = invoke(client, body.encode(), content_type)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": expected["predictions"]}


def test_missing_values_as_mlflow_clients_send_them(client: httpx.Client) -> None:
    # A pandas frame with gaps, encoded by json.dumps as MLflow's client does: bare NaN tokens.
    rows = [{**good_record(1), "origin": None, "dep_delay": None}, good_record(2)]
    as_json = client.post("/predict", json=rows, headers=JSON).json()["predictions"]
    content = json.dumps({"dataframe_split": pd.DataFrame(rows).to_dict(orient="split")})
    assert "NaN" in content
    response = invoke(client, content.encode())
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == as_json


def test_csv_nulls_are_empty_cells(client: httpx.Client) -> None:
    rows = [{**good_record(1), "origin": None, "dep_delay": None}]
    as_json = client.post("/predict", json=rows, headers=JSON).json()["predictions"]
    response = invoke(client, pd.DataFrame(rows).to_csv(index=False).encode(), "text/csv")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == as_json


def test_csv_booleans_read_as_the_batch_job_reads_them(client: httpx.Client) -> None:
    from mlcycle.serve.model import coerce

    assert (CSV_TRUE, CSV_FALSE) == (coerce._TRUE, coerce._FALSE)
    yes = FRAME.head(1).assign(weekend="yes").to_csv(index=False).encode()
    true = FRAME.head(1).assign(weekend=True).to_csv(index=False).encode()
    assert invoke(client, yes, "text/csv").json() == invoke(client, true, "text/csv").json()
    maybe = FRAME.head(1).assign(weekend="maybe").to_csv(index=False).encode()
    assert_mlflow_error(invoke(client, maybe, "text/csv"), 422, "weekend")


def test_probabilities_on_request(client: httpx.Client, expected: dict[str, Any]) -> None:
    body = {"dataframe_records": ROWS, "params": {"predict_fn": "predict_proba"}}
    answer = invoke(client, body).json()
    np.testing.assert_allclose(answer["predictions"], expected["probabilities"])
    assert answer["classes"] == expected["classes"]
    # CSV has no params: the query argument says the same.
    csv = client.post(
        "/invocations?predict_fn=predict_proba",
        content=FRAME.to_csv(index=False).encode(),
        headers={"content-type": "text/csv"},
    ).json()
    np.testing.assert_allclose(csv["predictions"], expected["probabilities"])


def test_a_regressor_has_no_probabilities(tmp_path: Path) -> None:
    runtime = ModelRuntime.load(build_bundle(tmp_path, task="regression", n=300))
    assert invocation_predict_fn(runtime, {"predict_fn": "predict"}, None) == "predict"
    with pytest.raises(InputError, match="no class probabilities"):
        invocation_predict_fn(runtime, {"predict_fn": "predict_proba"}, None)


def test_out_of_range_is_flagged_as_on_predict(client: httpx.Client) -> None:
    far = {**good_record(2), "distance": 9000}  # the contract's range is 50-5000
    answer = invoke(client, {"dataframe_records": [good_record(1), far]}).json()
    assert answer["warnings"][0] == []
    assert answer["warnings"][1][0]["column"] == "distance"
    assert 'mlcycle_out_of_range_total{column="distance"}' in client.get("/metrics").text


# --- bad requests -------------------------------------------------------------------

RECORD = good_record(0)
BAD_JSON: dict[str, tuple[Any, str]] = {
    "unknown key": ({"dataframe_recordz": [RECORD]}, "dataframe_recordz"),
    "two format keys": ({"dataframe_records": [RECORD], "instances": [RECORD]}, "instances"),
    "no format key": ({"params": {}}, "body"),
    "a /predict body": ({"columns": FEATURES, "data": [[1, 2, "AA", "ATL", True]]}, "columns"),
    "a bare list": ([RECORD], "body"),
    "wrong column": (
        {"dataframe_split": {"columns": ["dep_delay", "distanse"], "data": [[1.0, 300]]}},
        "distance",
    ),
    "short row": ({"dataframe_split": {"columns": FEATURES, "data": [[1.0, 300]]}}, None),
    "index of another length": (
        {"dataframe_split": {"columns": FEATURES, "data": [list(RECORD.values())], "index": []}},
        "dataframe_split.index",
    ),
    "split without data": ({"dataframe_split": {"columns": FEATURES}}, "dataframe_split.data"),
    "positional row of the wrong width": ({"instances": [[1.0, 300, "AA"]]}, "instances[0]"),
    "records and rows mixed": ({"inputs": [RECORD, list(RECORD.values())]}, "inputs[1]"),
    "columns of different lengths": ({"inputs": {"distance": [1, 2], "carrier": ["AA"]}}, None),
    "records not a list": ({"dataframe_records": RECORD}, "dataframe_records"),
    "empty batch": ({"dataframe_records": []}, None),
    "wrong type": ({"dataframe_records": [{**RECORD, "dep_delay": "fast"}]}, "dep_delay"),
    "unseen category": ({"instances": [{**RECORD, "carrier": "ZZ"}]}, "carrier"),
    "unknown predict_fn": (
        {"dataframe_records": [RECORD], "params": {"predict_fn": "predict_log_proba"}},
        "params.predict_fn",
    ),
    "unknown param": (
        {"dataframe_records": [RECORD], "params": {"temperature": 0.5}},
        "params.temperature",
    ),
}


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_payloads_are_422_naming_the_field(client: httpx.Client, case: str) -> None:
    body, field = BAD_JSON[case]
    assert_mlflow_error(invoke(client, body), 422, field)


def test_bad_payload_errors_say_what_to_do(client: httpx.Client) -> None:
    predict_body = BAD_JSON["a /predict body"][0]
    assert "/predict" in assert_mlflow_error(invoke(client, predict_body), 422)["fix"]
    two = assert_mlflow_error(invoke(client, BAD_JSON["two format keys"][0]), 422)
    assert "exactly one" in two["why"]


@pytest.mark.parametrize("content", [b"", b'{"dataframe_records": [', b"\xff\xfe"])
def test_malformed_json_is_400(client: httpx.Client, content: bytes) -> None:
    assert_mlflow_error(invoke(client, content), 400)


@pytest.mark.parametrize(
    ("content", "status", "field"),
    [
        (b"", 422, "body"),
        (b"dep_delay,distance\n1.0,300\n", 422, "carrier"),
        (FRAME.to_csv(index=False).encode() + b"1.0,2\n", 422, "line 6"),
        (FRAME.to_csv(index=False).replace("AA", "ZZ", 1).encode(), 422, "carrier"),
        (FRAME.to_csv(index=False).replace("-5.0", "fast", 1).encode(), 422, "dep_delay"),
        (b"dep_delay,dep_delay\n1,2\n", 422, "header"),
        ("carrier\nAé\n".encode("latin-1"), 400, None),
    ],
)
def test_bad_csv(client: httpx.Client, content: bytes, status: int, field: str | None) -> None:
    assert_mlflow_error(invoke(client, content, "text/csv"), status, field)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; format=pandas-split",  # MLflow 1.x clients
        "application/json; charset=latin-1",
    ],
)
def test_other_content_types_are_415(client: httpx.Client, content_type: str) -> None:
    assert_mlflow_error(invoke(client, {"dataframe_records": [RECORD]}, content_type), 415)


def test_metrics_count_invocations(client: httpx.Client) -> None:
    invoke(client, {"dataframe_records": [RECORD]})
    invoke(client, {"dataframe_recordz": [RECORD]})
    text = client.get("/metrics").text
    assert 'mlcycle_requests_total{route="/invocations",code="200"}' in text
    assert 'mlcycle_request_errors_total{route="/invocations",code="422"}' in text


def test_openapi_and_docs_describe_invocations(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/invocations"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert {"200", "400", "415", "422"} <= set(operation["responses"])
    assert {"/ping", "/health", "/version"} <= set(doc["paths"])
    assert "/invocations" in client.get("/docs").text


# --- the prediction log and shadow scoring ------------------------------------------


def read_log(root: Path) -> pd.DataFrame:
    files = sorted(root.rglob("*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def test_rows_are_logged_with_ids_and_shadowed(tmp_path: Path) -> None:
    # Ordinal-encoded, as mlcycle builds tree models: a null category is NaN in the compiled
    # path's matrix, like an unknown one, so the log reads that row back from the request
    # body, parsed again by the invocations decoder (JSON and CSV alike).
    champion = build_bundle(tmp_path / "champion", n=300, encoder="ordinal")
    challenger = build_bundle(tmp_path / "challenger", n=300, seed=1)
    log = PredictionLog(tmp_path / "log")
    app = create_app(
        ModelRuntime.load(champion, version=4),
        ServeSettings(shadow=True),
        challenger=ModelRuntime.load(challenger, version=5),
        prediction_log=log,
    )
    rows = [{**good_record(i), "flight_id": f"F{i}"} for i in range(3)]
    rows[1]["origin"] = None
    columns = list(rows[0])
    split = {"columns": columns, "data": [[r[k] for k in columns] for r in rows]}
    # json.dumps as MLflow's client does it: pandas' gaps go out as bare NaN tokens.
    nan_split = pd.DataFrame(rows).to_dict(orient="split")
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        sent = {
            "json": c.post("/invocations", json={"dataframe_split": split}),
            "csv": c.post(
                "/invocations",
                content=pd.DataFrame(rows).to_csv().encode(),
                headers={"content-type": "text/csv"},
            ),
            "nan": c.post("/invocations", content=json.dumps({"dataframe_split": nan_split})),
        }
        bare = c.post("/invocations", json={"instances": FRAME.values.tolist()[:2]})
        refused = c.post("/invocations", json={"dataframe_records": [{"distance": 1}]})
        for r in (*sent.values(), bare):
            assert r.status_code == 200, r.text
        assert refused.status_code == 422
        time.sleep(0.2)  # the shadow predictions run in the background
    assert "NaN" in sent["nan"].request.content.decode()
    frame = read_log(tmp_path / "log")
    ids = {name: r.headers["x-request-id"] for name, r in sent.items()}
    bare_id = bare.headers["x-request-id"]
    champion_rows = frame[frame.role == "champion"]
    by_request = champion_rows.groupby("request_id")["row_id"].apply(list).to_dict()
    assert by_request == {
        **{rid: ["F0", "F1", "F2"] for rid in ids.values()},
        bare_id: [f"{bare_id}:0", f"{bare_id}:1"],  # no id column: request id + index
    }
    labels = [str(p) for p in sent["json"].json()["predictions"]]
    for rid in ids.values():
        logged = champion_rows[champion_rows.request_id == rid].sort_values("row_id")
        assert logged["origin"].isna().tolist() == [False, True, False]
        assert logged["carrier"].tolist() == [r["carrier"] for r in rows]
        assert logged["distance"].tolist() == [float(r["distance"]) for r in rows]
        assert logged["prediction"].tolist() == labels
    assert (champion_rows.model_version == 4).all()
    shadow = frame[frame.role == "shadow"]
    assert set(shadow.request_id) == {*ids.values(), bare_id}
    assert (shadow.model_version == 5).all() and len(shadow) == 11


def test_the_predict_token_guards_invocations_not_ping(bundle: Path) -> None:
    app = create_app(ModelRuntime.load(bundle), ServeSettings(predict_token="t0ken"))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        refused = c.post("/invocations", json={"dataframe_records": ROWS})
        assert refused.status_code == 401
        assert refused.json()["error_code"] == "UNAUTHENTICATED"
        assert refused.json()["message"]
        allowed = c.post(
            "/invocations",
            json={"dataframe_records": ROWS},
            headers={"Authorization": "Bearer t0ken"},
        )
        assert allowed.status_code == 200, allowed.text
        assert c.get("/ping").status_code == 200  # health checks stay open
