"""Shared benchmark plumbing: the alternatives' environment and the flights data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ALT_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
CACHE = ROOT / "benchmarks" / "results" / "cache"


def run_alternative(script: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    """Run Python source in the alternatives' venv; its last output line must be a JSON object."""
    if not ALT_PYTHON.exists():
        raise SystemExit("bench: .venv-bench is missing; run `make bench`, which creates it")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [str(ALT_PYTHON), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-4000:])
        raise RuntimeError(f"alternative benchmark failed (exit {result.returncode})")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def flights_parquet() -> tuple[Path, Path]:
    """January–June and July–December of the flights example, made once and cached."""
    train = CACHE / "flights" / "data" / "flights.parquet"
    future = CACHE / "flights" / "data" / "flights_future.parquet"
    if not train.exists() or "day_of_week" not in _columns(train):  # made by an older example
        from mlcycle.examples.flights import write_example

        write_example(CACHE / "flights")
    return train, future


def _columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)
