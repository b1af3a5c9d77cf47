"""The dashboard's server time on a big tracking store, with MLflow's search API beside it.

One flights project (a 2% sample, trained and registered once so the model
pages have a real version), plus 20,000 tracked runs × 10 metrics and 5
params in SQLite. Each page is requested in-process (Starlette's test client)
``REPEAT`` times; the figure is the handler's own time from the
``server-timing`` header it sends (guard, reads, template), median and worst.

MLflow (in ``.venv-bench``) gets the same 20,000 runs × 10 metrics × 5 params
in its own SQLite store (inserted through its own table models in one
transaction, not timed) and answers the calls its UI makes for the runs
table: ``search_runs`` for one page of 50 (newest first, filtered, sorted by a
metric) and ``get_run`` for one run.

Goals (issue 15): the runs page < 300 ms, a model or run page < 100 ms.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ALT_PYTHON, run_alternative

REPEAT = 7
FILTER = "metrics.m0 > 0.5 and params.p0 = 'a'"

MLFLOW = r"""
import json, os, sys, tempfile, time, logging, uuid
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
logging.disable(logging.WARNING)
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking import MlflowClient
runs, repeat = int(sys.argv[1]), int(sys.argv[2])
folder = tempfile.mkdtemp()
uri = f"sqlite:///{folder}/mlflow.db"
store = SqlAlchemyStore(uri, f"{folder}/artifacts")
exp = store.create_experiment("grid")
# Loaded (not timed) through MLflow's own tables in one transaction: its client takes
# three transactions per run, minutes for 20,000 runs on a shared machine.
t = time.perf_counter()
now = int(time.time() * 1000)
rows = {"runs": [], "metrics": [], "latest": [], "params": []}
ids = []
for r in range(runs):
    rid = uuid.uuid4().hex
    ids.append(rid)
    rows["runs"].append(dict(
        run_uuid=rid, name=f"r{r}", source_type="LOCAL", source_name="", entry_point_name="",
        user_id="bench", status="FINISHED", start_time=now + r, end_time=now + r + 1,
        source_version="", lifecycle_stage="active", artifact_uri=f"{folder}/artifacts/{rid}",
        experiment_id=int(exp),
    ))
    for k in range(10):
        point = dict(key=f"m{k}", value=((r * 7 + k) % 100) / 100, timestamp=now + r, step=0,
                     is_nan=False, run_uuid=rid)
        rows["metrics"].append(point)
        rows["latest"].append(point)
    for k in range(5):
        rows["params"].append(dict(key=f"p{k}", value="a" if (r + k) % 2 else "b", run_uuid=rid))
with store.ManagedSessionMaker() as session:
    for model, key in ((SqlRun, "runs"), (SqlMetric, "metrics"), (SqlLatestMetric, "latest"),
                       (SqlParam, "params")):
        session.execute(model.__table__.insert(), rows[key])
out = {"load_seconds": time.perf_counter() - t}
client = MlflowClient(tracking_uri=uri)
assert len(client.search_runs([exp], max_results=10)) == 10

def timed(fn):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"median_ms": times[len(times) // 2], "max_ms": times[-1]}

out["runs_page_newest"] = timed(lambda: client.search_runs([exp], max_results=50))
out["runs_page_filtered"] = timed(
    lambda: client.search_runs([exp], "metrics.m0 > 0.5 and params.p0 = 'a'", max_results=50)
)
out["runs_page_sorted_by_metric"] = timed(
    lambda: client.search_runs([exp], max_results=50, order_by=["metrics.m3 DESC"])
)
out["run_page"] = timed(lambda: client.get_run(ids[runs // 2]))
print(json.dumps(out))
"""


def _project(folder: Path, runs: int) -> tuple[Any, float]:
    """A trained flights project whose store also holds ``runs`` synthetic tracked runs."""
    from mlcycle.examples import EXAMPLES
    from mlcycle.pipeline.project import Project
    from mlcycle.train.tracking import Tracker

    EXAMPLES["flights"](folder, sample=0.02)
    project = Project.load(folder)
    project.run()
    tracker = Tracker(project.store, flush_interval=3600)
    started = time.perf_counter()
    for r in range(runs):
        with tracker.start_run(f"r{r}", experiment="grid") as run:
            run.log_params({f"p{k}": ("a" if (r + k) % 2 else "b") for k in range(5)})
            run.log_metrics({f"m{k}": ((r * 7 + k) % 100) / 100 for k in range(10)})
        if r % 2000 == 1999:
            tracker.flush()
    tracker.flush()
    tracker.close()
    return project, time.perf_counter() - started


def _timed(client: Any, path: str) -> dict[str, float]:
    server: list[float] = []
    wall: list[float] = []
    for _ in range(REPEAT):
        t = time.perf_counter()
        response = client.get(path)
        wall.append((time.perf_counter() - t) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}\n{response.text[:800]}")
        match = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
        if match is None:
            raise RuntimeError(f"{path}: no server-timing header")
        server.append(float(match.group(1)))
    return {
        "median_ms": statistics.median(server),
        "max_ms": max(server),
        "wall_median_ms": statistics.median(wall),
    }


def _mlcycle(runs: int) -> dict[str, Any]:
    from starlette.testclient import TestClient

    from mlcycle.train.tracking import query
    from mlcycle.ui import AccessPolicy, create_app

    project, load_seconds = _project(Path(tempfile.mkdtemp()) / "proj", runs)
    newest = query.search_runs(project.store.engine, limit=runs, details=False)
    # The cursor of the last page, as the page before it hands it out (start times are unique).
    last = f"{newest[-51].info['start_time']!r}:1"
    client = TestClient(create_app(project, AccessPolicy()))
    client.get("/")  # templates compiled, imports done: not timed
    pages = {
        "runs_page_newest": "/runs",
        "runs_page_filtered": f"/runs?filter={FILTER}",
        "runs_page_sorted_by_metric": "/runs?order=metrics.m3+desc&m=m3&m=m0",
        "runs_page_last": f"/runs?after={last}&offset={len(newest) - 50}",
        "runs_page_one_experiment": "/runs?experiment=grid",
        "run_page": f"/runs/{newest[runs // 2].id}",
        "model_page": "/models/flights",
        "model_version_page": "/models/flights/1",
        "overview": "/",
    }
    out: dict[str, Any] = {"load_seconds": load_seconds}
    for name, path in pages.items():
        out[name] = _timed(client, path)
    project.close()
    return out


def run(quick: bool) -> dict[str, Any]:
    runs = 2000 if quick else 20_000
    ours = _mlcycle(runs)
    if ALT_PYTHON.exists():
        theirs: dict[str, Any] = run_alternative(MLFLOW, str(runs), str(REPEAT), timeout=3600)
    else:
        theirs = {"skipped": ".venv-bench is missing (make bench creates it)"}
    common = [k for k in ours if isinstance(ours[k], dict) and k in theirs]
    return {
        "runs": runs,
        "metrics_per_run": 10,
        "params_per_run": 5,
        "repeat": REPEAT,
        "mlcycle": ours,
        "mlflow_search_api": theirs,
        "speedup_median": {
            k: round(theirs[k]["median_ms"] / ours[k]["median_ms"], 1) for k in common
        },
        "goals": {
            "runs_page_under_300ms": all(
                ours[k]["median_ms"] < 300 for k in ours if k.startswith("runs_page")
            ),
            "model_and_run_pages_under_100ms": all(
                ours[k]["median_ms"] < 100 for k in ("run_page", "model_page", "model_version_page")
            ),
        },
    }


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2))
