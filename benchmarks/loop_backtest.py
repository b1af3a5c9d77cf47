"""Loop backtest benchmark: the flights replay with all five policies, timed (JSON out).

The flights example (its features leave out ``month``, as the issue measured it:
July–December months never occur in January–June) — trained on January–June and
replayed month by month over July–December with ``mlcycle loop backtest``'s engine
(:func:`mlcycle.loop.backtest.run_backtest`): every retrain a real pipeline run
through the gate, the cuts shared across policies through the step cache.
Target: all five policies in under 5 minutes on the 2-core machine.

The ``loop:`` section added to the example's spec is the one shown in docs/loop.md:
a retrain costs 5,000 benefit units (the matrix's units: 100 missed delays), gain
(what a refit of the champion recovers out of time, ``mlcycle.loop.recovery``)
weighed over a 30-day horizon. The JSON records the load average at start and end and
``OMP_NUM_THREADS``: timings on a shared machine are only comparable with both.

Usage: .venv/bin/python benchmarks/loop_backtest.py [--chicago] [--out FILE]
(``--chicago`` also replays the Chicago example by year.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import CACHE, ROOT

FLIGHTS_LOOP = """
loop:
  triggers:
    performance: {}
    drift: {windows: 2}
  policy:
    cooldown: 7d
    max_retrains: 4
    period: 180d
    retrain_cost: 5000       # benefit units: 100 missed delays
    horizon: 30d
"""


def _flights(folder: Path) -> Path:
    from mlcycle.examples.flights import SPEC, write_example

    write_example(folder)
    (folder / "mlcycle.yaml").write_text(SPEC + FLIGHTS_LOOP, encoding="utf-8")
    return folder


def _chicago(folder: Path) -> Path:
    from mlcycle.examples.chicago import write_example

    write_example(folder)
    return folder


def _replay(folder: Path, window: str) -> dict[str, Any]:
    from mlcycle.loop.backtest import run_backtest
    from mlcycle.pipeline.project import Project

    started = time.perf_counter()
    result = run_backtest(
        Project.load(folder),
        window=window,
        listener=lambda line: print(f"  {line}", file=sys.stderr),
    )
    doc = result.to_dict()
    doc["wall_seconds"] = round(time.perf_counter() - started, 1)
    for policy in doc["policies"]:
        policy["windows"] = [
            {k: w[k] for k in ("window", "champion", "metric", "value", "rows")}
            | {"events": [e["kind"] for e in w["events"]]}
            for w in policy["windows"]
        ]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chicago", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "loop_backtest.json"
    )
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
            # HistGradientBoosting's OpenMP threads spin on a busy machine: say how it ran.
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    runs = [("flights", _flights, "month")]
    if args.chicago:
        runs.append(("chicago", _chicago, "year"))
    for name, make, window in runs:
        folder = CACHE / f"loop_backtest_{name}"
        shutil.rmtree(folder, ignore_errors=True)  # a cold run: no step reused from before
        folder.mkdir(parents=True)
        out[name] = _replay(make(folder), window)
        out[name]["under_5_minutes"] = out[name]["wall_seconds"] < 300
    out["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
