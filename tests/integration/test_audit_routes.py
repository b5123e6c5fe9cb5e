"""Audit service on a real platform: events and HTTP activity in, `GET /audit/logs[/me]` out."""

import json
from urllib.parse import urlencode

from mc_testkit import eventually

from microcommerce.contracts.audit import HTTP_ACTIVITY, HttpActivity
from microcommerce.contracts.events import event_type, new_event
from microcommerce.contracts.inventory import STOCK_RELEASED, StockChanged
from microcommerce.contracts.order import (
    ORDER_CANCELLED,
    ORDER_CREATED,
    ORDER_DELIVERED,
    ORDER_PAID,
    OrderData,
)
from microcommerce.contracts.payment import PAYMENT_FAILED, PaymentData

SERVICES = ["gateway", "user", "audit"]
# Injected events are dated 2020, so a from/to window separates them from live activity
# (every admin query of the log is itself recorded).
YEAR_2020 = {"from": "2020-01-01T00:00:00Z", "to": "2020-12-31T23:59:59Z"}


def at(minute: int) -> str:
    return f"2020-06-01T10:{minute:02d}:00.000Z"


def publish(platform, name: str, key: object, data, *, producer: str, occurred_at: str) -> None:
    envelope = new_event(name, producer, data)
    envelope.occurredAt = occurred_at
    platform.node.bus.publish(event_type(name).topic, str(key), envelope)


def order(order_id: int, user_id: int, status: str, reason: str = "") -> OrderData:
    return OrderData(id=order_id, userId=user_id, status=status, items=[], totalAmount=12.5,
                     reason=reason)


def activity(service: str, method: str, path: str, status: int, user_id: int | None = None,
             role: str | None = None, request_id: str = "req") -> HttpActivity:
    return HttpActivity(service=service, method=method, path=path, status=status, durationMs=1.5,
                        requestId=request_id, ip="127.0.0.1", actorUserId=user_id, actorRole=role)


async def logs(platform, token: str | None, path: str = "/audit/logs", **params):
    return await platform.get(f"{path}?{urlencode(params)}", token=token)


async def items(platform, token: str, **params) -> list[dict]:
    reply = await logs(platform, token, **params)
    assert reply.status == 200, reply
    return reply.body["items"]


async def only_one(platform, token: str, **params) -> dict | None:
    """The single record matching, once it is there (None while the projection catches up)."""
    found = await items(platform, token, **params)
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_signup_and_admin_activity_are_recorded(make_platform):
    platform = await make_platform(SERVICES)
    user = await platform.signup(name="Audra", email="audra@example.com")
    admin = await platform.admin_token()
    admin_id = (await platform.get("/auth/session", token=admin)).body["user"]["id"]

    created = await eventually(lambda: only_one(platform, admin, eventType="USER_CREATED",
                                                actorUserId=user["id"]))
    assert (created["logType"], created["serviceName"], created["actorRole"]) == ("event", "user", "user")
    assert (created["severity"], created["httpMethod"], created["httpStatus"]) == ("info", None, None)
    assert created["summary"] == f"User #{user['id']} created (audra@example.com, role user)"
    assert json.loads(created["payload"])["email"] == "audra@example.com"

    signup = await eventually(lambda: only_one(platform, admin, logType="http", serviceName="user",
                                               q="/auth/signup"))
    assert (signup["httpMethod"], signup["path"], signup["httpStatus"]) == ("POST", "/auth/signup", 201)
    assert (signup["eventType"], signup["severity"], signup["actorUserId"]) == ("HTTP_ACTIVITY", "info", None)
    assert signup["summary"] == "POST /auth/signup -> 201 on the user service by an anonymous caller"
    # The gateway only forwards: the request is recorded once, by the service that served it.
    assert await items(platform, admin, q="/auth/signup", logType="http") == [signup]

    # An admin's read is recorded with who did it.
    assert (await platform.get("/auth/users", token=admin)).status == 200
    read = await eventually(lambda: only_one(platform, admin, serviceName="user", httpMethod="GET",
                                             q="/auth/users"))
    assert (read["path"], read["httpStatus"], read["actorUserId"], read["actorRole"]) == (
        "/auth/users", 200, admin_id, "admin")

    # A rejected write is a warning.
    bad = await platform.post("/auth/login", json={"email": "audra@example.com", "password": "wrong-pass"})
    assert bad.status == 401
    failed = await eventually(lambda: only_one(platform, admin, serviceName="user", httpStatus=401))
    assert (failed["severity"], failed["path"]) == ("warning", "/auth/login")


