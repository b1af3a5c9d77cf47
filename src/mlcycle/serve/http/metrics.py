"""Prometheus metrics of the REST service, in the text exposition format (written by hand:
``prometheus_client`` is not a dependency).

Exposed at ``GET /metrics``: ``mlcycle_requests_total{route,code}``,
``mlcycle_request_errors_total{route,code}``,
``mlcycle_request_duration_seconds`` (histogram by route),
``mlcycle_batch_rows`` (histogram of micro-batch sizes),
``mlcycle_requests_in_flight``, ``mlcycle_model_version{role}``,
``mlcycle_model_swaps_total``, ``mlcycle_shadow_errors_total``,
``mlcycle_prediction_log_rows_total``, ``mlcycle_prediction_log_dropped_total``.

Example:
    >>> m = Metrics()
    >>> m.observe("/predict", 200, 0.0012)
    >>> "mlcycle_requests_total" in m.render({}, None)
    True
"""

from __future__ import annotations

import bisect
import threading
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out: list[str] = []
        running = 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


class Metrics:
    """Counters and histograms, updated from the event loop and worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.batch = _Histogram(BATCH_BUCKETS)
        self.in_flight = 0
        self.swaps = 0
        self.shadow_errors = 0

    def observe(self, route: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (route, code)
            self.requests[key] = self.requests.get(key, 0) + 1
            hist = self.latency.get(route)
            if hist is None:
                hist = self.latency[route] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def observe_batch(self, rows: int) -> None:
        with self._lock:
            self.batch.observe(rows)

    def render(self, versions: dict[str, int | None], log: Any) -> str:
        """The exposition text; ``versions`` maps role → model version, ``log`` a PredictionLog."""
        with self._lock:
            lines = [
                "# HELP mlcycle_requests_total Requests by route and status code.",
                "# TYPE mlcycle_requests_total counter",
            ]
            for (route, code), n in sorted(self.requests.items()):
                lines.append(f'mlcycle_requests_total{{route="{route}",code="{code}"}} {n}')
            lines += [
                "# HELP mlcycle_request_errors_total Requests answered with a 4xx or 5xx status.",
                "# TYPE mlcycle_request_errors_total counter",
            ]
            for (route, code), n in sorted(self.requests.items()):
                if code >= 400:
                    lines.append(
                        f'mlcycle_request_errors_total{{route="{route}",code="{code}"}} {n}'
                    )
            lines += [
                "# HELP mlcycle_request_duration_seconds Time from request to response.",
                "# TYPE mlcycle_request_duration_seconds histogram",
            ]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("mlcycle_request_duration_seconds", f'route="{route}"')
            lines += [
                "# HELP mlcycle_batch_rows Rows per model call (micro-batches).",
                "# TYPE mlcycle_batch_rows histogram",
                *self.batch.lines("mlcycle_batch_rows", ""),
                "# HELP mlcycle_requests_in_flight Requests being handled now.",
                "# TYPE mlcycle_requests_in_flight gauge",
                f"mlcycle_requests_in_flight {self.in_flight}",
                "# HELP mlcycle_model_version Version served, by role.",
                "# TYPE mlcycle_model_version gauge",
            ]
            for role, version in sorted(versions.items()):
                if version is not None:
                    lines.append(f'mlcycle_model_version{{role="{role}"}} {version}')
            lines += [
                "# HELP mlcycle_model_swaps_total Models swapped in without a restart.",
                "# TYPE mlcycle_model_swaps_total counter",
                f"mlcycle_model_swaps_total {self.swaps}",
                "# HELP mlcycle_shadow_errors_total Shadow predictions that failed.",
                "# TYPE mlcycle_shadow_errors_total counter",
                f"mlcycle_shadow_errors_total {self.shadow_errors}",
            ]
        if log is not None:
            lines += [
                "# HELP mlcycle_prediction_log_rows_total Rows written to the prediction log.",
                "# TYPE mlcycle_prediction_log_rows_total counter",
                f"mlcycle_prediction_log_rows_total {log.written}",
                "# HELP mlcycle_prediction_log_dropped_total Rows dropped: the log queue was full.",
                "# TYPE mlcycle_prediction_log_dropped_total counter",
                f"mlcycle_prediction_log_dropped_total {log.dropped}",
                "# HELP mlcycle_prediction_log_queued_rows Rows waiting to be written.",
                "# TYPE mlcycle_prediction_log_queued_rows gauge",
                f"mlcycle_prediction_log_queued_rows {log.queued}",
            ]
        return "\n".join(lines) + "\n"
