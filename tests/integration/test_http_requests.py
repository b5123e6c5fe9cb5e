"""Requests between processes over HTTP: two nodes in one test process, each with its own bus and
an HttpRequester, talking over real sockets (`POST /internal/commands`).

The real pair: node A serves product, node B serves cart; adding to a cart in B asks product in A.
A stand-in product (a small ServiceActor served with `create_app`) is used where the remote must
misbehave: slow, stopped, or behind a proxy that cuts connections.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import mc_testkit
import pytest
from aiohttp import web
from mc_testkit import eventually, free_ports

from microcommerce.actors.bus import LocalBus
from microcommerce.actors.requests import current_request_id
from microcommerce.actors.service import ServiceActor, handles
from microcommerce.actors.system import ActorSystem
from microcommerce.config import Settings
from microcommerce.contracts.cart import GetCart
from microcommerce.contracts.events import USER_EVENTS, new_event
from microcommerce.contracts.inventory import GetStock, SetStockTotal, StockChanged, StockLevel
from microcommerce.contracts.product import GetProduct, ProductInfo
from microcommerce.contracts.user import USER_CREATED, UserData
from microcommerce.errors import NotFound, ServiceUnavailable, UpstreamTimeout
from microcommerce.http.app import create_app
from microcommerce.http.auth import Principal, Revocations, TokenIssuer
from microcommerce.http.commands import COMMANDS_PATH
from microcommerce.http.requester import HttpRequester
from microcommerce.node import Node

SLOW_ID = 99  # the stand-in holds GetProduct of this id until the test lets go
MISSING_ID = 404


# -- helpers -----------------------------------------------------------------------------------

def cluster_settings(**overrides) -> Settings:
    """One set of settings for every node: same secrets, each service on its own free port.
    Nothing listens on the user port (revocations are marked loaded by hand)."""
    return mc_testkit.test_settings(["product", "cart", "user", "inventory"], **overrides)


async def start_node(settings: Settings, services: list[str]) -> Node:
    node = Node(settings, services, requester=HttpRequester(settings))
    node.revocations.loaded = True  # no user service here: the test stands in for it
    await node.start()
    return node


async def new_cart(node: Node) -> str:
    """A user the cart service knows (USER_CREATED on its own bus) and a token for them."""
    user_id = int(uuid.uuid4().int % 1_000_000) + 1000
    data = UserData(id=user_id, name="Ada", email=f"ada{user_id}@example.com", role="user",
                    accountStatus="active")
    node.bus.publish(USER_EVENTS, str(user_id), new_event(USER_CREATED, "user-service", data))

    async def cart_exists() -> bool:
        try:
            return bool(await node.system("cart").ask(GetCart(user_id=user_id)))
        except NotFound:
            return False

    await eventually(cart_exists)
    return node.issuer.issue(Principal(id=user_id, role="user"))


async def call(session: aiohttp.ClientSession, method: str, url: str, **kw) -> tuple[int, Any, Any]:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


# -- the real pair: cart (node B) asks product (node A) -----------------------------------------

@pytest.fixture
async def pair():
    settings = cluster_settings()
    node_a = await start_node(settings, ["product"])
    node_b = await start_node(settings, ["cart"])
    yield settings, node_a, node_b
    await node_b.stop()
    await node_a.stop()
    assert node_a.requester.open_sessions == node_b.requester.open_sessions == 0


async def test_cart_in_one_process_asks_product_in_another(pair, session):
    settings, node_a, node_b = pair
    assert not node_b.requester.is_local("product") and node_b.requester.is_local("cart")
    admin = {"Authorization": "Bearer " + node_a.issuer.issue(Principal(id=1, role="admin"))}
    product_url = settings.url_of("product")
    status, category, _ = await call(session, "POST", product_url + "/categories", headers=admin,
                                     json={"name": f"Cat {uuid.uuid4().hex[:6]}"})
    assert status == 201, category
    status, product, _ = await call(session, "POST", product_url + "/products", headers=admin, json={
        "categoryId": category["id"], "name": "Lamp", "price": 12.5, "stockQuantity": 5})
    assert status == 201, product

    token = await new_cart(node_b)
    auth = {"Authorization": f"Bearer {token}"}
    status, cart, _ = await call(session, "POST", settings.url_of("cart") + "/carts/me/items", headers=auth,
                                 json={"productId": product["id"], "quantity": 2})
    assert status == 201, cart
    assert [(i["productName"], i["unitPrice"], i["quantity"]) for i in cart["items"]] == [("Lamp", 12.5, 2)]

    # The remote's 404 is the same NotFound an in-process call raises: the route answers 404.
    status, body, _ = await call(session, "POST", settings.url_of("cart") + "/carts/me/items", headers=auth,
                                 json={"productId": 987654, "quantity": 1})
    assert status == 404 and "987654" in body["message"], body
    with pytest.raises(NotFound):
        await node_b.requester.request("product", GetProduct(id=987654), timeout=2)
    info = await node_b.requester.request("product", GetProduct(id=product["id"]), timeout=2)
    assert info == ProductInfo(id=product["id"], name="Lamp", price=12.5, currency="USD",
                               categoryId=category["id"])
    assert node_b.requester.breaker("product").state == "closed"  # business answers are health


async def test_the_command_endpoint_checks_its_callers_and_input(pair, session):
    settings, node_a, _ = pair
    url = settings.url_of("product") + COMMANDS_PATH
    token = {"X-Internal-Token": settings.internal_token}

    status, body, _ = await call(session, "POST", url, data=b'{"type": "GetProduct", "id": 1}')
    assert status == 403, body  # no service token
    status, body, _ = await call(session, "POST", url, data=b'{"type": "GetProduct", "id": 1}',
                                 headers={"X-Internal-Token": "wrong"})
    assert status == 403, body
    status, body, _ = await call(session, "POST", url, data=b'{"type": "LaunchRockets"}', headers=token)
    assert (status, body) == (400, {"message": "Unknown command 'LaunchRockets'", "error": "BadRequest"})
    for malformed in (b"{", b"", b"[1]", b'{"type": "GetProduct"}', b'{"type": "GetProduct", "id": "x"}'):
        status, body, _ = await call(session, "POST", url, data=malformed, headers=token)
        assert status == 400 and body["error"] == "BadRequest", (malformed, body)
    status, body, _ = await call(session, "POST", url, data=b'{"type": "GetCart", "user_id": 1}', headers=token)
    assert status == 404 and "does not answer GetCart" in body["message"], body
    for deadline in ("soon", "0", "-5", "²", "99999999999"):
        status, body, _ = await call(session, "POST", url, data=b'{"type": "GetProduct", "id": 1}',
                                     headers={**token, "X-Deadline-Ms": deadline})
        assert status == 400 and "X-Deadline-Ms" in body["message"], (deadline, body)
    status, body, _ = await call(session, "POST", url, data=b'{"type": "GetProduct", "id": 1}', headers=token)
    assert (status, body["error"]) == (404, "NotFound"), body


# -- a stand-in product service that can be slow, stopped or cut off ------------------------------

@dataclass
class StubState:
    gate: threading.Event = field(default_factory=threading.Event)
    request_ids: dict[int, str | None] = field(default_factory=dict)
    calls: Counter = field(default_factory=Counter)


STUB = StubState()


class StubActor(ServiceActor):
    @handles(GetProduct)
    async def get_product(self, cmd: GetProduct) -> ProductInfo:
        STUB.calls["GetProduct"] += 1
        STUB.request_ids[cmd.id] = current_request_id.get()
        if cmd.id == SLOW_ID:
            await asyncio.to_thread(STUB.gate.wait, 5)
        if cmd.id == MISSING_ID:
            raise NotFound(f"Product {cmd.id} not found")
        return ProductInfo(id=cmd.id, name=f"Thing {cmd.id}", price=3.0, currency="USD", categoryId=1)

    @handles(GetStock)
    async def get_stock(self, cmd: GetStock) -> StockLevel:
        STUB.calls["GetStock"] += 1
        return StockLevel(productId=cmd.product_id, totalQuantity=5, reservedQuantity=0, availableQuantity=5)

    @handles(SetStockTotal)
    async def set_stock_total(self, cmd: SetStockTotal) -> StockChanged:
        STUB.calls["SetStockTotal"] += 1
        return StockChanged(productId=cmd.product_id, totalQuantity=cmd.total_quantity, reservedQuantity=0,
                            availableQuantity=cmd.total_quantity)


class Stub:
    """The stand-in's actor system, served on `port` until `stop_serving`."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.settings = settings
        self.port = port
        self.system = ActorSystem("stub", settings, LocalBus(), StubActor, schema_dir=None, workers=2)
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.system.migrate()
        await self.system.start()
        await self.serve()

    async def serve(self) -> None:
        issuer = TokenIssuer(self.settings.jwt_secret, self.settings.jwt_ttl_s, Revocations())
        self.runner = web.AppRunner(create_app("stub", self.settings, issuer, system=self.system))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop_serving(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    async def stop(self) -> None:
        STUB.gate.set()
        await self.stop_serving()
        await self.system.stop()


@pytest.fixture
async def stub_and_cart():
    """Node B (cart) whose product service is the stand-in; product requests time out at 300 ms."""
    global STUB
    STUB = StubState()
    settings = cluster_settings(timeouts_ms={"product": 300})
    stub = Stub(settings, settings.port_of("product"))
    await stub.start()
    node = await start_node(settings, ["cart"])
    yield settings, stub, node
    await node.stop()
    await stub.stop()


async def test_a_remote_slower_than_its_timeout_is_a_504(stub_and_cart, session):
    settings, _, node = stub_and_cart
    auth = {"Authorization": f"Bearer {await new_cart(node)}"}
    started = time.monotonic()
    status, body, _ = await call(session, "POST", settings.url_of("cart") + "/carts/me/items", headers=auth,
                                 json={"productId": SLOW_ID})
    assert status == 504, body
    assert time.monotonic() - started < 2.0
    with pytest.raises(UpstreamTimeout, match="did not answer in 0.3s"):
        await node.requester.request("product", GetProduct(id=SLOW_ID), timeout=0.3)


async def test_the_request_id_of_the_http_request_reaches_the_remote(stub_and_cart, session):
    settings, _, node = stub_and_cart
    auth = {"Authorization": f"Bearer {await new_cart(node)}"}
    cart_url = settings.url_of("cart") + "/carts/me/items"
    status, body, _ = await call(session, "POST", cart_url, headers={**auth, "X-Request-Id": "trace-abc-123"},
                                 json={"productId": 7})
    assert status == 201, body
    assert STUB.request_ids[7] == "trace-abc-123"
    status, body, headers = await call(session, "POST", cart_url, headers=auth, json={"productId": 8})
    assert status == 201, body
    assert STUB.request_ids[8] == headers["X-Request-Id"]  # the one the cart service made up
    # Outside any HTTP request (a timer, a test) each call gets a fresh id.
    await node.requester.request("product", GetProduct(id=9), timeout=2)
    assert STUB.request_ids[9] and STUB.request_ids[9] not in ("trace-abc-123", headers["X-Request-Id"])


async def test_a_stopped_remote_is_503_fast_and_trips_the_breaker_until_it_returns(stub_and_cart, session):
    settings, stub, node = stub_and_cart
    auth = {"Authorization": f"Bearer {await new_cart(node)}"}
    cart_url = settings.url_of("cart") + "/carts/me/items"
    breaker = node.requester.breaker("product")
    breaker.reset_s = 0.3
    await stub.stop_serving()

    for _ in range(breaker.threshold):
        started = time.monotonic()
        status, body, headers = await call(session, "POST", cart_url, headers=auth, json={"productId": 5})
        assert status == 503 and "Retry-After" in headers, body
        assert time.monotonic() - started < 1.0  # connection refused: no waiting out a timeout
    assert breaker.state == "open"
    status, body, _ = await call(session, "POST", cart_url, headers=auth, json={"productId": 5})
    assert status == 503 and "circuit open" in body["message"], body

    await stub.serve()
    await eventually(lambda: _added(session, cart_url, auth), timeout=3)
    assert breaker.state == "closed"


async def _added(session: aiohttp.ClientSession, url: str, auth: dict) -> bool:
    status, _, _ = await call(session, "POST", url, headers=auth, json={"productId": 5})
    return status == 201


# -- retries: only commands that may safely run twice ---------------------------------------------

class CuttingProxy:
    """A TCP proxy to `target_port` that cuts the first `cuts` connections the moment they open."""

    def __init__(self, target_port: int, cuts: int) -> None:
        self.target_port = target_port
        self.cuts = cuts
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.cuts > 0:
            self.cuts -= 1
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("idempotent", [True, False])
async def test_only_idempotent_commands_are_sent_again_after_a_connection_failure(idempotent):
    global STUB
    STUB = StubState()
    settings = cluster_settings()
    stub = Stub(settings, free_ports(1)[0])
    await stub.start()
    proxy = CuttingProxy(stub.port, cuts=1)
    proxy_port = await proxy.start()
    remote = Settings(**{**{f: getattr(settings, f) for f in settings.__struct_fields__},
                         "service_urls": {"inventory": f"http://127.0.0.1:{proxy_port}"}})
    requester = HttpRequester(remote)
    try:
        if idempotent:
            level = await requester.request("inventory", GetStock(product_id=3), timeout=2)
            assert level.availableQuantity == 5
            assert (proxy.connections, STUB.calls["GetStock"]) == (2, 1)
        else:
            with pytest.raises(ServiceUnavailable, match="inventory service is unavailable"):
                await requester.request("inventory", SetStockTotal(product_id=3, total_quantity=9), timeout=2)
            assert (proxy.connections, STUB.calls["SetStockTotal"]) == (1, 0)
            changed = await requester.request("inventory", SetStockTotal(product_id=3, total_quantity=9),
                                              timeout=2)
            assert changed.totalQuantity == 9 and STUB.calls["SetStockTotal"] == 1
    finally:
        await requester.close_all()
        await proxy.stop()
        await stub.stop()
