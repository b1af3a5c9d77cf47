"""A window streamed from Parquet batch by batch: same statistics, progress, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.errors import BadInput
from mlcycle.monitor import drift_report
from mlcycle.monitor.streaming import stream_report


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(shift, 1.0, n), "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])}
    )


def test_streamed_statistics_equal_in_memory_and_progress_counts_rows(tmp_path: Path) -> None:
    reference = frame(5000, 0)
    parts = [frame(3000, 1, shift=0.5), frame(2000, 2, shift=0.5)]
    paths = []
    for i, part in enumerate(parts):
        paths.append(str(tmp_path / f"part{i}.parquet"))
        part.to_parquet(paths[-1], index=False)
    calls: list[tuple[str, int | None, int | None]] = []
    streamed = stream_report(
        reference,
        paths,
        ["x", "c"],
        test="psi",
        batch_rows=700,
        progress=lambda text, done, total: calls.append((text, done, total)),
    )
    whole = drift_report(reference, pd.concat(parts), ["x", "c"], test="psi", threshold=0.1)
    assert [f.statistic for f in streamed.features] == pytest.approx(
        [f.statistic for f in whole.features], rel=1e-12
    )
    assert streamed.current_rows == 5000 and streamed.drifted == ["x"]
    done = [d for _, d, _ in calls]
    assert done == sorted(done) and done[-1] == 5000 and {t for _, _, t in calls} == {5000}
    assert len(calls) == 5 + 3  # ceil(3000 / 700) + ceil(2000 / 700) batches


def test_streaming_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    path = str(tmp_path / "cur.parquet")
    frame(100, 1).to_parquet(path, index=False)
    with pytest.raises(BadInput, match="cannot run on a streamed window"):
        stream_report(frame(100, 0), [path], ["x"], test="wasserstein")
    with pytest.raises(BadInput, match="lacks column\\(s\\) nope"):
        stream_report(frame(100, 0).assign(nope=1), [path], ["x", "nope"])
    empty = str(tmp_path / "empty.parquet")
    frame(10, 1).iloc[:0].to_parquet(empty, index=False)
    with pytest.raises(BadInput, match="no rows"):
        stream_report(frame(100, 0), [empty], ["x"])
