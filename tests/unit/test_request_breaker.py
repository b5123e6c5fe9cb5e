"""Requests between services trip a per-service circuit breaker on outages, not on answers."""

import asyncio

import pytest

from microcommerce.actors.requests import LocalRequester
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
    requester = LocalRequester()
    endpoint = Endpoint(outage)
    requester.register_endpoint("stock", endpoint)
    for _ in range(5):
        with pytest.raises(type(outage)):
            await requester.request("stock", object(), timeout=1)
    with pytest.raises(ServiceUnavailable, match="circuit open"):
        await requester.request("stock", object(), timeout=1)
    assert endpoint.calls == 5  # the sixth never reached the service


async def test_business_answers_keep_the_circuit_closed():
    requester = LocalRequester()
    endpoint = Endpoint(Conflict("out of stock"))
    requester.register_endpoint("stock", endpoint)
    for _ in range(10):
        with pytest.raises(Conflict):
            await requester.request("stock", object(), timeout=1)
    assert endpoint.calls == 10
    assert requester.breaker("stock").state == "closed"


async def test_the_circuit_half_opens_after_the_reset_time():
    requester = LocalRequester()
    endpoint = Endpoint(ServiceUnavailable("down"))
    requester.register_endpoint("stock", endpoint)
    requester.breaker("stock").reset_s = 0.05
    for _ in range(5):
        with pytest.raises(ServiceUnavailable):
            await requester.request("stock", object(), timeout=1)
    await asyncio.sleep(0.06)
    endpoint.error = None
    assert await requester.request("stock", object(), timeout=1) == "ok"
    assert requester.breaker("stock").state == "closed"
