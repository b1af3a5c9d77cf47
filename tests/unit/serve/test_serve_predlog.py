"""The prediction log's bulk table builder and writer, without a server."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
import orjson
from serve_fixtures import build_bundle, good_record

from mlcycle.serve.http.parsing import RecordsDecoder
from mlcycle.serve.model import ModelRuntime
from mlcycle.serve.predlog import LogRows, ModelInfo, PredictionLog, to_table

TS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    return ModelRuntime.load(build_bundle(tmp_path_factory.mktemp("b") / "bin"), version=4)


def entry(rt: ModelRuntime, rid: str, inputs: Any, **kw: Any) -> LogRows:
    """Rows of ``inputs`` (records, or a validated frame) as a request logs them."""
    n = len(inputs)
    proba = np.tile([0.75, 0.25], (n, 1))
    labels = [rt.classes[0]] * n if rt.classes else [0.0] * n
    source = {"records": inputs} if isinstance(inputs, list) else {"frame": inputs}
    return LogRows(
        ModelInfo.of(rt),
        kw.pop("role", "champion"),
        rid,
        TS,
        labels,
        proba,
        kw.pop("row_ids", None),
        **source,
        **kw,
    )


def test_records_and_frames_mix_in_queue_order(rt: ModelRuntime) -> None:
    records = [good_record(i) for i in range(3)]
    frame = rt.validate_records([{**good_record(5), "origin": None}])
    entries = [
        entry(rt, "a", records[:2], ids_from_request=True),
        entry(rt, "b", frame, ids_from_request=True),
        entry(rt, "c", records[2:], row_ids=["F9"], ids_from_request=True),
        entry(rt, "job", records[:1], role="batch"),
    ]
    table = to_table(entries).to_pandas()
    assert table["request_id"].tolist() == ["a", "a", "b", "c", "job"]
    # Own id when given; else request id + index for requests; null for a batch row.
    assert table["row_id"].tolist()[:4] == ["a:0", "a:1", "b:0", "F9"]
    assert table["row_id"].isna().tolist() == [False, False, False, False, True]
    assert table["distance"].tolist() == [200.0, 237.0, 385.0, 274.0, 200.0]
    assert table["origin"].isna().tolist() == [False, False, True, False, False]
    assert table["weekend"].tolist()[0] is True
    assert set(table["prediction"]) == {str(rt.classes[0])}
    assert table["probability"].tolist() == [0.25 if rt.positive_index == 1 else 0.75] * 5
    assert (table["model_version"] == 4).all() and (table["model"] == "flights").all()
    assert str(to_table(entries).schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_unclean_records_fall_back_to_per_value_conversion(rt: ModelRuntime) -> None:
    # An int in a boolean column cannot go through Arrow's typed record conversion.
    records = [{**good_record(1), "weekend": 1}]
    table = to_table([entry(rt, "x", records)]).to_pandas()
    assert table["weekend"].tolist() == [True]


def test_writer_converts_often_and_writes_everything_on_close(
    rt: ModelRuntime, tmp_path: Path
) -> None:
    log = PredictionLog(tmp_path, flush_seconds=60, convert_seconds=0.01)
    for i in range(50):
        assert log.submit(entry(rt, f"r{i}", [good_record(i)], ids_from_request=True))
    log.close()
    files = list((tmp_path / "flights").glob("date=2026-03-01/*.parquet"))
    assert len(files) == 1  # converted in many small drains, written once
    table = pq.read_table(files[0]).to_pandas()
    assert table["request_id"].tolist() == [f"r{i}" for i in range(50)]
    assert log.written == 50 and log.queued == 0 and log.errors == 0


def test_flush_writes_without_waiting_for_the_interval(rt: ModelRuntime, tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_seconds=3600, convert_seconds=3600)
    log.submit(entry(rt, "r", [good_record(0)]))
    log.flush(timeout=30)
    assert log.written == 1 and list(tmp_path.rglob("*.parquet"))
    log.close()


def test_a_frame_with_a_boolean_null_is_logged(rt: ModelRuntime) -> None:
    # A nullable boolean column is float 0/1/NaN in a validated frame.
    frame = rt.validate_records([good_record(0), good_record(1)]).assign(weekend=[np.nan, 1.0])
    table = to_table([entry(rt, "f", frame)]).to_pandas()
    assert pd.isna(table["weekend"].tolist()[0]) and table["weekend"].tolist()[1] is True


def test_encoded_rows_log_the_same_values_as_records(rt: ModelRuntime) -> None:
    records = [good_record(i) for i in range(4)] + [{**good_record(4), "dep_delay": None}]
    matrix = rt.encode_records(records)
    assert matrix is not None and ModelInfo.of(rt).matrix_layout  # numbers pass through
    plain = to_table([entry(rt, "r", records)])
    encoded = to_table([entry(rt, "r", records, matrix=matrix)])
    assert encoded.equals(plain)
    assert encoded.column("dep_delay").null_count == 1


@pytest.mark.parametrize("encoder", ["onehot", "ordinal"])
@pytest.mark.parametrize("unseen", ["reject", "unknown"])
def test_request_bodies_log_what_their_records_say(
    tmp_path: Path, encoder: str, unseen: str
) -> None:
    """Features read back from the matrix equal the parsed records, nulls and unknown
    categories included (the rows the matrix cannot tell are parsed from their body)."""
    folder = build_bundle(tmp_path / "b", encoder=encoder, unseen=unseen)  # type: ignore[arg-type]
    rt = ModelRuntime.load(folder, version=2)
    assert rt.plan is not None
    bodies = [[good_record(i)] for i in range(6)]
    bodies[2] = [{**good_record(2), "origin": None}]
    bodies[3] = [good_record(7), {**good_record(8), "origin": None}, good_record(9)]
    if unseen == "unknown":
        bodies[4] = [{**good_record(4), "carrier": "ZZ"}, good_record(10)]
    raw, plain = [], []
    decoder = RecordsDecoder(rt, "predict")
    for i, records in enumerate(bodies):
        matrix = rt.encode_records(records)
        assert matrix is not None
        body = orjson.dumps(records)
        raw.append(entry(rt, f"r{i}", records, matrix=matrix, body=body, decoder=decoder))
        raw[-1].records = None  # what a request keeps: its body, not its records
        plain.append(entry(rt, f"r{i}", records))
    logged = to_table(raw)
    assert logged.equals(to_table(plain))
    origins = logged.column("origin").to_pylist()
    assert origins[2] is None and origins[4] is None and origins.count(None) == 2
    if unseen == "unknown":
        assert logged.column("carrier").to_pylist()[6] == "ZZ"


# --- a model name never leaves the log's root ---------------------------------------------

ESCAPES = ["../../escaped", "..", ".hidden", "a/b", "a\\b", "", "flights\n", "x" * 256]


@pytest.mark.parametrize("name", ESCAPES)
def test_log_paths_refuse_a_name_that_is_not_one_folder(name: str, tmp_path: Path) -> None:
    from mlcycle import predlog
    from mlcycle.errors import BadInput

    root = str(tmp_path / "log")
    frame = pd.DataFrame(
        {c: ["r"] for c in predlog.BASE_COLUMNS} | {"ts": [TS], "model_version": [1]}
    )
    for call in (
        lambda: predlog.day_folder(root, name, "2026-03-01"),
        lambda: predlog.list_files(root, name),
        lambda: predlog.write_predictions(root, name, frame),
    ):
        with pytest.raises(BadInput, match=r"model name .* is not allowed"):
            call()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_writer_refuses_a_bundle_name_that_escapes_the_root(
    rt: ModelRuntime, tmp_path: Path
) -> None:
    from mlcycle.errors import BadInput

    root = tmp_path / "a" / "log"
    evil = rt.meta.model_copy(update={"name": "../../escaped"})
    rt_evil = ModelRuntime(rt.model, evil, rt.schema, version=1)
    log = PredictionLog(root, flush_seconds=60)
    try:
        with pytest.raises(BadInput, match=re.escape("'../../escaped' is not allowed")):
            log.submit(entry(rt_evil, "r", [good_record(1)]))
    finally:
        log.close()
    assert not (tmp_path / "escaped").exists()
    assert [p for p in tmp_path.rglob("*.parquet")] == []


@pytest.mark.parametrize("name", ["flights", "my-model.v2", "A_1"])
def test_ordinary_names_pass(name: str) -> None:
    from mlcycle.bundle import check_model_name

    assert check_model_name(name) == name
