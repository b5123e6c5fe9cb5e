"""The gateway on real ports: routing by prefix, auth at the edge, failures of services behind it."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from mc_testkit import free_ports

from microcommerce.config import SERVICE_NAMES
from microcommerce.services.gateway import ROUTES, target_service

ABSENT = [name for name in SERVICE_NAMES if name not in ("gateway", "user")]


def dead_urls(names: list[str]) -> dict[str, str]:
    """URLs where nothing listens, so a test never reaches some other process on default ports."""
    return {name: f"http://127.0.0.1:{port}" for name, port in zip(names, free_ports(len(names)), strict=True)}


@pytest.fixture
async def platform(make_platform):
    return await make_platform(["gateway", "user"], service_urls=dead_urls(ABSENT))


@pytest.fixture
async def slow_upstream():
    """A real HTTP server that answers too late, standing in for a stalled service."""
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), timeout=5)
        return web.json_response({"late": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    release.set()
    await runner.cleanup()


# -- routing table (pure) --------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "service"), [
    ("/auth/login", "user"), ("/users/5", "user"), ("/carts/me", "cart"), ("/orders/me/checkout", "order"),
    ("/products/1", "product"), ("/categories", "product"), ("/inventory/3", "inventory"),
    ("/search/products", "search"), ("/payments/me", "payment"), ("/notifications/me", "notification"),
    ("/audit/logs", "audit"), ("/nothing", None), ("/", None), ("/authx/login", None),
])
def test_prefix_routing_table(path, service):
    assert target_service(path) == service


def test_every_routed_service_exists():
    assert set(ROUTES.values()) <= set(SERVICE_NAMES) - {"gateway"}


# -- proxying --------------------------------------------------------------------------------------------


async def test_gateway_forwards_method_body_query_and_status(platform):
    signup = await platform.post("/auth/signup", json={"name": "Gia", "email": "gia@example.com",
                                                       "password": "password123"})
    assert signup.status == 201 and signup.body["email"] == "gia@example.com"
    assert signup.headers["Content-Type"].startswith("application/json")
    admin = await platform.admin_token()
    page = await platform.get("/auth/users?limit=1&offset=1", token=admin)
    assert page.status == 200 and page.body["limit"] == 1 and page.body["offset"] == 1
    assert [u["email"] for u in page.body["users"]] == ["gia@example.com"]
    deleted = await platform.request("DELETE", f"/users/{signup.body['id']}", token=admin)
    assert deleted.status == 200


async def test_gateway_and_service_port_give_the_same_answer(platform):
    user, token = await platform.new_user()
    via_gateway = await platform.get(f"/users/{user['id']}", token=token)
    direct = await platform.get(f"/users/{user['id']}", token=token, service="user")
    assert via_gateway.status == direct.status == 200
    assert via_gateway.body == direct.body


async def test_service_errors_pass_through_unchanged(platform):
    admin = await platform.admin_token()
    missing = await platform.get("/users/424242", token=admin)
    assert missing.status == 404 and missing.body == {"message": "User 424242 not found"}
    bad = await platform.post("/auth/signup", data=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status == 400 and bad.body == {"message": "Malformed JSON body"}


async def test_a_bad_token_is_refused_at_the_gateway_even_for_a_service_that_is_down(platform):
    reply = await platform.get("/carts/me", headers={"Authorization": "Bearer forged.token.value"})
    assert reply.status == 401 and reply.body == {"message": "Invalid token"}


async def test_gateway_limits_body_size(platform):
    reply = await platform.post("/auth/signup", data=b"x" * (2 * 1024 * 1024),
                                headers={"Content-Type": "application/json"})
    assert reply.status == 413 and "message" in reply.body


# -- services that are down or slow ------------------------------------------------------------------------


async def test_a_service_that_is_down_is_a_503_json(platform):
    reply = await platform.get("/products/1")
    assert reply.status == 503
    assert reply.body == {"message": "product service is unavailable"}
    assert int(reply.headers["Retry-After"]) >= 1
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


async def test_repeated_failures_open_the_circuit(platform):
    statuses = [(await platform.get("/orders/me")).body["message"] for _ in range(6)]
    assert statuses[:5] == ["order service is unavailable"] * 5
    assert statuses[5] == "order service is unavailable (circuit open)"
    # One service's open circuit does not affect another route.
    assert (await platform.post("/auth/login", json={"email": "x@example.com", "password": "nope"})).status == 401


async def test_a_slow_service_is_a_504_json(make_platform, slow_upstream):
    platform = await make_platform(["gateway", "user"], service_urls={**dead_urls(ABSENT), "cart": slow_upstream},
                                   timeouts_ms={"cart": 200})
    reply = await platform.get("/carts/me")
    assert reply.status == 504
    assert reply.body == {"message": "cart service did not answer in time"}
    assert (await platform.get("/health")).status == 200  # the gateway itself is fine


# -- health ---------------------------------------------------------------------------------------------------


async def test_gateway_health_reports_each_downstream_service(make_platform):
    platform = await make_platform(["gateway"], service_urls=dead_urls([n for n in SERVICE_NAMES if n != "gateway"]))
    reply = await platform.get("/health")
    assert reply.status == 200 and reply.body["status"] == "up"  # alive, though nothing is behind it
    assert reply.body["overall"] == "degraded"
    services = reply.body["checks"]["services"]
    assert set(services) == set(ROUTES.values())
    assert set(services.values()) == {"unreachable"}


async def test_gateway_health_is_up_when_its_services_are(platform):
    reply = await platform.get("/health")
    assert reply.status == 200
    assert reply.body["overall"] == "up"
    assert reply.body["checks"] == {"gateway": "up", "services": {"user": "up"}}


async def test_gateway_health_sees_an_escalated_service_as_down(platform):
    platform.system("user").escalation = "test: supervisor gave up"  # as the supervisor reports it
    direct = await platform.get("/health", service="user")
    assert direct.status == 503 and direct.body["status"] == "down"
    reply = await platform.get("/health")
    assert reply.body["checks"]["services"] == {"user": "down"}
    assert reply.body["overall"] == "degraded"


@pytest.mark.parametrize(("path", "service"), [
    ("/internal/products/3", "product"),
    ("/internal/reservations", "inventory"),
    ("/internal/orders/4/confirm", "inventory"),
    ("/internal/orders/4/payments", "payment"),
    ("/internal/orders/4/mark-paid", "order"),
    ("/internal/unknown", None),
])
def test_internal_routing_table(path, service):
    assert target_service(path) == service


async def test_internal_routes_pass_only_when_exposed(make_platform):
    hidden = await make_platform(["gateway", "user", "product"])
    exposed = await make_platform(["gateway", "user", "product"], expose_internal=True)
    for platform in (hidden, exposed):
        admin = await platform.admin_token()
        category = await platform.post("/categories", token=admin, json={"name": "Tools"})
        await platform.post("/products", token=admin, json={
            "categoryId": category.body["id"], "name": "Saw", "price": 9.5, "stockQuantity": 1})
    assert (await hidden.get("/internal/products/1/exists")).status == 404
    reply = await exposed.get("/internal/products/1/exists")
    assert (reply.status, reply.body) == (200, {"exists": True})
