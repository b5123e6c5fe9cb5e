"""Prometheus text exposition for HTTP traffic and the actor runtime; no extra dependency."""

from __future__ import annotations

import threading
from collections import defaultdict

from microcommerce import environment

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.started = environment.now()
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self.rate_limited = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.buckets[(method, route)]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
                    break
            else:
                counts[-1] += 1
            self.sums[(method, route)] += seconds

    def render(self, runtime: dict[str, float | int] | None = None) -> str:
        svc = self.service
        lines = [
            "# HELP http_requests_total HTTP requests by method, route and status.",
            "# TYPE http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self.requests.items()):
                lines.append(f'http_requests_total{{service="{svc}",method="{method}",route="{route}",status="{status}"}} {n}')
            lines += ["# HELP http_request_duration_seconds Request latency.",
                      "# TYPE http_request_duration_seconds histogram"]
            for (method, route), counts in sorted(self.buckets.items()):
                labels = f'service="{svc}",method="{method}",route="{route}"'
                cumulative = 0
                for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative}')
                lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self.sums[(method, route)]:.6f}")
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {cumulative}")
            lines += ["# TYPE http_rate_limited_total counter",
                      f'http_rate_limited_total{{service="{svc}"}} {self.rate_limited}']
        lines += ["# TYPE process_uptime_seconds gauge",
                  f'process_uptime_seconds{{service="{svc}"}} {environment.now() - self.started:.3f}']
        for name, value in (runtime or {}).items():
            base, _, labels = name.partition("{")  # a name may carry labels: kafka_consumer_lag{group=..}
            labels = f',{labels.removesuffix("}")}' if labels else ""
            lines.append(f'{base}{{service="{svc}"{labels}}} {value}')
        return "\n".join(lines) + "\n"
