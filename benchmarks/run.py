"""Run the benchmarks: `make bench` (all) or `make bench BENCH="serving monitor"`.

Each ``benchmarks/bench_<name>.py`` defines ``run(quick: bool) -> dict`` that
measures mlcycle and the named alternative in the same run (the alternative
through :func:`common.run_alternative`, in the ``.venv-bench`` environment).
Results go to ``benchmarks/results/<name>.json`` and a summary is printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run; default all of {available()}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"bench: unknown benchmark(s) {unknown}; available: {available()}", file=sys.stderr)
        return 2
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    summary = {}
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench_{name}")
        started = time.perf_counter()
        result = module.run(quick=args.quick)
        result["_meta"] = {
            "benchmark": name,
            "seconds": round(time.perf_counter() - started, 2),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cores": __import__("os").cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "quick": args.quick,
        }
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        summary[name] = result
        print(json.dumps({k: v for k, v in result.items() if k != "_meta"}, indent=2, default=str))
        print(f"-> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
