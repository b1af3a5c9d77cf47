"""Experiment tracking: mlcycle vs MLflow (both on SQLite), in the same run.

Three workloads, each timed until the data is in the database (mlcycle's
buffered writes are flushed inside the timing):

* single ``log_metric`` calls in one run,
* metric points logged in batches (``log_metrics`` of 100 keys per step),
* 200 runs with 10 params and 10 metrics each, then a filtered search.

Goal (issue 4): mlcycle ≥ 30× MLflow on each.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import run_alternative

MLFLOW = r"""
import json, os, sys, tempfile, time, logging
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
logging.disable(logging.WARNING)
import mlflow
single, points, runs = (int(a) for a in sys.argv[1:4])
folder = tempfile.mkdtemp()
mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
mlflow.set_experiment("bench")  # creates the schema: not timed
out = {}

with mlflow.start_run():
    t = time.perf_counter()
    for i in range(single):
        mlflow.log_metric("m", float(i), step=i)
    out["single_seconds"] = time.perf_counter() - t

with mlflow.start_run():
    t = time.perf_counter()
    for step in range(points // 100):
        mlflow.log_metrics({f"k{k}": float(step + k) for k in range(100)}, step=step)
    out["batched_seconds"] = time.perf_counter() - t

mlflow.set_experiment("grid")
t = time.perf_counter()
for r in range(runs):
    with mlflow.start_run():
        mlflow.log_params({f"p{k}": ("a" if (r + k) % 2 else "b") for k in range(10)})
        mlflow.log_metrics({f"m{k}": ((r * 7 + k) % 100) / 100 for k in range(10)})
found = mlflow.search_runs(
    experiment_names=["grid"], filter_string="metrics.m0 > 0.5 and params.p0 = 'a'"
)
out["runs_search_seconds"] = time.perf_counter() - t
out["runs_found"] = len(found)
print(json.dumps(out))
"""


def _mlcycle(single: int, points: int, runs: int) -> dict[str, Any]:
    from mlcycle.store import Store
    from mlcycle.train.tracking import Tracker, query

    folder = Path(tempfile.mkdtemp())
    store = Store.open(folder)  # creates the schema: not timed
    tracker = Tracker(store)
    out: dict[str, Any] = {}

    with tracker.start_run("single") as run:
        t = time.perf_counter()
        for i in range(single):
            run.log_metric("m", float(i), step=i)
        tracker.flush()
        out["single_seconds"] = time.perf_counter() - t

    with tracker.start_run("batched") as run:
        t = time.perf_counter()
        for step in range(points // 100):
            run.log_metrics({f"k{k}": float(step + k) for k in range(100)}, step=step)
        tracker.flush()
        out["batched_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    for r in range(runs):
        with tracker.start_run(f"r{r}", experiment="grid") as run:
            run.log_params({f"p{k}": ("a" if (r + k) % 2 else "b") for k in range(10)})
            run.log_metrics({f"m{k}": ((r * 7 + k) % 100) / 100 for k in range(10)})
    tracker.flush()
    found = query.search_runs(
        tracker.engine,
        experiment="grid",
        filter="metrics.m0 > 0.5 and params.p0 = 'a'",
        limit=10_000,
    )
    out["runs_search_seconds"] = time.perf_counter() - t
    out["runs_found"] = len(found)
    tracker.close()
    store.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    # MLflow is slow enough that its quick sizes are smaller; rates are compared.
    ours_sizes = (5000, 100_000, 200)
    theirs_sizes = (500, 10_000, 50) if quick else (5000, 100_000, 200)
    ours = _mlcycle(*ours_sizes)
    theirs = run_alternative(MLFLOW, *(str(s) for s in theirs_sizes))
    rates = {}
    for label, (ours_s, theirs_s) in {
        "single": (ours["single_seconds"], theirs["single_seconds"]),
        "batched": (ours["batched_seconds"], theirs["batched_seconds"]),
        "runs_search": (ours["runs_search_seconds"], theirs["runs_search_seconds"]),
    }.items():
        index = {"single": 0, "batched": 1, "runs_search": 2}[label]
        rates[label] = {
            "mlcycle_per_s": ours_sizes[index] / ours_s,
            "mlflow_per_s": theirs_sizes[index] / theirs_s,
        }
        rates[label]["speedup"] = rates[label]["mlcycle_per_s"] / rates[label]["mlflow_per_s"]
    unit = {"single": "calls", "batched": "points", "runs_search": "runs"}
    return {
        "sizes": {"mlcycle": ours_sizes, "mlflow": theirs_sizes},
        "mlcycle": ours,
        "mlflow": theirs,
        "rates": {k: {**v, "unit": unit[k]} for k, v in rates.items()},
        "speedup": {k: round(v["speedup"], 1) for k, v in rates.items()},
        "goal_30x_met": all(v["speedup"] >= 30 for v in rates.values()),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
