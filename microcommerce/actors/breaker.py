"""Circuit breaker: after repeated failures, fail fast for a while instead of waiting on timeouts."""

from __future__ import annotations

import threading

from microcommerce import environment
from microcommerce.errors import ServiceUnavailable


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one trial call through after `reset_s`.

    Shared by the worker threads that call one service, hence the lock.
    """

    def __init__(self, name: str, threshold: int = 5, reset_s: float = 5.0) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_s = reset_s
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    def before_call(self) -> None:
        with self._lock:
            if self.opened_at is None:
                return
            if environment.monotonic() - self.opened_at < self.reset_s:
                raise ServiceUnavailable(f"{self.name} service is unavailable (circuit open)",
                                         retry_after_s=max(1, int(self.reset_s)))
            self.opened_at = None  # half-open: this call is the trial

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = environment.monotonic()

    @property
    def state(self) -> str:
        return "open" if self.opened_at is not None else "closed"
