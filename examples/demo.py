"""The whole lifecycle on the flights example, through the real CLI (run by `make demo`).

init → run (ingest … promote) → serve + one REST request → batch prediction →
drift report of July–December → a second, cached run. Every command is
printed before it runs, so this doubles as a tour of the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO = Path(os.environ.get("MLCYCLE_DEMO_DIR", ROOT / ".demo" / "flights"))
MLCYCLE = [str(Path(sys.executable).parent / "mlcycle")]


def sh(*args: str, capture: bool = False) -> str:
    print(f"\n$ mlcycle {' '.join(args)}", flush=True)
    result = subprocess.run(
        [*MLCYCLE, *args], cwd=DEMO, text=True, capture_output=capture, check=False
    )
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"demo: `mlcycle {' '.join(args)}` failed (exit {result.returncode})")
    return result.stdout if capture else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_once(port: int) -> None:
    print(f"\n$ curl -X POST http://127.0.0.1:{port}/predict -d '[{{…one flight…}}]'", flush=True)
    row = {
        "month": 7,
        "day": 14,
        "dep_time": 1742.0,
        "sched_dep_time": 1700,
        "dep_delay": 42.0,
        "sched_arr_time": 1955,
        "carrier": "UA",
        "origin": "EWR",
        "dest": "ORD",
        "distance": 719,
        "hour": 17,
        "minute": 0,
    }
    response = httpx.post(f"http://127.0.0.1:{port}/predict", json=[row], timeout=10)
    response.raise_for_status()
    print(json.dumps(response.json(), indent=2))


def serve_and_request() -> None:
    port = free_port()
    print(f"\n$ mlcycle serve models:/flights@champion --port {port} &", flush=True)
    server = subprocess.Popen(
        [*MLCYCLE, "serve", "models:/flights@champion", "--port", str(port)], cwd=DEMO
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("demo: the REST service did not become ready")
            time.sleep(0.2)
        request_once(port)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    if DEMO.exists():
        shutil.rmtree(DEMO)
    DEMO.mkdir(parents=True)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    sh("init", ".", "--example", "flights")
    timings["init"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sh("run")
    timings["run"] = time.perf_counter() - t0

    serve_and_request()

    t0 = time.perf_counter()
    sh(
        "predict",
        "models:/flights@champion",
        "--input",
        "data/flights_future.parquet",
        "--output",
        "predictions/july_december.parquet",
    )
    timings["predict"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sh(
        "monitor",
        "drift",
        "--current",
        "data/flights_future.parquet",
        "--output",
        "reports/drift_july_december.json",
    )
    timings["drift"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    sh("run")
    timings["cached_run"] = time.perf_counter() - t0

    shown = json.loads(sh("models", "show", "flights@champion", "--json", capture=True))
    print("\n" + "=" * 72)
    print(f"champion: {shown['name']} v{shown['version']}  (bundle {shown['bundle_id'][:12]})")
    print(f"{'holdout metric':<16}{'champion':>10}{'baseline':>10}")
    for name, value in shown["metrics"].items():
        base = shown["baseline_metrics"].get(name)
        print(f"{name:<16}{value:>10.4f}{'' if base is None else f'{base:>10.4f}'}")
    if shown.get("decision_threshold") is not None:
        # The flights spec has a benefit matrix: its threshold (chosen on
        # validation) is what /predict and batch label with, not 0.5.
        print(f"decision threshold: P(delayed) ≥ {shown['decision_threshold']:.4f} → delayed")
    print(f"\nproject:      {DEMO}")
    print(f"model bundle: {shown['bundle_path']}  (MODEL_CARD.md, evaluation.json, blessing.json)")
    print(f"predictions:  {DEMO / 'predictions' / 'july_december.parquet'}")
    print(f"drift report: {DEMO / 'reports' / 'drift_july_december.json'}")
    print(f"serve it:     cd {DEMO} && {MLCYCLE[0]} serve models:/flights@champion")
    print("timings (s):  " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()))
    print("=" * 72)


if __name__ == "__main__":
    main()
