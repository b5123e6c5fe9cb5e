"""Faults between a virtual client and the gateway: the `timeout` family on the public hop.

A client whose request or answer is lost cannot know whether its write happened. It retries,
and only an `Idempotency-Key` (order creation, checkout, charge) keeps the retry from doing
the work twice. Between services the same family hits the requester (`faulty_requests.py`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .faulty_requests import LOST_SHARE

if TYPE_CHECKING:
    from .faults import FaultPlan
    from .transport import Answer, Transport

CLIENT_GIVES_UP_S = 1.0  # a lost request: how long the client waits before it stops hoping


class FaultyTransport:
    """One client's transport: now and then its request is lost (the gateway never hears of it),
    or its answer is (the gateway did the work); either way the client sees a timeout."""

    def __init__(self, inner: Transport, plan: FaultPlan, process: str) -> None:
        self.inner = inner
        self.plan = plan
        self.stream = f"{process}->gateway"

    async def send(self, method: str, path: str, body: Any, headers: dict[str, str],
                   timeout_s: float) -> Answer:
        decision = self.plan.decide("timeout", self.stream)
        if decision is None:
            return await self.inner.send(method, path, body, headers, timeout_s)
        n, u = decision
        if u < LOST_SHARE:
            self.plan.record("timeout", self.stream, n, mode="lost")
            await asyncio.sleep(min(timeout_s, CLIENT_GIVES_UP_S))
            raise TimeoutError(f"chaos: {method} {path} lost on its way to the gateway")
        await self.inner.send(method, path, body, headers, timeout_s)  # the work is done ...
        self.plan.record("timeout", self.stream, n, mode="answer-lost")
        raise TimeoutError(f"chaos: the answer to {method} {path} was lost")  # ... its answer is not
