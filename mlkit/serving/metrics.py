"""The server's counters and histograms in Prometheus' text format (``/metrics``), with no client library."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        prefix = labels + "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{prefix}le="+Inf"}} {self.count}')
        suffix = "{" + labels + "}" if labels else ""
        out.append(f"{name}_sum{suffix} {self.total:.6f}")
        out.append(f"{name}_count{suffix} {self.count}")
        return out


class ServerMetrics:
    """Requests by path and status, prediction errors, latency, batch sizes, model swaps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.rows = 0
        self.swaps = 0
        self.logged_rows = 0
        self.dropped_log_rows = 0

    def request(self, path: str, status: int, seconds: float | None) -> None:
        with self._lock:
            self.requests[(path, status)] += 1
            if status >= 400:
                self.errors["client" if status < 500 else "server"] += 1
            if seconds is not None:
                self.latency.observe(seconds)

    def batch(self, rows: int, requests: int) -> None:
        with self._lock:
            self.batch_rows.observe(rows)
            self.batch_requests.observe(requests)
            self.rows += rows

    def render(self, model: str, version: str | None, ready: bool) -> str:
        with self._lock:
            lines = [
                "# HELP mlkit_serve_requests_total HTTP requests by path and status code.",
                "# TYPE mlkit_serve_requests_total counter",
                *(
                    f'mlkit_serve_requests_total{{path="{path}",code="{code}"}} {count}'
                    for (path, code), count in sorted(self.requests.items())
                ),
                "# HELP mlkit_serve_errors_total Requests answered with an error, by kind (client 4xx, server 5xx).",
                "# TYPE mlkit_serve_errors_total counter",
                *(f'mlkit_serve_errors_total{{kind="{kind}"}} {self.errors[kind]}' for kind in ("client", "server")),
                "# HELP mlkit_serve_request_latency_seconds Time from a request's arrival to its answer "
                "(/invocations).",
                "# TYPE mlkit_serve_request_latency_seconds histogram",
                *self.latency.lines("mlkit_serve_request_latency_seconds"),
                "# HELP mlkit_serve_batch_rows Rows in each prediction batch.",
                "# TYPE mlkit_serve_batch_rows histogram",
                *self.batch_rows.lines("mlkit_serve_batch_rows"),
                "# HELP mlkit_serve_batch_requests Requests merged into each prediction batch.",
                "# TYPE mlkit_serve_batch_requests histogram",
                *self.batch_requests.lines("mlkit_serve_batch_requests"),
                "# HELP mlkit_serve_rows_total Rows predicted.",
                "# TYPE mlkit_serve_rows_total counter",
                f"mlkit_serve_rows_total {self.rows}",
                "# HELP mlkit_serve_model_swaps_total Times a new version replaced the one being served.",
                "# TYPE mlkit_serve_model_swaps_total counter",
                f"mlkit_serve_model_swaps_total {self.swaps}",
                "# HELP mlkit_serve_logged_rows_total Rows written to the prediction log.",
                "# TYPE mlkit_serve_logged_rows_total counter",
                f"mlkit_serve_logged_rows_total {self.logged_rows}",
                "# HELP mlkit_serve_log_dropped_rows_total Rows the prediction log could not keep up with.",
                "# TYPE mlkit_serve_log_dropped_rows_total counter",
                f"mlkit_serve_log_dropped_rows_total {self.dropped_log_rows}",
                "# HELP mlkit_serve_model_info The version being served (1 once loaded).",
                "# TYPE mlkit_serve_model_info gauge",
                f'mlkit_serve_model_info{{model="{model}",version="{version or ""}"}} {1 if ready else 0}',
            ]
        return "\n".join(lines) + "\n"
