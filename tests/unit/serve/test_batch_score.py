"""Batch scoring pieces: the Arrow encoder, sliced scoring, and the reader/writer threads."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

from serve_fixtures import FEATURES, build_bundle, flights_frame

from mlcycle.errors import BadInput
from mlcycle.serve.batch.io import ChunkReader, InputFile
from mlcycle.serve.batch.score import MIN_SLICE_ROWS, Scorer
from mlcycle.serve.batch.write import ParquetOrCsvWriter, Sink
from mlcycle.serve.model.fastpath import category_codes
from mlcycle.serve.model.runtime import ONNX_TOLERANCE, ModelRuntime


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "onehot": build_bundle(root / "onehot", task="multiclass", unseen="unknown"),
        "ordinal": build_bundle(root / "ordinal", encoder="ordinal", unseen="unknown"),
        "regression": build_bundle(root / "reg", task="regression", encoder="ordinal"),
    }


def odd_frame(n: int = 3000) -> pd.DataFrame:
    """Valid rows with nulls and categories the encoders never saw (policy: unknown)."""
    frame = flights_frame(n, seed=4)[FEATURES].copy()
    frame.loc[::7, "carrier"] = "ZZ"
    frame.loc[::11, "origin"] = None
    frame.loc[::13, "origin"] = "XXX"
    return frame


@pytest.mark.parametrize("kind", ["onehot", "ordinal"])
def test_arrow_encoder_equals_the_plan(folders: dict[str, Path], kind: str) -> None:
    rt = ModelRuntime.load(folders[kind])
    assert rt.plan is not None
    frame = rt.check_rows(odd_frame()).frame
    ours = rt.plan.encode_frame(frame)
    # Exactly what the pipeline's own preprocessing makes.
    expected = np.asarray(rt.model[:-1].transform(frame), dtype=np.float64)
    np.testing.assert_array_equal(ours, expected)


def test_arrow_encoder_takes_object_columns(folders: dict[str, Path]) -> None:
    rt = ModelRuntime.load(folders["ordinal"])
    assert rt.plan is not None
    frame = rt.check_rows(odd_frame(200)).frame
    as_object = frame.astype({"carrier": object, "origin": object})
    np.testing.assert_array_equal(rt.plan.encode_frame(as_object), rt.plan.encode_frame(frame))


def test_arrow_encoder_falls_back_on_values_arrow_cannot_read(folders: dict[str, Path]) -> None:
    rt = ModelRuntime.load(folders["ordinal"])
    assert rt.plan is not None
    frame = rt.check_rows(odd_frame(50)).frame.astype({"carrier": object})
    unknown = frame.copy()
    unknown.loc[3, "carrier"] = "never seen"
    frame.loc[3, "carrier"] = 7  # not text: only a custom pipeline would let this through
    # The pandas lookup takes over, where 7 is simply an unknown category.
    np.testing.assert_array_equal(rt.plan.encode_frame(frame), rt.plan.encode_frame(unknown))


def test_category_codes_map_nulls_and_unknowns_to_minus_one() -> None:
    codes = category_codes(pd.Series(["UA", None, "ZZ", "AA"]), {"AA": 0, "UA": 1})
    assert codes.tolist() == [1, -1, -1, 0]
    assert category_codes(pd.Series(["AA"]), {}).tolist() == [-1]


def with_onnx(folder: Path, target: Path) -> ModelRuntime:
    from mlcycle.registry.export import export_bundle

    shutil.copytree(folder, target)
    export_bundle(target, flights_frame(400, seed=3))
    rt = ModelRuntime.load(target, 1)
    assert rt.engine == "onnxruntime"
    return rt


@pytest.mark.parametrize("workers", [1, 3])
def test_sliced_onnx_scores_equal_the_runtime(
    folders: dict[str, Path], tmp_path: Path, workers: int
) -> None:
    rt = with_onnx(folders["ordinal"], tmp_path / "b")
    frame = rt.check_rows(odd_frame(3 * MIN_SLICE_ROWS + 17)).frame
    with Scorer(rt, workers=workers) as scorer:
        assert scorer.engine == "onnxruntime"
        assert len(scorer._cuts(len(frame))) - 1 == workers  # really sliced
        predicted, proba = scorer.submit(frame).result()
    # The batch target: within 1e-6 of the scikit-learn pipeline itself (float32
    # sums in another order than the runtime's multi-thread session: not bit-equal).
    truth = rt.model.predict_proba(frame)
    assert proba is not None and np.max(np.abs(proba - truth)) <= 1e-6
    assert np.array_equal(predicted, truth.argmax(axis=1))


@pytest.mark.parametrize("kind", ["onehot", "regression"])
def test_sklearn_engines_score_like_the_runtime(folders: dict[str, Path], kind: str) -> None:
    rt = ModelRuntime.load(folders[kind])
    frame = rt.check_rows(odd_frame(500)).frame
    with Scorer(rt) as scorer:
        predicted, proba = scorer.submit(frame).result()
    labels, expected = rt.predict_arrays(frame)
    if expected is None:
        assert proba is None
        np.testing.assert_array_equal(predicted, np.asarray(labels))
    else:
        np.testing.assert_array_equal(proba, expected)
        assert [rt.classes[i] for i in predicted] == labels  # type: ignore[index]


def test_reader_reraises_and_stops_early(tmp_path: Path) -> None:
    flights_frame(50).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.parquet").write_bytes(b"PAR1 broken")
    files = [InputFile(str(tmp_path / "a.parquet")), InputFile(str(tmp_path / "b.parquet"))]
    with ChunkReader(files, "parquet", FEATURES, 10) as reader:
        seen = 0
        with pytest.raises(BadInput, match="cannot read"):
            for _original, frame in reader:
                seen += len(frame)
    assert seen == 50
    # Leaving early does not hang on a full queue.
    before = threading.active_count()
    with ChunkReader([files[0]], "parquet", FEATURES, 1, ahead=1) as reader:
        next(iter(reader))
    assert threading.active_count() <= before


def test_sink_reports_a_failed_write(tmp_path: Path) -> None:
    schema = pa.schema([("x", pa.int64())])
    writer = ParquetOrCsvWriter(tmp_path / "o.parquet", "parquet", schema)
    sink = Sink()
    sink.write(writer, pa.table({"x": pa.array(["not a number"])}))
    with pytest.raises(BadInput, match="disagree"):
        sink.finish()
    writer.abort()


def test_sink_writes_in_order(tmp_path: Path) -> None:
    schema = pa.schema([("x", pa.int64())])
    writer = ParquetOrCsvWriter(tmp_path / "o.parquet", "parquet", schema, plain=["x"])
    sink = Sink(ahead=1)
    for i in range(20):
        sink.write(writer, pa.table({"x": pa.array([i, i], pa.int64())}))
    sink.finish()
    writer.close()
    got: Any = pd.read_parquet(tmp_path / "o.parquet")["x"].tolist()
    assert got == [i for i in range(20) for _ in range(2)]


def test_sliced_onnx_regression_equals_the_pipeline(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    rt = with_onnx(folders["regression"], tmp_path / "r")
    frame = rt.check_rows(odd_frame(2 * MIN_SLICE_ROWS + 5)).frame
    with Scorer(rt, workers=2) as scorer:
        values, proba = scorer.submit(frame).result()
    assert proba is None
    # Values (not probabilities) summed in float32: float32's relative precision.
    np.testing.assert_allclose(values, rt.model.predict(frame), rtol=1e-6, atol=ONNX_TOLERANCE)
