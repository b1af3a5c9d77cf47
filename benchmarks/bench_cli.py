"""CLI benchmark: `mlcycle` as whole processes, as a user at a shell meets it.

Every figure times a fresh process from spawn to exit (interpreter start,
imports, reading, work, writing), ``RUNS`` times, and reports the median wall
time and the median CPU time (user + system, from ``wait4``) of the child. On a
loaded machine the wall time includes waiting for a core; the CPU time of a
single-threaded start-up is close to what the same run takes on an idle one.

1. start-up: `mlcycle --help`, `mlcycle models list`, and a 10-row
   `mlcycle predict models:/flights@champion` (the batch job's fixed cost:
   start, resolve and verify the bundle, load, checks, score 10 rows, write),
   on a small flights project trained once and cached; plus the ``-X importtime``
   cumulative time of ``mlcycle.cli.main`` (less sensitive to load);
2. batch: 1,000,000 flights rows Parquet → Parquet by `mlcycle predict` (the
   serving benchmark's bundle: HistGradientBoosting, 200 iterations) as a whole
   process, against scikit-learn's ``predict_proba`` on the same frame already
   loaded in memory, measured in the same run;
3. drift: ad-hoc `mlcycle monitor drift` (Evidently's tests, the monitoring
   benchmark's 12 features, January-June vs July-December) as a whole process,
   against Evidently's ``DataDriftPreset`` as a whole process (its interpreter,
   imports and reads included), in ``.venv-bench``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_monitor import EVIDENTLY, FEATURES
from common import ALT_PYTHON, CACHE, ROOT, flights_parquet

MLCYCLE = ROOT / ".venv" / "bin" / "mlcycle"
PYTHON = ROOT / ".venv" / "bin" / "python"
PROJECT = CACHE / "cli" / "proj"


def run(quick: bool) -> dict[str, Any]:
    runs = 5 if quick else 15
    out: dict[str, Any] = {
        "runs": runs,
        "load_before": list(os.getloadavg()),
        # Both sides of the batch comparison run with the same environment.
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    project = _project()
    ten = _first_rows(project / "data" / "flights_future.parquet", 10)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        out["help"] = _timed([str(MLCYCLE), "--help"], runs, cwd=work)
        out["models_list"] = _timed([str(MLCYCLE), "models", "list"], runs, cwd=project)
        out["predict_10_rows"] = _timed(
            [str(MLCYCLE), "predict", "flights@champion", "-i", str(ten), "-o",
             str(work / "ten.parquet")],
            runs, cwd=project,
        )  # fmt: skip
        out["importtime_cli_main_ms"] = _importtime("mlcycle.cli.main", runs)
        out["batch"] = _batch(work, quick)
        out["drift"] = _drift(work, quick)
    out["load_after"] = list(os.getloadavg())
    out["targets"] = {
        "help<0.3s": out["help"]["median_s"] < 0.3,
        "models_list<0.5s": out["models_list"]["median_s"] < 0.5,
        "predict_fixed_cost<1s": out["predict_10_rows"]["median_s"] < 1.0,
        "batch_whole_process>=1.6x_sklearn_in_process": out["batch"]["speedup"] >= 1.6,
        "drift_whole_process>=10x_evidently": out["drift"]["speedup"] >= 10,
    }
    out["targets_by_cpu_time"] = {
        "help<0.3s": out["help"]["median_cpu_s"] < 0.3,
        "models_list<0.5s": out["models_list"]["median_cpu_s"] < 0.5,
        "predict_fixed_cost<1s": out["predict_10_rows"]["median_cpu_s"] < 1.0,
    }
    return out


# --- measuring a process ------------------------------------------------------------------


def _once(args: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run a process to its end: wall seconds, CPU seconds (user + system) and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    with tempfile.TemporaryFile() as stdout:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {err[-2000:]}")
        stdout.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, stdout.read().decode()


def _timed(args: list[str], runs: int, cwd: Path) -> dict[str, Any]:
    _once(args, cwd)  # warm the page cache: every run below starts from the same state
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu, _ = _once(args, cwd)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "median_s": round(statistics.median(walls), 3),
        "min_s": round(min(walls), 3),
        "max_s": round(max(walls), 3),
        "median_cpu_s": round(statistics.median(cpus), 3),
    }


def _importtime(module: str, runs: int) -> float:
    """Median cumulative ``-X importtime`` of ``module`` in a fresh interpreter, in ms."""
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [str(PYTHON), "-X", "importtime", "-c", f"import {module}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        for line in done.stderr.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                times.append(int(parts[1]) / 1000)
    return round(statistics.median(times), 1)


# --- data ---------------------------------------------------------------------------------


def _project() -> Path:
    """A flights project (5% of the rows) trained once: a champion to list and to score."""
    if (PROJECT / ".mlcycle" / "mlcycle.db").is_file() and (PROJECT / ".trained").is_file():
        return PROJECT
    PROJECT.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(MLCYCLE), "init", str(PROJECT), "--example", "flights", "--sample", "0.05"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run([str(MLCYCLE), "run", "--json"], cwd=PROJECT, check=True, capture_output=True)
    (PROJECT / ".trained").touch()
    return PROJECT


def _first_rows(source: Path, rows: int) -> Path:
    import pyarrow.parquet as pq

    path = CACHE / "cli" / f"first_{rows}.parquet"
    if not path.exists():
        pq.write_table(pq.read_table(source).slice(0, rows), path)
    return path


def _batch_source(rows: int) -> Path:
    """The serving benchmark's batch file: the flights year repeated to ``rows`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = CACHE / "serving" / f"batch_{rows}.parquet"
    if not source.exists():
        train, future = flights_parquet()
        table = pa.concat_tables([pq.read_table(train), pq.read_table(future)])
        big = pa.concat_tables([table] * -(-rows // table.num_rows)).slice(0, rows)
        ids = pa.array([f"R{i}" for i in range(rows)])
        big = big.set_column(big.schema.get_field_index("flight_id"), "flight_id", ids)
        source.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(big, source)
    return source


# --- batch: whole process vs scikit-learn in process --------------------------------------


def _batch(work: Path, quick: bool) -> dict[str, Any]:
    import joblib
    import pandas as pd
    from bench_serving import _bundle

    rows = 200_000 if quick else 1_000_000
    repeats = 1 if quick else 3
    bundle, _ = _bundle()
    source = _batch_source(rows)
    args = [str(MLCYCLE), "predict", str(bundle), "-i", str(source), "-o",
            str(work / "scored.parquet"), "--json"]  # fmt: skip
    ours = [_once(args, work) for _ in range(repeats)]
    result = json.loads(ours[-1][2])
    model = joblib.load(bundle / "model.joblib")
    features = json.loads((bundle / "meta.json").read_text())["features"]
    frame = pd.read_parquet(source, columns=features)
    theirs = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_proba(frame)
        theirs.append(time.perf_counter() - started)
    ours_s = statistics.median(w for w, _, _ in ours)
    theirs_s = statistics.median(theirs)
    return {
        "rows": rows,
        "engine": result["engine"],
        "mlcycle_whole_process_s": round(ours_s, 3),
        "mlcycle_whole_process_cpu_s": round(statistics.median(c for _, c, _ in ours), 3),
        # What the job itself reports: reading, checking, scoring and writing, no start-up.
        "mlcycle_job_s": round(float(result["seconds"]), 3),
        "sklearn_predict_proba_in_process_s": round(theirs_s, 3),
        "speedup": round(theirs_s / ours_s, 2),
    }


# --- drift: whole process vs Evidently as a whole process ---------------------------------


def _drift(work: Path, quick: bool) -> dict[str, Any]:
    if not ALT_PYTHON.exists():
        raise SystemExit("bench: .venv-bench is missing; run `make bench`, which creates it")
    repeats = 1 if quick else 3
    train, future = flights_parquet()
    ours = _timed(
        [str(MLCYCLE), "monitor", "drift", "-r", str(train), "-c", str(future), "--test",
         "evidently", "--columns", ",".join(FEATURES), "--json"],
        5 if quick else 10, cwd=work,
    )  # fmt: skip
    alt_args = [str(ALT_PYTHON), "-c", EVIDENTLY, str(train), str(future), "1",
                json.dumps(FEATURES)]  # fmt: skip
    theirs = [_once(alt_args, work) for _ in range(repeats)]
    theirs_s = statistics.median(w for w, _, _ in theirs)
    return {
        "features": len(FEATURES),
        "mlcycle_whole_process": ours,
        "evidently_whole_process_s": round(theirs_s, 3),
        "evidently_whole_process_cpu_s": round(statistics.median(c for _, c, _ in theirs), 3),
        "evidently_version": json.loads(theirs[-1][2].strip().splitlines()[-1])["version"],
        "speedup": round(theirs_s / ours["median_s"], 1),
        "speedup_by_cpu_time": round(
            statistics.median(c for _, c, _ in theirs) / ours["median_cpu_s"], 1
        ),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
