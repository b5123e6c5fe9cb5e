"""Requests through the bus trip a per-service circuit breaker on outages, not on answers."""

import asyncio

import pytest

from microcommerce.actors.bus import LocalBus
from microcommerce.errors import Conflict, ServiceUnavailable, UpstreamTimeout


class Endpoint:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.calls = 0

    async def ask(self, command, *, timeout=None):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "ok"


@pytest.mark.parametrize("outage", [UpstreamTimeout("slow"), ServiceUnavailable("down")])
async def test_repeated_outages_open_the_circuit_then_calls_fail_fast(outage):
    bus = LocalBus()
    endpoint = Endpoint(outage)
    bus.register_endpoint("stock", endpoint)
    for _ in range(5):
        with pytest.raises(type(outage)):
            await bus.request("stock", object(), timeout=1)
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await bus.request("stock", object(), timeout=1)
    assert endpoint.calls == 5  # the sixth never reached the service


async def test_business_answers_keep_the_circuit_closed():
    bus = LocalBus()
    endpoint = Endpoint(Conflict("out of stock"))
    bus.register_endpoint("stock", endpoint)
    for _ in range(10):
        with pytest.raises(Conflict):
            await bus.request("stock", object(), timeout=1)
    assert endpoint.calls == 10
    assert bus.breaker("stock").state == "closed"


async def test_the_circuit_half_opens_after_the_reset_time():
    bus = LocalBus()
    endpoint = Endpoint(ServiceUnavailable("down"))
    bus.register_endpoint("stock", endpoint)
    bus.breaker("stock").reset_s = 0.05
    for _ in range(5):
        with pytest.raises(ServiceUnavailable):
            await bus.request("stock", object(), timeout=1)
    await asyncio.sleep(0.06)
    endpoint.error = None
    assert await bus.request("stock", object(), timeout=1) == "ok"
    assert bus.breaker("stock").state == "closed"
