"""Faults between services: partitions (a pair cut for a while) and timeouts (a request or its
answer lost).

`FaultyRequester` wraps the real adapter's transport (`_send`) and keeps the port's own
circuit breaker, so injected failures trip breakers exactly as real ones would.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from microcommerce.actors.requests import Endpoint, Requester
from microcommerce.errors import ServiceUnavailable, UpstreamTimeout

from .runtime_faults import current_service

if TYPE_CHECKING:
    from .faults import FaultPlan


LOST_SHARE = 0.3  # of timeouts: the request itself is lost; otherwise the callee's answer is


class FaultyRequester(Requester):
    """`partition`: requests between the window's two services fail at once (ServiceUnavailable)
    or hang until the caller's timeout (UpstreamTimeout), then heal when the window ends.
    `timeout`: the caller gets UpstreamTimeout, after the callee did the work (its answer was
    lost) or without it ever hearing of the request (the request was lost)."""

    def __init__(self, inner: Requester, plan: FaultPlan) -> None:
        super().__init__()
        self.inner = inner
        self.plan = plan
        self._seen_windows: set[int] = set()
        self._lock = threading.Lock()

    def register_endpoint(self, service: str, endpoint: Endpoint) -> None:
        self.inner.register_endpoint(service, endpoint)

    def __getattr__(self, name: str) -> Any:  # e.g. LocalRequester.is_local
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    async def _send(self, service: str, command: Any, *, timeout: float) -> Any:
        caller = current_service()
        window = self.plan.partition(caller, service)
        if window is not None:
            with self._lock:
                first = window.index not in self._seen_windows
                self._seen_windows.add(window.index)
            if first:
                self.plan.record("partition", "|".join(window.pair), window.index, mode=window.mode,
                                 start_s=round(window.start_s, 3), duration_s=round(window.end_s - window.start_s, 3))
            if window.mode == "hang":
                await asyncio.sleep(timeout)  # the request is lost: the caller waits it out
                raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s (partition)")
            raise ServiceUnavailable(f"{service} service is unreachable (partition)")
        stream = f"{caller or 'edge'}->{service}/{type(command).__name__}"
        decision = self.plan.decide("timeout", stream)
        if decision is None:
            return await self.inner._send(service, command, timeout=timeout)  # noqa: SLF001 - the wrapped transport
        n, u = decision
        if u < LOST_SHARE:
            # Lost on the way: the callee never hears of it; the caller waits out its timeout.
            self.plan.record("timeout", stream, n, mode="lost")
            await asyncio.sleep(timeout)
            raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s (chaos: lost)")
        try:
            await self.inner._send(service, command, timeout=timeout)  # noqa: SLF001
        except Exception:  # noqa: BLE001, S110 - whatever the callee answered, the caller never hears it
            pass
        self.plan.record("timeout", stream, n, mode="answer-lost")
        raise UpstreamTimeout(f"{service} service did not answer in {timeout:g}s (chaos)")

    async def close(self) -> None:
        await self.inner.close()

    async def close_all(self) -> None:
        await self.inner.close_all()
