"""Data stage: ingest + validate + profile speed, streamed CSV ingest memory, profiler speed.

1. The full flights data through the pipeline's ingest and validate steps (land
   the raw partition, build the version, infer the contract, profile, validate):
   seconds and rows/s.
2. A 5-million-row CSV (flights resampled; 500k with --quick) ingested by a
   child process: peak RSS of that process and rows/s (streamed in chunks).
3. Column profiling of the same flights frame: mlcycle's ``compute_profile`` vs
   ydata-profiling in minimal mode (its statistics only, no HTML), the latter
   measured in ``.venv-bench`` in the same run.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import CACHE, ROOT, flights_parquet, run_alternative

_CHILD = """
import json, sys, time
from pathlib import Path
from mlcycle.data.ingest import ingest
from mlcycle.spec import Source
from mlcycle.store import Store
work = Path(sys.argv[1])
store = Store.open(work)
t0 = time.perf_counter()
r = ingest(store, Source(path=sys.argv[2], watermark="time_hour"), work, id_column="flight_id")
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": r.rows_new}))
"""

_YDATA = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import types
from importlib import metadata
import pandas as pd
try:
    import pkg_resources  # noqa: F401
except ModuleNotFoundError:
    # ydata-profiling 4.18 imports pkg_resources (gone from new setuptools) only to
    # read package versions; a stand-in keeps it working without changing it.
    shim = types.ModuleType("pkg_resources")
    shim.get_distribution = lambda name: types.SimpleNamespace(version=metadata.version(name))
    sys.modules["pkg_resources"] = shim
from ydata_profiling import ProfileReport
df = pd.read_parquet(sys.argv[1])
n = int(sys.argv[2])
if n < len(df):
    df = df.sample(n=n, random_state=0)
t0 = time.perf_counter()
report = ProfileReport(df, minimal=True, progress_bar=False)
report.get_description()
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(df)}))
"""


def _flights() -> tuple[Path, pd.DataFrame]:
    first, second = flights_parquet()
    whole = CACHE / "flights_all.parquet"
    if not whole.exists():
        df = pd.concat([pd.read_parquet(first), pd.read_parquet(second)], ignore_index=True)
        df.to_parquet(whole, index=False)
    return whole, pd.read_parquet(whole)


def _pipeline(whole: Path, df: pd.DataFrame) -> dict[str, Any]:
    """Ingest + validate steps of `mlcycle run` on the whole flights file.

    A warm-up run on 1% of the rows first, so the figure is the work itself and
    not the one-off imports (pandas, pyarrow, duckdb, sklearn) and migrations of a
    fresh store; the cold figure is reported beside it.
    """
    from mlcycle.examples.flights import SPEC
    from mlcycle.pipeline.project import Project

    def project_for(folder: Path, data: Path) -> Project:
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "flights.parquet").symlink_to(data)
        (folder / "mlcycle.yaml").write_text(SPEC)
        return Project.load(folder / "mlcycle.yaml")

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        small = work / "small.parquet"
        df.sample(frac=0.01, random_state=0).sort_values("time_hour").to_parquet(small)
        warm = project_for(work / "warm", small)
        t0 = time.perf_counter()
        warm.run(until="validate")
        cold = time.perf_counter() - t0
        warm.close()
        project = project_for(work / "full", whole)
        try:
            project.store  # noqa: B018 - open (and migrate) the new store outside the timing
            t0 = time.perf_counter()
            report = project.run(until="validate")
            seconds = time.perf_counter() - t0
            steps = {s.step: round(s.seconds, 3) for s in report.steps}
            rows = int(report.steps[0].summary["rows"])
            t0 = time.perf_counter()
            again = project.run(until="validate")
            cached = time.perf_counter() - t0
            assert {s.status for s in again.steps} == {"cached"}
        finally:
            project.close()
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "steps_s": steps,
        "second_run_cached_s": round(cached, 3),
        "cold_first_run_1pct_s": round(cold, 3),
    }


def _big_csv(df: pd.DataFrame, rows: int) -> Path:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    path = CACHE / f"flights_{rows}.csv"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    sample = df.iloc[rng.integers(0, len(df), size=rows)].reset_index(drop=True)
    sample["flight_id"] = np.arange(rows)
    tmp = path.with_suffix(".tmp")
    pcsv.write_csv(pa.Table.from_pandas(sample, preserve_index=False), tmp)
    tmp.replace(path)
    return path


def _streamed(csv: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-data-csv-") as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, tmp, str(csv)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "rows": out["rows"],
        "csv_mb": round(csv.stat().st_size / 1e6, 1),
        "ingest_s": round(out["seconds"], 2),
        "rows_per_s": round(out["rows"] / out["seconds"]),
        "process_wall_s": round(wall, 2),
        # ru_maxrss of children is the largest child so far (KiB on Linux).
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 1),
        "peak_rss_is_max_over_children": before > peak_kib,
    }


def _profiling(whole: Path, df: pd.DataFrame, rows: int) -> dict[str, Any]:
    from mlcycle.data import compute_profile, infer_schema
    from mlcycle.spec import Features, Problem

    frame = df.sample(n=rows, random_state=0) if rows < len(df) else df
    problem = Problem(task="binary", target="delayed", id_column="flight_id")
    schema = infer_schema(frame, problem, Features(exclude=["year"]))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        compute_profile(frame, schema)
        best = min(best, time.perf_counter() - t0)
    ydata = run_alternative(_YDATA, str(whole), str(rows))
    return {
        "rows": len(frame),
        "columns": frame.shape[1],
        "mlcycle_s": round(best, 3),
        "ydata_profiling_minimal_s": round(ydata["seconds"], 3),
        "speedup_vs_ydata": round(ydata["seconds"] / best, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    whole, df = _flights()
    result: dict[str, Any] = {}
    result["flights_ingest_validate_profile"] = _pipeline(whole, df)
    csv = _big_csv(df, 500_000 if quick else 5_000_000)
    result["streamed_csv_ingest"] = _streamed(csv)
    result["profiling"] = _profiling(whole, df, 50_000 if quick else len(df))
    return result
