"""Batch prediction on Ray vs the local engine, 1M flights rows, on this one machine.

What it measures (same model, the flights HistGradientBoosting bundle of
``bench_serving``, same input file):

- the local engine (``predict_file``, every core) — the named alternative;
- ``--engine ray`` on a local cluster of this machine's cores: cluster start,
  a cold job (actors start, load the bundle) and a warm one: Ray's overhead on
  one node;
- one actor's throughput: :class:`RayChunkScorer` called in this process on
  the job's 100k-row chunks (checks, scoring on one core, output encoding) —
  what each actor of a bigger cluster adds;
- the driver's output rate (decoding the actors' chunks and writing the one
  output file), which no number of nodes raises.

From those, an *estimate* (not a measurement) of rows/s on N nodes, with its
assumptions in the JSON. Timings on a shared machine are noisy: the load
average is recorded next to them.

Example:
    $ .venv/bin/python benchmarks/run.py ray          # or: --quick (200k rows)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from common import CACHE, flights_parquet

# Nodes the estimate is given for, and the cores each is assumed to have.
NODES = (1, 2, 4, 8, 16)
CORES_PER_NODE = 8
CHUNK_ROWS = 100_000


def run(quick: bool) -> dict[str, Any]:
    import ray
    from bench_serving import _bundle

    from mlcycle.serve import ModelRuntime, predict_file

    n = 200_000 if quick else 1_000_000
    source = _source(n)
    bundle, _ = _bundle()
    runtime = ModelRuntime.load(bundle, 1)
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scored.parquet"
        local_s, local = _timed(lambda: predict_file(runtime, str(source), str(out)))
        reference = pq.read_table(out)
        started = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=cores,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
        cluster_s = time.perf_counter() - started
        try:
            ray_out = Path(tmp) / "ray.parquet"
            runs = [
                _timed(lambda: predict_file(runtime, str(source), str(ray_out), engine="ray"))
                for _ in range(2)
            ]
            same = pq.read_table(ray_out).equals(reference)
        finally:
            ray.shutdown()
        # The actors' builder makes the scored columns; out_of_range is appended after.
        scored = pa.schema([f for f in reference.schema if f.name != "out_of_range"])
        actor_rows_s = _one_actor(runtime, bundle, source, scored)
        driver_rows_s = _driver_rate(reference, Path(tmp))
    (cold_s, result), (warm_s, _) = runs
    actors_here = max(1, cores - 1)
    return {
        "rows": n,
        "cores": cores,
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "local_engine": {
            "seconds": round(local_s, 2),
            "rows_per_s": round(n / local_s),
            "engine": local["engine"],
        },
        "ray_one_node": {
            "cluster_start_seconds": round(cluster_s, 2),
            "actors": actors_here,
            "cold_job_seconds": round(cold_s, 2),
            "warm_job_seconds": round(warm_s, 2),
            "warm_rows_per_s": round(n / warm_s),
            "overhead_vs_local_warm": round(warm_s / local_s, 2),
            "engine": result["engine"],
            "output_equals_local": same,
        },
        "one_actor_rows_per_s": round(actor_rows_s),
        "driver_write_rows_per_s": round(driver_rows_s),
        "estimate_rows_per_s_by_nodes": {
            str(nodes): round(min((nodes * CORES_PER_NODE - 1) * actor_rows_s, driver_rows_s))
            for nodes in NODES
        },
        "estimate_assumptions": [
            f"each node has {CORES_PER_NODE} cores; one Ray actor per core, one core of the "
            "cluster left for Ray Data's read tasks",
            "each actor scores at one_actor_rows_per_s, as measured here on one core "
            "(the same model, 100k-row chunks)",
            "reading scales with the nodes: the input is split over many files on object "
            "storage with bandwidth to spare",
            "the driver decodes every chunk and writes the one output file: "
            "driver_write_rows_per_s caps the job whatever the nodes",
            "no cluster start or actor start in the rate (a long job amortises them: see "
            "cold_job_seconds - warm_job_seconds)",
        ],
    }


def _timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _source(n: int) -> Path:
    """The flights rows (both halves), repeated to ``n`` rows with unique ids; cached."""
    source = CACHE / "ray" / f"batch_{n}.parquet"
    if source.exists():
        return source
    source.parent.mkdir(parents=True, exist_ok=True)
    train, future = flights_parquet()
    table = pa.concat_tables([pq.read_table(train), pq.read_table(future)])
    big = pa.concat_tables([table] * -(-n // table.num_rows)).slice(0, n)
    ids = pa.array([f"R{i}" for i in range(n)])
    big = big.set_column(big.schema.get_field_index("flight_id"), "flight_id", ids)
    pq.write_table(big, source, row_group_size=CHUNK_ROWS)
    return source


def _one_actor(runtime: Any, bundle: Path, source: Path, schema: pa.Schema) -> float:
    """Rows/s of one actor's work (checks, one-core scoring, encoding), in this process."""
    from mlcycle.serve.batch.ray_engine import RayChunkScorer

    files = {str(p.relative_to(bundle)): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    actor = RayChunkScorer(files, 1, runtime.out_of_range, "parquet", schema, "flight_id")
    columns = ["flight_id", *[f for f in runtime.features if f != "flight_id"]]
    busy, rows = 0.0, 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK_ROWS, columns=columns):
        table = pa.Table.from_batches([batch])
        started = time.perf_counter()
        actor(table)
        busy += time.perf_counter() - started
        rows += table.num_rows
    return rows / busy


def _driver_rate(reference: pa.Table, folder: Path) -> float:
    """Rows/s the driver takes chunks in at: decode the Arrow IPC record, write Parquet."""
    from mlcycle.serve.batch.write import ParquetOrCsvWriter

    sink = pa.BufferOutputStream()
    chunk = reference.slice(0, CHUNK_ROWS)
    with pa.ipc.new_stream(sink, chunk.schema) as stream:
        stream.write_table(chunk)
    blob = sink.getvalue()
    writer = ParquetOrCsvWriter(folder / "driver.parquet", "parquet", reference.schema)
    started = time.perf_counter()
    for _ in range(max(1, reference.num_rows // CHUNK_ROWS)):
        writer.write(pa.ipc.open_stream(blob).read_all())
    writer.close()
    return max(1, reference.num_rows // CHUNK_ROWS) * CHUNK_ROWS / (time.perf_counter() - started)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
