"""The REST service against a real uvicorn server on 127.0.0.1 (both protocols, every bad input)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serve_fixtures import FEATURES, build_bundle, good_record, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.serve import ModelRuntime, ServeSettings, create_app
from mlcycle.serve.http import JSONResponse

MAX_BODY = 200_000
DATATYPES = {"dep_delay": "FP64", "distance": "INT64", "weekend": "BOOL"}
# The clients here say their bodies are JSON (as httpx's json= does); the 415 tests send
# other content types on requests of their own.
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    return ModelRuntime.load(build_bundle(tmp_path_factory.mktemp("reject")), version=4)


@pytest.fixture(scope="module")
def client(runtime: ModelRuntime) -> Iterator[httpx.Client]:
    app = create_app(runtime, ServeSettings(max_body_bytes=MAX_BODY, request_log=True))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        yield c


@pytest.fixture(scope="module")
def lenient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    folder = build_bundle(tmp_path_factory.mktemp("unknown"), unseen="unknown")
    app = create_app(ModelRuntime.load(folder))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        yield c


def infer_body(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": DATATYPES.get(name, "BYTES"),
                "data": [r[name] for r in records],
            }
            for name in FEATURES
        ],
        **extra,
    }


def expected_proba(runtime: ModelRuntime, records: list[dict[str, Any]]) -> np.ndarray:
    frame = pd.DataFrame(records)[FEATURES].astype(
        {"dep_delay": float, "distance": float, "carrier": "str", "origin": "str"}
    )
    return np.asarray(runtime.model.predict_proba(frame))


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {"error", "why", "fix", "details", "request_id"} <= set(body)
    assert "Traceback" not in response.text
    if field is not None:
        assert field in [d["field"] for d in body["details"]], body
        assert field in body["error"] + body["why"] + json.dumps(body["details"])
    return body


# --- health and metadata ------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "mlcycle"


def test_model_metadata(client: httpx.Client) -> None:
    body = client.get("/v2/models/flights").json()
    assert body["name"] == "flights"
    assert body["versions"] == ["4"]
    assert body["platform"] == "mlcycle-sklearn"
    assert [i["name"] for i in body["inputs"]] == FEATURES
    assert {i["name"]: i["datatype"] for i in body["inputs"]} == {
        "dep_delay": "FP64",
        "distance": "FP64",
        "carrier": "BYTES",
        "origin": "BYTES",
        "weekend": "BOOL",
    }
    assert all(i["shape"] == [-1] for i in body["inputs"])
    assert [o["name"] for o in body["outputs"]] == ["predictions", "probabilities"]
    assert body["outputs"][1]["shape"] == [-1, 2]
    assert client.get("/v2/models/flights/versions/4").status_code == 200
    assert client.get("/v2/models/flights/ready").json() == {"name": "flights", "ready": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/other"),
        ("GET", "/v2/models/other/ready"),
        ("POST", "/v2/models/other/infer"),
        ("GET", "/v2/models/flights/versions/9"),
        ("POST", "/v2/models/flights/versions/9/infer"),
        ("GET", "/no/such/route"),
    ],
)
def test_unknown_model_or_route_is_404_json(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path, json=infer_body([good_record(0)]))
    assert_problem(response, 404)


def test_wrong_method_is_405_json(client: httpx.Client) -> None:
    assert_problem(client.get("/predict"), 405)


def test_openapi_and_docs(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {"/predict", "/v2/models/flights/infer", "/v2/health/ready"} <= set(doc["paths"])
    for path in ("/predict", "/v2/models/flights/infer"):
        assert "415" in doc["paths"][path]["post"]["responses"]
    record = doc["components"]["schemas"]["Record"]
    assert record["required"] == FEATURES
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in docs.text
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", docs.text)


# --- /predict -----------------------------------------------------------------------


def test_predict_records(client: httpx.Client, runtime: ModelRuntime) -> None:
    records = [good_record(i) for i in range(12)]
    response = client.post("/predict", json=records)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "flights"
    assert body["model_version"] == 4
    assert body["classes"] == [False, True]
    np.testing.assert_allclose(body["probabilities"], expected_proba(runtime, records), atol=1e-12)
    assert body["predictions"] == [bool(p[1] > p[0]) for p in body["probabilities"]]
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_body_shapes_agree(client: httpx.Client) -> None:
    records = [good_record(i) for i in range(5)]
    columnar = {"columns": FEATURES, "data": [[r[c] for c in FEATURES] for r in records]}
    bodies: list[Any] = [records, {"records": records}, columnar]
    results = [client.post("/predict", json=b).json()["probabilities"] for b in bodies]
    assert results[0] == results[1] == results[2]
    single = client.post("/predict", json=records[0]).json()
    assert single["probabilities"] == results[0][:1]


def test_request_id_is_echoed(client: httpx.Client) -> None:
    response = client.post(
        "/predict", json=[good_record(0)], headers={"X-Request-ID": "order-42.a"}
    )
    assert response.headers["x-request-id"] == "order-42.a"
    assert response.json()["request_id"] == "order-42.a"
    bad = client.post("/predict", json=[], headers={"X-Request-ID": "order-43"})
    assert bad.headers["x-request-id"] == "order-43"
    assert bad.json()["request_id"] == "order-43"


def test_big_batch_runs_off_the_event_loop(client: httpx.Client, runtime: ModelRuntime) -> None:
    records = [good_record(i % 97) for i in range(1500)]
    body = json.dumps(records).encode()
    assert 64_000 < len(body) < MAX_BODY
    response = client.post("/predict", content=body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["probabilities"], expected_proba(runtime, records), atol=1e-12
    )
    columnar = {"columns": FEATURES, "data": [[r[c] for c in FEATURES] for r in records]}
    assert (
        client.post("/predict", json=columnar).json()["probabilities"]
        == (response.json()["probabilities"])
    )


def test_extra_keys_and_int_for_float_are_fine(client: httpx.Client) -> None:
    record = {**good_record(1), "dep_delay": 12, "comment": "ignored", "flight_id": "F1"}
    assert client.post("/predict", json=[record]).status_code == 200


def test_null_in_nullable_column_is_fine(client: httpx.Client) -> None:
    record = {**good_record(1), "dep_delay": None, "origin": None}
    response = client.post("/predict", json=[record])
    assert response.status_code == 200, response.text


# --- /v2/models/{name}/infer ----------------------------------------------------------


def test_infer(client: httpx.Client, runtime: ModelRuntime) -> None:
    records = [good_record(i) for i in range(6)]
    response = client.post("/v2/models/flights/infer", json=infer_body(records, id="req-1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "flights"
    assert body["model_version"] == "4"
    assert body["id"] == "req-1"
    predictions, probabilities = body["outputs"]
    assert predictions == {
        "name": "predictions",
        "shape": [6],
        "datatype": "BOOL",
        "data": predictions["data"],
    }
    assert probabilities["shape"] == [6, 2]
    assert probabilities["datatype"] == "FP64"
    flat = np.array(probabilities["data"]).reshape(6, 2)
    np.testing.assert_allclose(flat, expected_proba(runtime, records), atol=1e-12)
    versioned = client.post("/v2/models/flights/versions/4/infer", json=infer_body(records))
    assert versioned.json()["outputs"] == body["outputs"]


def test_infer_nested_data_and_output_filter(client: httpx.Client) -> None:
    records = [good_record(i) for i in range(3)]
    body = infer_body(records, outputs=[{"name": "probabilities"}])
    for tensor in body["inputs"]:
        tensor["shape"] = [3, 1]
        tensor["data"] = [[v] for v in tensor["data"]]
    response = client.post("/v2/models/flights/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"]
    flat = client.post("/v2/models/flights/infer", json=infer_body(records)).json()["outputs"][1]
    assert outputs[0]["data"] == flat["data"]


# --- bad input ------------------------------------------------------------------------


def test_missing_column_is_422_naming_it(client: httpx.Client) -> None:
    record = {k: v for k, v in good_record(0).items() if k != "distance"}
    assert_problem(client.post("/predict", json=[record]), 422, "distance")
    body = infer_body([good_record(0)])
    body["inputs"] = [t for t in body["inputs"] if t["name"] != "carrier"]
    assert_problem(client.post("/v2/models/flights/infer", json=body), 422, "carrier")


@pytest.mark.parametrize("column", ["dep_delay", "origin"])
def test_missing_nullable_column_is_422_naming_it(client: httpx.Client, column: str) -> None:
    # Nullable means a row may hold null, not that the field may be left out.
    records = [{k: v for k, v in good_record(i).items() if k != column} for i in range(2)]
    assert_problem(client.post("/predict", json=records), 422, column)
    body = infer_body([good_record(0)])
    body["inputs"] = [t for t in body["inputs"] if t["name"] != column]
    assert_problem(client.post("/v2/models/flights/infer", json=body), 422, column)


@pytest.mark.parametrize("content", [b"{bad json", b"", b"[1,", b"\xff\xfe", b"[NaN]", b"[1e999]"])
def test_malformed_json_is_400(client: httpx.Client, content: bytes) -> None:
    assert_problem(client.post("/predict", content=content), 400)
    assert_problem(client.post("/v2/models/flights/infer", content=content), 400)


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/jsonp", "text/json"])
def test_a_body_that_is_not_json_typed_is_415(
    client: httpx.Client, content_type: str | None
) -> None:
    body = json.dumps([good_record(1)]).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    for path in ("/predict", "/v2/models/flights/infer"):
        # A fresh request: the fixture's client would add application/json.
        response = httpx.post(f"{client.base_url}{path}", content=body, headers=headers)
        problem = assert_problem(response, 415)
        assert "application/json" in problem["fix"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
def test_json_content_types_are_accepted(client: httpx.Client, content_type: str) -> None:
    body = json.dumps([good_record(1)]).encode()
    response = httpx.post(
        f"{client.base_url}/predict", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


def test_body_over_limit_is_413(client: httpx.Client) -> None:
    big = json.dumps([good_record(i % 50) for i in range(3000)]).encode()
    assert len(big) > MAX_BODY
    assert_problem(client.post("/predict", content=big), 413)


def test_streamed_body_over_limit_is_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for i in range(3000):
            yield json.dumps(good_record(i % 50)).encode() + b","
        yield b"{}]"

    # A generator body goes out chunked, without Content-Length: the server must count.
    assert_problem(client.post("/predict", content=chunks()), 413)


def test_empty_batch_is_422(client: httpx.Client) -> None:
    for body in ([], {"records": []}, {"columns": FEATURES, "data": []}):
        assert_problem(client.post("/predict", json=body), 422)
    empty = infer_body([])
    assert_problem(client.post("/v2/models/flights/infer", json=empty), 422)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dep_delay": "fast"}, "dep_delay"),
        ({"distance": True}, "distance"),
        ({"carrier": {"code": "AA"}}, "carrier"),
        ({"weekend": "maybe"}, "weekend"),
    ],
)
def test_wrong_type_is_422_naming_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    records = [good_record(0), {**good_record(1), **change}]
    assert_problem(client.post("/predict", json=records), 422, field)


def test_null_where_never_null_is_422(client: httpx.Client) -> None:
    body = assert_problem(
        client.post("/predict", json=[{**good_record(0), "carrier": None}]), 422, "carrier"
    )
    assert "null" in body["details"][0]["error"]


def test_unseen_category_under_both_policies(client: httpx.Client, lenient: httpx.Client) -> None:
    records = [{**good_record(0), "carrier": "ZZ"}]
    body = assert_problem(client.post("/predict", json=records), 422, "carrier")
    assert "ZZ" in body["details"][0]["error"]
    infer = client.post("/v2/models/flights/infer", json=infer_body(records))
    assert_problem(infer, 422, "carrier")
    ok = lenient.post("/predict", json=records)
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["probabilities"]) == 1
    assert lenient.post("/v2/models/flights/infer", json=infer_body(records)).status_code == 200


@pytest.mark.parametrize("value", ["", " ", "\u0000", "é🚀", "A" * 10_000, "nan", "None", 12])
def test_strange_categories_reach_a_lenient_model_safely(lenient: httpx.Client, value: Any) -> None:
    response = lenient.post("/predict", json=[{**good_record(0), "carrier": value}])
    assert response.status_code == 200, response.text


def test_infer_inputs_of_different_lengths_is_422(client: httpx.Client) -> None:
    body = infer_body([good_record(0), good_record(1)])
    body["inputs"][2]["data"] = ["AA"]
    body["inputs"][2]["shape"] = [1]
    assert_problem(client.post("/v2/models/flights/infer", json=body), 422)


def _infer_with(change: dict[str, Any], index: int = 0) -> dict[str, Any]:
    body = infer_body([good_record(0), good_record(1)])
    body["inputs"][index] = {**body["inputs"][index], **change}
    return body


MALFORMED_PREDICT: list[Any] = [
    None,
    0,
    "text",
    True,
    {},
    {"something": 1},
    {"records": "nope"},
    {"records": [1, 2]},
    {"records": None},
    {"columns": "dep_delay", "data": [[1]]},
    {"columns": FEATURES, "data": "x"},
    {"columns": FEATURES, "data": [[1, 2]]},
    {"columns": FEATURES, "data": [None]},
    {"columns": [1, 2], "data": [[1, 2]]},
    {"columns": ["a", "a"], "data": [[1, 2]]},
    {"columns": FEATURES},
    {"data": [[1, 2, 3, 4, 5]]},
    {"inputs": []},
    [None],
    [[1, 2, 3]],
    [{}],
    [{"": None}],
    [dict.fromkeys(FEATURES)],
    [{key: [] for key in FEATURES}],
    [{key: {} for key in FEATURES}],
    [dict.fromkeys(FEATURES, "")],
    [dict.fromkeys(FEATURES, 0)],
    [dict.fromkeys(FEATURES, True)],
    [dict.fromkeys(FEATURES, -(2**63))],
    [dict.fromkeys(FEATURES, 2**64)],
    [dict.fromkeys(FEATURES, 1.7976931348623157e308)],
    [{**good_record(0), "carrier": "A" * 5000}],
    [{**good_record(0), "dep_delay": "NaN"}],
    [{**good_record(0), "dep_delay": "Infinity"}],
    [{**good_record(0), "origin": "\u0000"}],
    [{**good_record(0), "origin": "é🚀"}],
    [{**good_record(0), "weekend": 0.5}],
    [{**good_record(0), "distance": [1, 2]}],
]

MALFORMED_INFER: list[Any] = [
    None,
    [],
    "x",
    {},
    {"inputs": None},
    {"inputs": {}},
    {"inputs": [None]},
    {"inputs": [{"name": 3}]},
    {"id": 5, **infer_body([good_record(0)])},
    {"outputs": "all", **infer_body([good_record(0)])},
    {"outputs": [{"name": "nope"}], **infer_body([good_record(0)])},
    {"inputs": [{"name": "dep_delay", "shape": [1], "datatype": "FP64", "data": [1.0]}] * 2},
    _infer_with({"datatype": "FLOAT"}),
    _infer_with({"datatype": None}),
    _infer_with({"datatype": "BYTES"}),
    _infer_with({"datatype": "BOOL"}),
    _infer_with({"shape": [3]}),
    _infer_with({"shape": [2, 2]}),
    _infer_with({"shape": [-2]}),
    _infer_with({"shape": "2"}),
    _infer_with({"shape": [True]}),
    _infer_with({"shape": []}),
    _infer_with({"shape": [1, 1, 2]}),
    _infer_with({"data": "1,2"}),
    _infer_with({"data": None}),
    _infer_with({"data": [[1, 2], [3, 4]]}),
    _infer_with({"data": [[1], 2]}),
    _infer_with({"data": [{"a": 1}, {"b": 2}]}),
    _infer_with({"data": ["a", "b"]}),
    _infer_with({"data": [None, None]}, index=1),
    _infer_with({"data": [1, 2]}, index=2),
    _infer_with({"data": ["ZZ", "AA"]}, index=2),
    _infer_with({"name": None}),
]


@pytest.mark.parametrize("body", MALFORMED_PREDICT, ids=range(len(MALFORMED_PREDICT)))
def test_malformed_predict_bodies_are_4xx_json(client: httpx.Client, body: Any) -> None:
    response = client.post("/predict", content=json.dumps(body).encode())
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("body", MALFORMED_INFER, ids=range(len(MALFORMED_INFER)))
def test_malformed_infer_bodies_are_4xx_json(client: httpx.Client, body: Any) -> None:
    response = client.post("/v2/models/flights/infer", content=json.dumps(body).encode())
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


def test_deeply_nested_json_is_4xx(client: httpx.Client) -> None:
    content = b"[" * 5000 + b"]" * 5000
    assert_problem(client.post("/predict", content=content), 400)


# --- internal errors and concurrency ------------------------------------------------------


def test_internal_error_is_500_json_without_traceback(
    client: httpx.Client,
    runtime: ModelRuntime,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(df: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(runtime, "predict_arrays", broken)
    monkeypatch.setattr(runtime, "predict_matrix", broken)
    with caplog.at_level("ERROR", logger="mlcycle.serve"):
        response = client.post("/predict", json=[good_record(0)], headers={"X-Request-ID": "r-500"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "r-500"
    assert "ZeroDivisionError" not in response.text
    assert any("r-500" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info for r in caplog.records)


def test_concurrent_requests_each_get_their_own_answer(
    client: httpx.Client, runtime: ModelRuntime
) -> None:
    # Concurrent requests are predicted together (micro-batching); each must
    # still get exactly its own rows back.
    batches = [[good_record(i * 7 + j) for j in range(1 + i % 3)] for i in range(40)]

    def call(records: list[dict[str, Any]]) -> Any:
        return client.post("/predict", json=records).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, batches))
    for records, result in zip(batches, results, strict=True):
        assert len(result["predictions"]) == len(records)
        np.testing.assert_allclose(
            result["probabilities"], expected_proba(runtime, records), rtol=0, atol=1e-12
        )


def test_nan_in_outputs_is_valid_json() -> None:
    rendered = JSONResponse({"p": [float("nan"), np.float64("inf"), np.array([np.nan])]}).body
    assert json.loads(rendered) == {"p": [None, None, [None]]}


# --- The OpenAPI document says what the server does (issue #13, item 17) ---------


def test_405_names_the_allowed_methods(client: httpx.Client) -> None:
    # HTTP requires an Allow header on 405 (RFC 9110 §15.5.6).
    response = client.get("/predict")
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"
    allowed = client.delete("/admin/traffic").headers["allow"]
    assert set(allowed.replace(" ", "").split(",")) >= {"GET", "POST"}


def test_openapi_tensor_shape_is_what_infer_accepts(client: httpx.Client) -> None:
    shape = client.get("/openapi.json").json()["components"]["schemas"]["Tensor"]
    shape = shape["properties"]["shape"]
    assert (shape["minItems"], shape["maxItems"]) == (1, 2)  # [] is a 422: not documented valid
    assert shape["prefixItems"][1] == {"const": 1}  # [n, 1] only
    body = infer_body([good_record(0)])
    body["inputs"][0]["shape"] = []
    assert_problem(client.post("/v2/models/flights/infer", json=body), 422)
    body["inputs"][0]["shape"] = [1, 1]
    assert client.post("/v2/models/flights/infer", json=body).status_code == 200


def test_openapi_documents_the_version_routes(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for suffix, method in [("", "get"), ("/ready", "get"), ("/infer", "post")]:
        op = paths[f"/v2/models/flights/versions/{{version}}{suffix}"][method]
        assert {"200", "404"} <= set(op["responses"])
    assert client.get("/v2/models/flights/versions/4").status_code == 200
    assert_problem(client.get("/v2/models/flights/versions/5"), 404)


def test_openapi_documents_the_admin_answers(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post = paths["/admin/traffic"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TrafficSettings"}
    assert {"400", "401", "403", "422"} <= set(post["responses"])
    for op in [paths["/admin/traffic"]["get"], paths["/admin/reload"]["post"]]:
        assert {"401", "403"} <= set(op["responses"])
    # This server has no admin token: the documented 403.
    assert_problem(client.post("/admin/traffic", json={"canary": 0.1}), 403)
