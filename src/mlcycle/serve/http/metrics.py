"""Prometheus metrics of the REST service, in the text exposition format (written by hand).

Exposed at ``GET /metrics``: ``mlcycle_requests_total{route,code}``,
``mlcycle_request_errors_total{route,code}``,
``mlcycle_request_duration_seconds`` (histogram by route),
``mlcycle_batch_rows`` (histogram of micro-batch sizes),
``mlcycle_requests_in_flight``, ``mlcycle_model_version{role}``,
``mlcycle_model_version_workers{role,version}``,
``mlcycle_model_swaps_total``, ``mlcycle_shadow_errors_total``,
``mlcycle_out_of_range_total{column}``,
``mlcycle_prediction_log_rows_total``, ``mlcycle_prediction_log_dropped_total``,
``mlcycle_prediction_log_queued_rows``.

Several workers, one set of numbers: under ``mlcycle serve --workers N`` the
supervisor points :data:`SHARED_ENV` at a fresh folder before it starts the
workers. Each worker then keeps its counters and histograms in a memory-mapped
file there (``<pid>_<n>.bin``, float64 slots, and ``<pid>_<n>.json`` naming them),
and whichever worker answers a scrape sums every worker's file: each scrape
shows the server's totals, and a worker that died still counts in them.
Gauges (requests in flight, rows queued for the log, the version each worker
serves) count live workers only. ``mlcycle_model_version{role}`` is the
version every live worker serves; while a promotion is being picked up (each
worker polls the alias on its own) the workers disagree, the series is left
out, and ``mlcycle_model_version_workers{role,version}`` shows the split.
``prometheus_client``'s multiprocess mode does the same, but measured 8-27 µs
per request against 4-6 µs here (~10 % of single-row throughput): see
docs/serving.md.

Example:
    >>> m = Metrics()
    >>> m.observe("/predict", 200, 0.0012)
    >>> "mlcycle_requests_total" in m.render({}, None)
    True
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import mmap
import os
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

# Set by the supervisor before the workers start (serve/http/workers.py).
SHARED_ENV = "MLCYCLE_METRICS_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# Slots per worker file: routes × codes and a histogram (15 slots) per route fit
# many times over; the file is sparse, so the unused part costs no disk.
SLOTS = 1 << 16

_SERIAL = itertools.count()
# Series that describe a live worker now (not a count since start): a dead worker's are dropped.
GAUGES = frozenset({"in_flight", "log_queued", "serving"})

# A series: its metric name and label pairs; e.g. ("requests", (("route", "/p"), ("code", "200"))).
Key = tuple[str, tuple[tuple[str, str], ...]]


class Metrics:
    """Counters and histograms, updated from the event loop and worker threads.

    ``in_flight``, ``swaps`` and ``shadow_errors`` read and assign like plain
    numbers (``metrics.swaps += 1``) and are stored in the slots like the rest.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folder = _shared_folder()
        self._slots: dict[Key, int] = {}
        self._next = 0
        self._routes: dict[tuple[str, int], tuple[int, int, int]] = {}
        if self._folder is None:
            self._buffer: Any = bytearray(SLOTS * 8)
        else:
            # pid plus a serial: a second Metrics in one process must not truncate the first.
            self._name = f"{os.getpid()}_{next(_SERIAL)}"
            self._buffer = _mapped(self._folder / f"{self._name}.bin")
        self._values = memoryview(self._buffer).cast("d")
        self._in_flight = self._slot(("in_flight", ()), 1)
        self._swaps = self._slot(("swaps", ()), 1)
        self._shadow_errors = self._slot(("shadow_errors", ()), 1)
        self._batch = self._slot(("batch_rows", ()), len(BATCH_BUCKETS) + 3)

    def _slot(self, key: Key, width: int) -> int:
        """The first of ``width`` slots for ``key``; the slot table is published before use."""
        base = self._slots.get(key)
        if base is None:
            base = self._next
            if base + width > SLOTS:
                raise RuntimeError(f"metrics: more than {SLOTS} slots in use")
            self._next += width
            self._slots[key] = base
            self._publish()
        return base

    def _publish(self) -> None:
        if self._folder is None:
            return
        table = [[name, dict(labels), base] for (name, labels), base in self._slots.items()]
        path = self._folder / f"{self._name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, path)  # a scrape never reads half a table

    def observe(self, route: str, code: int, seconds: float) -> None:
        v = self._values
        with self._lock:
            where = self._routes.get((route, code))
            if where is None:
                where = self._route_slots(route, code)
            requests, errors, base = where
            v[requests] += 1
            if errors >= 0:
                v[errors] += 1
            # A histogram's slots: a count per bucket (+Inf last), then the sum, the count.
            v[base + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            v[base + len(LATENCY_BUCKETS) + 1] += seconds
            v[base + len(LATENCY_BUCKETS) + 2] += 1

    def count_out_of_range(self, columns: Any) -> None:
        """Count one value outside its training range per name in ``columns`` (an iterable).

        Example:
            >>> metrics.count_out_of_range(["month", "distance", "month"])
        """
        v = self._values
        with self._lock:
            for column in columns:
                v[self._slot(("out_of_range", (("column", str(column)),)), 1)] += 1

    def add(self, name: str, amount: float) -> None:
        """Add to the unlabelled counter ``name`` (``log_rows``, ``log_dropped``).

        Example:
            >>> metrics.add("log_rows", 128)
        """
        with self._lock:
            self._values[self._slot((name, ()), 1)] += amount

    def set(self, name: str, value: float) -> None:
        """Set the unlabelled gauge ``name`` of this worker (``log_queued``).

        Example:
            >>> metrics.set("log_queued", 0)
        """
        with self._lock:
            self._values[self._slot((name, ()), 1)] = value

    def set_versions(self, versions: dict[str, int | None]) -> None:
        """Record the version this worker serves per role (``None``: no such role, or an
        unversioned bundle), for ``mlcycle_model_version`` and ``..._workers``.

        Example:
            >>> metrics.set_versions({"champion": 3, "challenger": None})
        """
        v = self._values
        with self._lock:
            for (name, _labels), base in list(self._slots.items()):
                if name == "serving":
                    v[base] = 0
            for role, version in versions.items():
                if version is not None:
                    labels = (("role", role), ("version", str(version)))
                    v[self._slot(("serving", labels), 1)] = 1

    def _route_slots(self, route: str, code: int) -> tuple[int, int, int]:
        """Slots of one (route, code), kept so a request costs one dict look-up."""
        labels = (("route", route), ("code", str(code)))
        requests = self._slot(("requests", labels), 1)
        errors = self._slot(("errors", labels), 1) if code >= 400 else -1
        base = self._slot(("latency", labels[:1]), len(LATENCY_BUCKETS) + 3)
        where = self._routes[(route, code)] = (requests, errors, base)
        return where

    def observe_batch(self, rows: int) -> None:
        with self._lock:
            _observe(self._values, self._batch, BATCH_BUCKETS, rows)

    @property
    def in_flight(self) -> int:
        return int(self._values[self._in_flight])

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self._values[self._in_flight] = value

    @property
    def swaps(self) -> int:
        return int(self._values[self._swaps])

    @swaps.setter
    def swaps(self, value: int) -> None:
        self._values[self._swaps] = value

    @property
    def shadow_errors(self) -> int:
        return int(self._values[self._shadow_errors])

    @shadow_errors.setter
    def shadow_errors(self, value: int) -> None:
        self._values[self._shadow_errors] = value

    def totals(self) -> dict[Key, list[float]]:
        """Every series' slots, summed over the workers sharing the folder (or this one's).

        ``in_flight`` counts live workers only: a dead worker answers nothing.
        """
        if self._folder is None:
            with self._lock:  # the log's writer thread may add a slot meanwhile
                return _read(dict(self._slots), self._values)
        sums: dict[Key, list[float]] = {}
        for table_path in self._folder.glob("*.json"):
            pid = int(table_path.stem.split("_")[0])
            try:
                table = json.loads(table_path.read_text())
                raw = table_path.with_suffix(".bin").read_bytes()
            except (OSError, ValueError):
                continue  # a worker starting up: it has counted nothing yet
            slots = {(n, tuple(sorted(labels.items()))): base for n, labels, base in table}
            values = memoryview(raw).cast("d")
            alive = _alive(pid)
            for key, row in _read(slots, values).items():
                if key[0] in GAUGES and not alive:
                    continue
                total = sums.setdefault(key, [0.0] * len(row))
                for i, x in enumerate(row):
                    total[i] += x
        return sums

    def render(self, versions: dict[str, int | None] | None = None, log: Any = None) -> str:
        """The exposition text, summed over the workers.

        ``versions`` (role → version) is what this worker serves now, recorded
        first so the scrape is current for the worker answering it; ``log`` is
        its PredictionLog (``None``: the server writes no log, and its series
        are left out).
        """
        if versions is not None:
            self.set_versions(versions)
        if log is not None:
            self.set("log_queued", log.queued)
        t = self.totals()
        by_name: dict[str, list[tuple[tuple[tuple[str, str], ...], list[float]]]] = defaultdict(
            list
        )
        for (name, labels), row in t.items():
            by_name[name].append((labels, row))
        lines = [
            "# HELP mlcycle_requests_total Requests by route and status code.",
            "# TYPE mlcycle_requests_total counter",
            *_by_route_code(by_name["requests"], "mlcycle_requests_total"),
            "# HELP mlcycle_request_errors_total Requests answered with a 4xx or 5xx status.",
            "# TYPE mlcycle_request_errors_total counter",
            *_by_route_code(by_name["errors"], "mlcycle_request_errors_total"),
            "# HELP mlcycle_request_duration_seconds Time from request to response.",
            "# TYPE mlcycle_request_duration_seconds histogram",
        ]
        for labels, row in sorted(by_name["latency"]):
            lines += _histogram(
                "mlcycle_request_duration_seconds", f'route="{labels[0][1]}"', LATENCY_BUCKETS, row
            )
        lines += [
            "# HELP mlcycle_batch_rows Rows per model call (micro-batches).",
            "# TYPE mlcycle_batch_rows histogram",
            *_histogram("mlcycle_batch_rows", "", BATCH_BUCKETS, _one(t, "batch_rows")),
            "# HELP mlcycle_requests_in_flight Requests being handled now.",
            "# TYPE mlcycle_requests_in_flight gauge",
            f"mlcycle_requests_in_flight {_num(_one(t, 'in_flight')[0])}",
            *_versions(by_name["serving"]),
            "# HELP mlcycle_out_of_range_total Input values outside their training range "
            "(scored and flagged), by column.",
            "# TYPE mlcycle_out_of_range_total counter",
        ]
        for labels, row in sorted(by_name["out_of_range"]):
            column = _label(labels[0][1])
            lines.append(f'mlcycle_out_of_range_total{{column="{column}"}} {_num(row[0])}')
        lines += [
            "# HELP mlcycle_model_swaps_total Models swapped in without a restart.",
            "# TYPE mlcycle_model_swaps_total counter",
            f"mlcycle_model_swaps_total {_num(_one(t, 'swaps')[0])}",
            "# HELP mlcycle_shadow_errors_total Shadow predictions that failed.",
            "# TYPE mlcycle_shadow_errors_total counter",
            f"mlcycle_shadow_errors_total {_num(_one(t, 'shadow_errors')[0])}",
        ]
        if log is not None:
            lines += [
                "# HELP mlcycle_prediction_log_rows_total Rows written to the prediction log.",
                "# TYPE mlcycle_prediction_log_rows_total counter",
                f"mlcycle_prediction_log_rows_total {_num(_one(t, 'log_rows')[0])}",
                "# HELP mlcycle_prediction_log_dropped_total Rows dropped: the log queue was full.",
                "# TYPE mlcycle_prediction_log_dropped_total counter",
                f"mlcycle_prediction_log_dropped_total {_num(_one(t, 'log_dropped')[0])}",
                "# HELP mlcycle_prediction_log_queued_rows Rows waiting to be written.",
                "# TYPE mlcycle_prediction_log_queued_rows gauge",
                f"mlcycle_prediction_log_queued_rows {_num(_one(t, 'log_queued')[0])}",
            ]
        return "\n".join(lines) + "\n"


def _versions(rows: list[tuple[tuple[tuple[str, str], ...], list[float]]]) -> list[str]:
    """``mlcycle_model_version{role}`` where the live workers agree, and how many serve what."""
    workers: dict[str, dict[int, int]] = defaultdict(dict)
    for labels, row in rows:
        named = dict(labels)
        if row[0] > 0:
            workers[named["role"]][int(named["version"])] = int(row[0])
    lines = [
        "# HELP mlcycle_model_version Version served by role, when every live worker serves it "
        "(absent while a promotion is being picked up: see mlcycle_model_version_workers).",
        "# TYPE mlcycle_model_version gauge",
    ]
    for role, counts in sorted(workers.items()):
        if len(counts) == 1:
            lines.append(f'mlcycle_model_version{{role="{role}"}} {next(iter(counts))}')
    lines += [
        "# HELP mlcycle_model_version_workers Live workers serving each version, by role.",
        "# TYPE mlcycle_model_version_workers gauge",
    ]
    for role, counts in sorted(workers.items()):
        for version, n in sorted(counts.items()):
            lines.append(f'mlcycle_model_version_workers{{role="{role}",version="{version}"}} {n}')
    return lines


def _label(value: str) -> str:
    """A label value escaped as the exposition format wants (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _shared_folder() -> Path | None:
    path = os.environ.get(SHARED_ENV)
    return Path(path) if path and os.path.isdir(path) else None


def _mapped(path: Path) -> mmap.mmap:
    with path.open("w+b") as f:
        f.truncate(SLOTS * 8)  # sparse: zeros cost nothing until written
        return mmap.mmap(f.fileno(), SLOTS * 8)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        return True
    return False


def _observe(v: memoryview[float], base: int, buckets: tuple[float, ...], value: float) -> None:
    """A histogram's slots: one count per bucket (+Inf last), then the sum, then the count."""
    v[base + bisect.bisect_left(buckets, value)] += 1
    v[base + len(buckets) + 1] += value
    v[base + len(buckets) + 2] += 1


def _read(slots: dict[Key, int], values: memoryview[float]) -> dict[Key, list[float]]:
    widths = {
        "latency": len(LATENCY_BUCKETS) + 3,
        "batch_rows": len(BATCH_BUCKETS) + 3,
    }
    out: dict[Key, list[float]] = {}
    for key, base in slots.items():
        width = widths.get(key[0], 1)
        out[key] = list(values[base : base + width])
    return out


def _one(t: dict[Key, list[float]], name: str) -> list[float]:
    width = len(BATCH_BUCKETS) + 3 if name == "batch_rows" else 1
    return t.get((name, ()), [0.0] * width)


def _num(value: float) -> str:
    """Counts print as integers, as they always have (``2``, not ``2.0``)."""
    return str(int(value)) if float(value).is_integer() else repr(value)


def _by_route_code(
    rows: list[tuple[tuple[tuple[str, str], ...], list[float]]], name: str
) -> list[str]:
    keyed = sorted((dict(labels)["route"], int(dict(labels)["code"]), r[0]) for labels, r in rows)
    return [f'{name}{{route="{route}",code="{code}"}} {_num(n)}' for route, code, n in keyed]


def _histogram(name: str, labels: str, buckets: tuple[float, ...], row: list[float]) -> list[str]:
    out: list[str] = []
    running = 0.0
    sep = "," if labels else ""
    for bound, count in zip(buckets, row, strict=False):
        running += count
        out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {_num(running)}')
    n = row[len(buckets) + 2]
    out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {_num(n)}')
    out.append(f"{name}_sum{{{labels}}} {row[len(buckets) + 1]:.6f}")
    out.append(f"{name}_count{{{labels}}} {_num(n)}")
    return out
