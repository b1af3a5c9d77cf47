"""A/B against another checkout: is this change within a few percent of before?

On a shared or noisy machine two benchmark runs minutes apart can differ by
20 % with no code change, so a before/after figure taken once each says
little. This runs the same measurement from both checkouts in alternation,
flipping the order every round, and reports the ratio new/base *within* each
round and its median.

    git worktree add ../base <rev> && make -C ../base install
    .venv/bin/python benchmarks/ab.py serving --base ../base --rounds 8
    .venv/bin/python benchmarks/ab.py drift tracking batch --base ../base

- ``serving``: four servers up at once (base/new × prediction log off/on, 2
  workers each); ``wrk`` loads one at a time for ``--seconds``: single-row
  requests/s, 100-row rows/s, and the log's cost in each checkout.
- ``drift``: ``drift_report`` on the flights halves, Evidently mode and
  calibrated mode (warm), median of 7 calls.
- ``tracking``: the mlcycle side of ``bench_tracking``.
- ``batch``: 1M rows Parquet → Parquet with ``predict_file``.

Each measurement of ``drift``, ``tracking`` and ``batch`` runs in a fresh
process of that checkout's own venv (``<checkout>/.venv``). Results go to
``benchmarks/results/ab_<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# One measurement in one checkout; run with that checkout's interpreter.
_INNER = r"""
import json, statistics, sys, time
from pathlib import Path
checkout, what = Path(sys.argv[1]), sys.argv[2]
sys.path.insert(0, str(checkout / "benchmarks"))
out = {}
if what == "drift":
    import pandas as pd
    from common import flights_parquet
    from bench_monitor import FEATURES
    from mlcycle.monitor import drift_report
    train, future = flights_parquet()
    ref, cur = pd.read_parquet(train), pd.read_parquet(future)
    for test in ("evidently", "auto"):
        drift_report(ref, cur, FEATURES, test=test)  # warm: the calibrated mode memoizes
        times = []
        for _ in range(7):
            start = time.perf_counter()
            drift_report(ref, cur, FEATURES, test=test)
            times.append(time.perf_counter() - start)
        out[f"{test}_seconds"] = statistics.median(times)
elif what == "tracking":
    import bench_tracking
    result = bench_tracking._mlcycle(5000, 100_000, 200)
    out = {k: v for k, v in result.items() if k.endswith("_seconds")}
elif what == "batch":
    import bench_serving
    bundle, _ = bench_serving._bundle()
    result = bench_serving._batch(bundle, False)
    out = {"seconds": result["mlcycle_seconds"], "cpu_seconds": result["mlcycle_cpu_seconds"]}
print("RESULT " + json.dumps(out))
"""


def _median_ratios(base: list[float], new: list[float]) -> dict[str, Any]:
    ratios = [n / b for b, n in zip(base, new, strict=True) if b]
    return {
        "base_median": statistics.median(base),
        "new_median": statistics.median(new),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "median_ratio_new_over_base": round(statistics.median(ratios), 3),
    }


def _in_process(what: str, checkouts: dict[str, Path], rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for r in range(rounds):
        for side in ("base", "new") if r % 2 == 0 else ("new", "base"):
            checkout = checkouts[side]
            proc = subprocess.run(
                [str(checkout / ".venv" / "bin" / "python"), "-c", _INNER, str(checkout), what],
                capture_output=True,
                text=True,
                cwd=checkout,
                check=False,
            )
            found = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not found:
                raise SystemExit(f"ab: {what} failed in {checkout}:\n{proc.stderr[-3000:]}")
            runs[side].append(json.loads(found[0].removeprefix("RESULT ")))
            print(f"  round {r} {side}: {runs[side][-1]}", flush=True)
    keys = runs["base"][0].keys()
    return {
        k: _median_ratios([x[k] for x in runs["base"]], [x[k] for x in runs["new"]]) for k in keys
    }


def _serving(checkouts: dict[str, Path], rounds: int, seconds: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_serving as bs

    work = Path(tempfile.mkdtemp(prefix="ab-serving-"))
    bundle, frame = bs._bundle()
    features = json.loads((bundle / "meta.json").read_text())["features"]
    rows = bs._records(frame, features, 100)
    one, hundred = json.dumps([rows[0]]), json.dumps(rows)

    def command(side: str, log: bool) -> list[str]:
        cmd = [str(checkouts[side] / ".venv" / "bin" / "mlcycle"), "serve", str(bundle)]
        return [*cmd, "--workers", str(bs.WORKERS), *([] if log else ["--no-log"])]

    figures: dict[str, list[float]] = {}
    with (
        bs._server(command("base", False)) as base_off,
        bs._server(command("new", False)) as new_off,
        bs._server(
            command("base", True), env={"MLCYCLE_PREDICTIONS_URL": str(work / "b")}
        ) as base_on,
        bs._server(
            command("new", True), env={"MLCYCLE_PREDICTIONS_URL": str(work / "n")}
        ) as new_on,
    ):
        urls = {"base_off": base_off, "new_off": new_off, "base_on": base_on, "new_on": new_on}
        names = list(urls)
        for r in range(rounds):
            order = names[r % 4 :] + names[: r % 4]
            for name in order[::-1] if r % 2 else order:
                found = bs._wrk(urls[name] + "/predict", one, seconds, work)
                figures.setdefault(f"{name}_single_per_s", []).append(found["requests_per_s"])
            for name in ("base_off", "new_off"):
                found = bs._wrk(urls[name] + "/predict", hundred, seconds, work, rows=100)
                figures.setdefault(f"{name}_100rows_rows_per_s", []).append(found["rows_per_s"])
    f = figures
    return {
        "seconds_per_run": seconds,
        "single_log_off": _median_ratios(f["base_off_single_per_s"], f["new_off_single_per_s"]),
        "single_log_on": _median_ratios(f["base_on_single_per_s"], f["new_on_single_per_s"]),
        "100rows": _median_ratios(
            f["base_off_100rows_rows_per_s"], f["new_off_100rows_rows_per_s"]
        ),
        "log_overhead_base": statistics.median(
            1 - on / off
            for off, on in zip(f["base_off_single_per_s"], f["base_on_single_per_s"], strict=True)
        ),
        "log_overhead_new": statistics.median(
            1 - on / off
            for off, on in zip(f["new_off_single_per_s"], f["new_on_single_per_s"], strict=True)
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("names", nargs="+", choices=["serving", "drift", "tracking", "batch"])
    parser.add_argument("--base", required=True, type=Path, help="the other checkout (with .venv)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per serving run")
    args = parser.parse_args()
    checkouts = {"base": args.base.resolve(), "new": ROOT}
    if not (checkouts["base"] / ".venv" / "bin" / "python").exists():
        print(f"ab: {args.base} has no .venv; run `make install` there first", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in args.names:
        print(f"== ab {name}", flush=True)
        if name == "serving":
            result = _serving(checkouts, args.rounds, args.seconds)
        else:
            result = _in_process(name, checkouts, args.rounds)
        result["_meta"] = {"base": str(checkouts["base"]), "rounds": args.rounds}
        path = RESULTS / f"ab_{name}.json"
        path.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2), f"\n-> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