async def test_logs_need_an_admin_and_me_needs_a_user(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    for path in ("/audit/logs", "/audit/logs/me"):
        reply = await logs(platform, None, path)
        assert reply.status == 401 and reply.body["message"], reply
        reply = await logs(platform, "not-a-jwt", path)
        assert reply.status == 401, reply
    reply = await logs(platform, token)
    assert reply.status == 403 and reply.body["message"], reply
    reply = await logs(platform, token, "/audit/logs/me")
    assert reply.status == 200 and reply.body["page"] == 1 and reply.body["limit"] == 50


async def test_me_shows_only_the_callers_records(make_platform):
    platform = await make_platform(SERVICES)
    alice, alice_token = await platform.new_user()
    bob, bob_token = await platform.new_user()
    reply = await platform.request("PUT", f"/users/{alice['id']}", json={"name": "Alice B"},
                                   token=alice_token)
    assert reply.status == 200

    async def alice_sees_her_update():
        found = await items(platform, alice_token, path="/audit/logs/me", actorUserId=bob["id"])
        kinds = {(r["eventType"], r["serviceName"]) for r in found}
        return {("USER_CREATED", "user"), ("USER_UPDATED", "user"), ("HTTP_ACTIVITY", "user")} <= kinds and found

    found = await eventually(alice_sees_her_update)
    assert {r["actorUserId"] for r in found} == {alice["id"]}  # actorUserId=bob is overridden
    http = [r for r in found if r["logType"] == "http"]
    assert {(r["httpMethod"], r["path"]) for r in http} >= {("PUT", f"/users/{alice['id']}")}
    reply = await logs(platform, alice_token, "/audit/logs/me", limit=1, eventType="USER_UPDATED")
    assert reply.status == 200 and reply.body["total"] == 1 and reply.body["limit"] == 1

    bobs = await items(platform, bob_token, path="/audit/logs/me")
    assert bobs and {r["actorUserId"] for r in bobs} == {bob["id"]}


async def test_filters_paging_and_newest_first(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    publish(platform, ORDER_CREATED, 1, order(1, 70, "pending"), producer="order-service",
            occurred_at=at(1))
    publish(platform, ORDER_CANCELLED, 1, order(1, 70, "cancelled", "customer changed mind"),
            producer="order-service", occurred_at=at(2))
    publish(platform, PAYMENT_FAILED, 8, PaymentData(
        id=8, orderId=2, userId=71, provider="stripe", providerPaymentId=None, status="failed",
        amount=30.0, currency="USD", failureReason="card declined"),
        producer="payment-service", occurred_at=at(3))
    publish(platform, STOCK_RELEASED, 5, StockChanged(
        productId=5, totalQuantity=10, reservedQuantity=0, availableQuantity=10, orderId=3,
        quantity=2, reason="expired"), producer="inventory-service", occurred_at=at(4))
    publish(platform, HTTP_ACTIVITY, "r5", activity("product", "POST", "/products", 201, 72, "admin"),
            producer="product-service", occurred_at=at(5))
    publish(platform, HTTP_ACTIVITY, "r6", activity("order", "PATCH", "/orders/1/status", 500, 72, "admin"),
            producer="order-service", occurred_at=at(6))
    publish(platform, HTTP_ACTIVITY, "r7", activity("user", "POST", "/auth/login", 401),
            producer="user-service", occurred_at=at(7))

    async def all_recorded():
        reply = await logs(platform, admin, **YEAR_2020)
        return reply.status == 200 and reply.body["total"] == 7 and reply.body

    body = await eventually(all_recorded)
    assert [r["occurredAt"] for r in body["items"]] == [at(m) for m in (7, 6, 5, 4, 3, 2, 1)]
    assert (body["page"], body["limit"]) == (1, 50)

    async def minutes(**params) -> list[int]:
        return [int(r["occurredAt"][14:16]) for r in await items(platform, admin, **{**YEAR_2020, **params})]

    assert await minutes(logType="event") == [4, 3, 2, 1]
    assert await minutes(logType="http") == [7, 6, 5]
    assert await minutes(serviceName="order") == [6, 2, 1]
    assert await minutes(actorUserId=70) == [2, 1]
    assert await minutes(actorRole="admin") == [6, 5]
    assert await minutes(severity="warning") == [7, 4, 3, 2]
    assert await minutes(severity="error") == [6]
    assert await minutes(httpMethod="post") == [7, 5]
    assert await minutes(httpStatus=500) == [6]
    assert await minutes(eventType="PAYMENT_FAILED") == [3]
    assert await minutes(q="DECLINED") == [3]
    assert await minutes(q="/orders/1/") == [6]
    assert await minutes(q="expired") == [4]
    assert await minutes(**{"from": at(2), "to": at(4)}) == [4, 3, 2]  # both ends inclusive
    assert await minutes(**{"from": "2020-06-01T12:05:00+02:00"}) == [7, 6, 5]

    failed = (await items(platform, admin, eventType="PAYMENT_FAILED"))[0]
    assert (failed["serviceName"], failed["actorUserId"], failed["severity"]) == ("payment", 71, "warning")
    assert failed["summary"] == "Payment #8 for order #2 failed (card declined)"

    pages = []
    for page in (1, 2, 3):
        reply = await logs(platform, admin, **YEAR_2020, limit=3, page=page)
        assert reply.status == 200 and reply.body["total"] == 7 and reply.body["limit"] == 3
        pages.append([int(r["occurredAt"][14:16]) for r in reply.body["items"]])
    assert pages == [[7, 6, 5], [4, 3, 2], [1]]


async def test_each_event_delivered_twice_is_recorded_once(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    platform.publish_twice(ORDER_PAID, 9, order(9, 80, "paid", reason="twice-marker"))
    platform.publish_twice(HTTP_ACTIVITY, "req-twice", activity("cart", "DELETE", "/carts/me/twice", 204, 80))
    # One worker per key, in order: once these later events are recorded, the duplicates were seen.
    platform.publish_twice(ORDER_DELIVERED, 9, order(9, 80, "delivered", reason="after-marker"))
    platform.publish_twice(HTTP_ACTIVITY, "req-twice", activity("cart", "DELETE", "/carts/me/after", 204, 80))
    await eventually(lambda: only_one(platform, admin, q="after-marker"))
    await eventually(lambda: only_one(platform, admin, q="/carts/me/after"))
    for marker in ("twice-marker", "/carts/me/twice"):
        reply = await logs(platform, admin, q=marker)
        assert reply.body["total"] == 1, (marker, reply)
    reply = await logs(platform, admin, actorUserId=80)
    assert reply.body["total"] == 4


async def test_bad_query_values_are_400(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    _, user_token = await platform.new_user()
    bad = [
        {"page": "0"}, {"page": "x"}, {"limit": "0"}, {"limit": "201"}, {"limit": "2.5"},
        {"logType": "debug"}, {"serviceName": "a b"}, {"actorUserId": "-3"}, {"actorUserId": "me"},
        {"actorRole": "root"}, {"severity": "fatal"}, {"httpMethod": "BREW"}, {"httpStatus": "abc"},
        {"httpStatus": "700"}, {"eventType": "NOT AN EVENT"}, {"from": "yesterday"},
        {"to": "2026-02-30T00:00:00Z"}, {"from": "2026-02-16", "to": "2026-02-15"},
        {"q": "x" * 201},
    ]
    for params in bad:
        for path, token in (("/audit/logs", admin), ("/audit/logs/me", user_token)):
            reply = await logs(platform, token, path, **params)
            assert reply.status == 400, (path, params, reply)
            assert isinstance(reply.body["message"], str) and reply.body["message"], reply
    reply = await logs(platform, admin, limit="200", page="1", severity="", q="")
    assert reply.status == 200 and reply.body["limit"] == 200
