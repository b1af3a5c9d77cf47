"""The compiled path's column buffers log exactly what the same rows, queued, would."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from serve_fixtures import build_bundle, good_record

from mlcycle.serve.http.parsing import RecordsDecoder
from mlcycle.serve.model import ModelRuntime
from mlcycle.serve.predlog import LogRows, ModelInfo, PredictionLog, to_table
from mlcycle.serve.predlog.buffer import ColumnBuffer

TS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


def requests(unseen: str) -> list[list[dict[str, Any]]]:
    """Single- and multi-row bodies with null and (where allowed) unknown categories."""
    bodies = [[good_record(i)] for i in range(5)]
    bodies[1] = [{**good_record(1), "origin": None}]
    bodies[2] = [good_record(7), {**good_record(8), "origin": None}, good_record(9)]
    bodies[3] = [{**good_record(3), "flight_id": "F3"}]
    if unseen == "unknown":
        bodies[4] = [{**good_record(4), "carrier": "ZZ"}, good_record(10)]
    return bodies


def both_ways(rt: ModelRuntime, bodies: list[list[dict[str, Any]]]) -> tuple[Any, Any]:
    """(buffer's table, entries' table) for the same scored requests."""
    info = ModelInfo.of(rt)
    decoder = RecordsDecoder(rt, "predict")
    buffer = ColumnBuffer(info, "champion", decoder)
    entries = []
    for i, records in enumerate(bodies):
        rows = logged(rt, info, decoder, f"r{i}", TS + i, records)
        assert rows.body is not None and rows.matrix is not None
        buffer.add(rows, rows.body)
        entries.append(rows)
    return buffer.to_table(), to_table(entries)


def logged(
    rt: ModelRuntime, info: ModelInfo, decoder: Any, rid: str, ts: float, records: list[Any]
) -> LogRows:
    """The rows a compiled-path request logs: its encoded matrix and its body."""
    matrix = rt.encode_records(records)
    assert matrix is not None
    labels, proba = rt.predict_matrix(matrix)
    ids = [r.get("flight_id") for r in records]
    given = None if ids.count(None) == len(ids) else ids
    body = orjson.dumps(records)
    return LogRows(
        info,
        "champion",
        rid,
        ts,
        labels,
        proba,
        given,
        True,
        matrix=matrix,
        body=body,
        decoder=decoder,
    )


@pytest.mark.parametrize("encoder", ["onehot", "ordinal"])
@pytest.mark.parametrize("unseen", ["reject", "unknown"])
def test_buffer_logs_what_a_queued_entry_logs(tmp_path: Path, encoder: str, unseen: str) -> None:
    folder = build_bundle(tmp_path / "b", encoder=encoder, unseen=unseen)  # type: ignore[arg-type]
    rt = ModelRuntime.load(folder, version=3)
    buffered, queued = both_ways(rt, requests(unseen))
    assert buffered.equals(queued)
    rows = buffered.to_pylist()
    assert [r["row_id"] for r in rows[:5]] == ["r0:0", "r1:0", "r2:0", "r2:1", "r2:2"]
    assert rows[5]["row_id"] == "F3"  # the request's own id wins
    assert rows[1]["origin"] is None and rows[3]["origin"] is None
    assert all(r["model_version"] == 3 and r["role"] == "champion" for r in rows)
    if unseen == "unknown":
        assert rows[6]["carrier"] == "ZZ"  # an unknown category is logged as sent


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_buffer_handles_every_task(tmp_path: Path, task: str) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / task, task=task), version=1)  # type: ignore[arg-type]
    buffered, queued = both_ways(rt, requests("reject"))
    assert buffered.equals(queued)
    if task == "multiclass":
        assert any(name.startswith("proba_") for name in buffered.column_names)
    else:
        assert buffered.column("probability").null_count == buffered.num_rows


def test_submitted_bodies_are_buffered_written_on_close_and_split_by_day(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=2)
    info = ModelInfo.of(rt)
    decoder = RecordsDecoder(rt, "predict")
    log = PredictionLog(tmp_path / "log", flush_seconds=60, convert_seconds=60)
    midnight = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    for i, stamp in enumerate([midnight - 1, midnight - 0.5, midnight + 1]):
        assert log.submit(logged(rt, info, decoder, f"r{i}", stamp, [good_record(i)]))
    assert log.queued == 3
    log.close()
    days = {f.parent.name: pq.read_table(f) for f in (tmp_path / "log").rglob("*.parquet")}
    assert sorted(days) == ["date=2026-03-01", "date=2026-03-02"]
    assert days["date=2026-03-01"].column("request_id").to_pylist() == ["r0", "r1"]
    assert days["date=2026-03-02"].column("request_id").to_pylist() == ["r2"]
    assert log.written == 3 and log.queued == 0 and log.errors == 0


def test_submitted_bodies_are_dropped_and_counted_when_full(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=2)
    log = PredictionLog(tmp_path / "log", max_queue_rows=4, flush_seconds=60)
    records = [good_record(i) for i in range(3)]
    info, decoder = ModelInfo.of(rt), RecordsDecoder(rt, "predict")
    rows = logged(rt, info, decoder, "a", TS, records)
    assert log.submit(rows)
    assert not log.submit(logged(rt, info, decoder, "b", TS, records))
    assert log.dropped == 3
    log.close()
    assert log.written == 3
    assert not log.submit(logged(rt, info, decoder, "c", TS, records))


def test_a_float32_probability_is_logged_as_float64(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=1)
    records = [good_record(0), good_record(1)]
    matrix = rt.encode_records(records)
    assert matrix is not None
    labels, proba = rt.predict_matrix(matrix)
    info = ModelInfo.of(rt)
    buffer = ColumnBuffer(info, "champion", RecordsDecoder(rt, "predict"))
    rows = LogRows(info, "champion", "a", TS, labels, proba.astype(np.float32), None, True)
    rows.matrix = matrix
    buffer.add(rows, orjson.dumps(records))
    table = buffer.to_table()
    assert str(table.schema.field("probability").type) == "double"
    expected = proba[:, rt.positive_index].astype(np.float32).astype(np.float64)
    assert table.column("probability").to_numpy().tolist() == expected.tolist()
