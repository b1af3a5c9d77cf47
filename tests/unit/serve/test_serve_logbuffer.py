"""The compiled path's column buffers log exactly what a queued entry of the same request would."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
from serve_fixtures import build_bundle, good_record

from mlcycle.serve.logbuffer import EncodedBuffer
from mlcycle.serve.logtable import to_table
from mlcycle.serve.predlog import LogEntry, ModelInfo, PredictionLog, RawRecords
from mlcycle.serve.runtime import ModelRuntime

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
    buffer = EncodedBuffer(info, "champion", rt, "predict")
    entries = []
    for i, records in enumerate(bodies):
        matrix = rt.encode_records(records)
        assert matrix is not None
        labels, proba = rt.predict_matrix(matrix)
        ids = [r.get("flight_id") for r in records]
        given = None if ids.count(None) == len(ids) else ids
        raw = RawRecords(orjson.dumps(records), rt, "predict", matrix)
        buffer.add(f"r{i}", TS + i, raw.body, matrix, labels, proba, given)
        entries.append(LogEntry(info, "champion", f"r{i}", TS + i, raw, given, labels, proba, True))
    return buffer.to_table(), to_table(entries)


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


def test_submit_encoded_writes_on_close_and_splits_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=2)
    info = ModelInfo.of(rt)
    log = PredictionLog(tmp_path / "log", flush_seconds=60, convert_seconds=60)
    midnight = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    for i, stamp in enumerate([midnight - 1, midnight - 0.5, midnight + 1]):
        records = [good_record(i)]
        matrix = rt.encode_records(records)
        assert matrix is not None
        labels, proba = rt.predict_matrix(matrix)
        raw = RawRecords(orjson.dumps(records), rt, "predict", matrix)
        monkeypatch.setattr(time, "time", lambda stamp=stamp: stamp)
        assert log.submit_encoded(info, "champion", f"r{i}", raw, labels, proba)
    monkeypatch.undo()
    assert log.queued == 3
    log.close()
    days = {f.parent.name: pq.read_table(f) for f in (tmp_path / "log").rglob("*.parquet")}
    assert sorted(days) == ["date=2026-03-01", "date=2026-03-02"]
    assert days["date=2026-03-01"].column("request_id").to_pylist() == ["r0", "r1"]
    assert days["date=2026-03-02"].column("request_id").to_pylist() == ["r2"]
    assert log.written == 3 and log.queued == 0 and log.errors == 0


def test_submit_encoded_drops_and_counts_when_full(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=2)
    log = PredictionLog(tmp_path / "log", max_queue_rows=4, flush_seconds=60)
    records = [good_record(i) for i in range(3)]
    matrix = rt.encode_records(records)
    assert matrix is not None
    labels, proba = rt.predict_matrix(matrix)
    raw = RawRecords(orjson.dumps(records), rt, "predict", matrix)
    assert log.submit_encoded(ModelInfo.of(rt), "champion", "a", raw, labels, proba)
    assert not log.submit_encoded(ModelInfo.of(rt), "champion", "b", raw, labels, proba)
    assert log.dropped == 3
    log.close()
    assert log.written == 3
    assert not log.submit_encoded(ModelInfo.of(rt), "champion", "c", raw, labels, proba)


def test_a_float32_probability_is_logged_as_float64(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b"), version=1)
    records = [good_record(0), good_record(1)]
    matrix = rt.encode_records(records)
    assert matrix is not None
    labels, proba = rt.predict_matrix(matrix)
    buffer = EncodedBuffer(ModelInfo.of(rt), "champion", rt, "predict")
    buffer.add("a", TS, orjson.dumps(records), matrix, labels, proba.astype(np.float32), None)
    table = buffer.to_table()
    assert str(table.schema.field("probability").type) == "double"
    expected = proba[:, rt.positive_index].astype(np.float32).astype(np.float64)
    assert table.column("probability").to_numpy().tolist() == expected.tolist()
