"""The ten services on the simulated runtime, reached through the gateway app in-process: the
same routes and middlewares as over a socket, and a 15-minute reservation TTL that expires in
simulated time without anyone waiting for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from microcommerce import environment
from microcommerce.actors.simulated import SimulatedRuntime, VirtualTimeLoop
from microcommerce.chaos.transport import InProcessTransport
from microcommerce.config import load_settings
from microcommerce.node import Node
from microcommerce.services import implemented_services

ADMIN = {"email": "admin@sim.test", "password": "admin-password-1"}


class Gateway:
    def __init__(self, node: Node) -> None:
        self.transport = InProcessTransport(node.services["gateway"].app)

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, text = await self.transport.send(method, path, body, headers, 30)
        return status, json.loads(text) if text else None

    async def login(self, email: str, password: str) -> str:
        status, body = await self.call("POST", "/auth/login", {"email": email, "password": password})
        assert status == 200, body
        return body["token"]


def on_simulated_platform(seed: int, scenario: Callable[[Node, Gateway], Coroutine[Any, Any, Any]],
                          **flags: Any) -> Any:
    loop = VirtualTimeLoop()
    settings = load_settings({
        "password_hash_cost": 4, "database_url": f"sqlite://memory/{{service}}-simtest-{seed}",
        "access_log": False, "jwt_secret": "s" * 40, "internal_token": "i" * 30,
        "bootstrap_admin_email": ADMIN["email"], "bootstrap_admin_password": ADMIN["password"], **flags}, env={})

    async def main() -> Any:
        node = Node(settings, implemented_services(), runtime=SimulatedRuntime(seed), listen=False)
        await node.start()
        try:
            return await scenario(node, Gateway(node))
        finally:
            await node.stop()

    try:
        with environment.installed(environment.SimulatedEnvironment(seed, loop.time)):
            return loop.run_until_complete(main())
    finally:
        loop.close()


async def _order_one_unit(gateway: Gateway) -> tuple[str, int, int]:
    admin = await gateway.login(**ADMIN)
    status, category = await gateway.call("POST", "/categories", {"name": "Lamps"}, admin)
    assert status == 201, category
    status, product = await gateway.call("POST", "/products", {"categoryId": category["id"], "name": "Desk lamp",
                                                               "price": 20, "stockQuantity": 3}, admin)
    assert status == 201, product
    status, user = await gateway.call("POST", "/auth/signup", {"name": "Sim", "email": "sim@sim.test",
                                                               "password": "password-123"})
    assert status == 201, user
    shopper = await gateway.login("sim@sim.test", "password-123")
    await asyncio.sleep(1)  # the cart exists once USER_CREATED reached it
    status, cart = await gateway.call("POST", "/carts/me/items", {"productId": product["id"], "quantity": 2},
                                      shopper)
    assert status in (200, 201), cart
    status, order = await gateway.call("POST", "/orders/me", {"productId": product["id"], "quantity": 2}, shopper)
    assert status == 201, order
    return admin, product["id"], order["id"]


def test_an_unpaid_order_expires_after_the_real_ttl_in_simulated_time() -> None:
    async def scenario(node: Node, gateway: Gateway) -> dict[str, Any]:
        admin, product_id, order_id = await _order_one_unit(gateway)
        _, reserved = await gateway.call("GET", f"/inventory/{product_id}", token=admin)
        started = environment.monotonic()
        await asyncio.sleep(14 * 60)
        _, early = await gateway.call("GET", f"/orders/{order_id}", token=admin)
        await asyncio.sleep(2 * 60)
        _, late = await gateway.call("GET", f"/orders/{order_id}", token=admin)
        _, released = await gateway.call("GET", f"/inventory/{product_id}", token=admin)
        return {"reserved": reserved, "early": early, "late": late, "released": released,
                "elapsed": environment.monotonic() - started}

    seen = on_simulated_platform(1, scenario)
    assert seen["reserved"]["reservedQuantity"] == 2
    assert seen["early"]["status"] == "pending"  # 14 of the 15 minutes: still held
    assert seen["late"]["status"] == "cancelled" and seen["late"]["cancelReason"] == "reservation expired"
    assert seen["released"]["reservedQuantity"] == 0 and seen["released"]["availableQuantity"] == 3
    assert seen["elapsed"] >= 16 * 60  # simulated minutes, not wall minutes


def test_a_token_expires_in_simulated_time_and_the_middlewares_answer_as_over_a_socket() -> None:
    async def scenario(node: Node, gateway: Gateway) -> dict[str, Any]:
        admin = await gateway.login(**ADMIN)
        fresh = await gateway.call("GET", "/auth/session", token=admin)
        malformed = await gateway.call("POST", "/categories", "not an object", admin)
        unknown = await gateway.call("GET", "/nowhere")
        await asyncio.sleep(2 * 3600)
        stale = await gateway.call("GET", "/auth/session", token=admin)
        return {"fresh": fresh, "malformed": malformed, "unknown": unknown, "stale": stale}

    seen = on_simulated_platform(2, scenario, jwt_ttl_s=3600)
    assert seen["fresh"][0] == 200 and ADMIN["email"] in json.dumps(seen["fresh"][1])
    assert seen["malformed"][0] == 400 and "Invalid request body" in seen["malformed"][1]["message"]
    assert seen["unknown"][0] == 404
    assert seen["stale"][0] == 401 and "expired" in json.dumps(seen["stale"][1]).lower()
