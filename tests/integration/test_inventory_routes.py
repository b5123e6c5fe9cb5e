"""Inventory service on a real platform: stock from PRODUCT_CREATED, adjustments, reservations.

Products are announced by publishing PRODUCT_CREATED on the bus (the product service's job),
so these tests need only the inventory service (plus gateway and user where a token or the
public entry point matters).
"""

from __future__ import annotations

import asyncio

import pytest
from mc_testkit import eventually

from microcommerce.contracts.events import INVENTORY_EVENTS, new_event
from microcommerce.contracts.inventory import (
    STOCK_RELEASED,
    STOCK_UPDATED,
    ReleaseOrderStock,
    ReserveLine,
    ReserveStock,
)
from microcommerce.contracts.order import ORDER_CANCELLED, ORDER_PAID, ORDER_SHIPPED, OrderData
from microcommerce.contracts.product import PRODUCT_CREATED, PRODUCT_EVENTS, ProductData
from microcommerce.errors import Conflict
from microcommerce.http.middlewares import INTERNAL_TOKEN_HEADER

PAST = "2000-01-01T00:00:00.000Z"
NO_SWEEP_MS = 3_600_000  # the expiry timer stays out of tests that drive expiry by hand


class EventSpy:
    """A real consumer group on the bus that records what inventory published."""

    def __init__(self, platform) -> None:
        self.events = []
        platform.node.bus.subscribe(INVENTORY_EVENTS, "test-spy", self._record)

    def _record(self, envelope, topic, key, done) -> None:
        self.events.append(envelope)

    def of(self, event_type: str, product_id: int) -> list:
        return [e for e in self.events if e.eventType == event_type and e.data.productId == product_id]


def announce_product(platform, product_id: int, stock: int, created_by: int | None = None) -> None:
    data = ProductData(id=product_id, categoryId=1, name=f"Product {product_id}", price=9.99,
                       stockQuantity=stock, createdBy=created_by)
    platform.node.bus.publish(PRODUCT_EVENTS, str(product_id), new_event(PRODUCT_CREATED, "test", data))


async def stock_of(platform, product_id: int, service: str = "inventory") -> dict:
    reply = await platform.get(f"/inventory/{product_id}", service=service)
    assert reply.status == 200, reply
    return reply.body


async def wait_for_stock(platform, product_id: int) -> dict:
    async def known():
        reply = await platform.get(f"/inventory/{product_id}", service="inventory")
        return reply.body if reply.status == 200 else None

    return await eventually(known)


def internal(platform) -> dict[str, str]:
    return {INTERNAL_TOKEN_HEADER: platform.settings.internal_token}


async def reserve(platform, order_id: int, product_id: int, quantity: int, expires_at: str | None = None):
    body = {"orderId": order_id, "productId": product_id, "quantity": quantity}
    if expires_at is not None:
        body["expiresAt"] = expires_at
    return await platform.post("/internal/reservations", json=body, service="inventory",
                               headers=internal(platform))


async def internal_post(platform, path: str):
    return await platform.post(path, service="inventory", headers=internal(platform))


def order_data(order_id: int, status: str) -> OrderData:
    return OrderData(id=order_id, userId=1, status=status, items=[], totalAmount=0)


def assert_stock_in(level: dict, stock_in: int) -> None:
    assert level["availableQuantity"] + level["reservedQuantity"] + level["soldQuantity"] == stock_in
    assert level["availableQuantity"] == level["totalQuantity"] - level["reservedQuantity"]


# -- stock levels --------------------------------------------------------------------------
async def test_stock_comes_from_product_created_through_the_gateway(make_platform):
    platform = await make_platform(["gateway", "inventory"])
    announce_product(platform, 7, 12)
    await wait_for_stock(platform, 7)
    level = await stock_of(platform, 7, service="gateway")
    assert level == {"productId": 7, "totalQuantity": 12, "reservedQuantity": 0,
                     "availableQuantity": 12, "soldQuantity": 0, "discontinued": False}


async def test_unknown_product_is_404_and_bad_id_is_400(make_platform):
    platform = await make_platform(["inventory"])
    reply = await platform.get("/inventory/999", service="inventory")
    assert reply.status == 404 and "999" in reply.body["message"]
    reply = await platform.get("/inventory/abc", service="inventory")
    assert reply.status == 400 and "productId" in reply.body["message"]


async def test_product_created_twice_sets_stock_once_and_never_overwrites(make_platform):
    platform = await make_platform(["inventory"])
    spy = EventSpy(platform)
    data = ProductData(id=3, categoryId=1, name="Lamp", price=20, stockQuantity=5)
    platform.publish_twice(PRODUCT_CREATED, 3, data)
    await wait_for_stock(platform, 3)
    await reserve(platform, order_id=1, product_id=3, quantity=2)
    # A later, different delivery of the creation (new eventId) must not reset the stock either.
    announce_product(platform, 3, 50)
    await asyncio.sleep(0.2)  # give a (wrong) second creation the chance to land
    level = await stock_of(platform, 3)
    assert (level["totalQuantity"], level["reservedQuantity"], level["availableQuantity"]) == (5, 2, 3)
    assert len(spy.of(STOCK_UPDATED, 3)) == 1
    assert spy.of(STOCK_UPDATED, 3)[0].data.reason == "initial"


async def test_negative_initial_stock_starts_empty(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 4, -3)
    level = await wait_for_stock(platform, 4)
    assert level["totalQuantity"] == 0 and level["availableQuantity"] == 0


# -- adjustments -----------------------------------------------------------------------------
async def test_admin_adjusts_stock_and_an_event_announces_it(make_platform):
    platform = await make_platform(["gateway", "user", "inventory"])
    spy = EventSpy(platform)
    announce_product(platform, 10, 4)
    await wait_for_stock(platform, 10)
    token = await platform.admin_token()
    reply = await platform.request("PUT", "/inventory/10/stock", json={"totalQuantity": 9}, token=token)
    assert reply.status == 200, reply
    assert reply.body["totalQuantity"] == 9 and reply.body["availableQuantity"] == 9
    assert (await stock_of(platform, 10))["totalQuantity"] == 9

    async def announced():
        return [e.data for e in spy.of(STOCK_UPDATED, 10) if e.data.reason == "adjusted"]

    adjusted = await eventually(announced)
    assert adjusted[0].totalQuantity == 9 and adjusted[0].quantity == 5


async def test_adjusting_stock_refuses_bad_callers_and_bad_bodies(make_platform):
    platform = await make_platform(["gateway", "user", "inventory"])
    announce_product(platform, 11, 4)
    await wait_for_stock(platform, 11)
    admin = await platform.admin_token()
    _, user_token = await platform.new_user()
    put = platform.request

    assert (await put("PUT", "/inventory/11/stock", json={"totalQuantity": 1})).status == 401
    reply = await put("PUT", "/inventory/11/stock", json={"totalQuantity": 1}, token=user_token)
    assert reply.status == 403 and reply.body["message"]
    for body in ({"totalQuantity": -1}, {"totalQuantity": "5"}, {"totalQuantity": 2.5}, {}):
        reply = await put("PUT", "/inventory/11/stock", json=body, token=admin)
        assert reply.status == 400, (body, reply)
        assert reply.body["message"]
    reply = await put("PUT", "/inventory/11/stock", data="{not json", token=admin,
                      headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.body["message"] == "Malformed JSON body"
    reply = await put("PUT", "/inventory/404/stock", json={"totalQuantity": 1}, token=admin)
    assert reply.status == 404
    assert (await stock_of(platform, 11))["totalQuantity"] == 4


async def test_stock_cannot_drop_below_what_is_reserved(make_platform):
    platform = await make_platform(["gateway", "user", "inventory"])
    announce_product(platform, 12, 6)
    await wait_for_stock(platform, 12)
    assert (await reserve(platform, order_id=5, product_id=12, quantity=4)).status == 201
    admin = await platform.admin_token()
    reply = await platform.request("PUT", "/inventory/12/stock", json={"totalQuantity": 3}, token=admin)
    assert reply.status == 409 and "reserved" in reply.body["message"]
    reply = await platform.request("PUT", "/inventory/12/stock", json={"totalQuantity": 4}, token=admin)
    assert reply.status == 200 and reply.body["availableQuantity"] == 0


async def test_a_supplier_adjusts_only_the_products_they_created(make_platform):
    platform = await make_platform(["gateway", "user", "inventory"])
    admin = await platform.admin_token()
    created = await platform.post("/users", token=admin, json={
        "name": "Sam Supplier", "email": "sam@supplier.test", "password": "password123", "role": "supplier"})
    assert created.status == 201, created
    supplier = await platform.login("sam@supplier.test")
    announce_product(platform, 20, 1, created_by=created.body["id"])
    announce_product(platform, 21, 1, created_by=created.body["id"] + 1000)
    await wait_for_stock(platform, 20)
    await wait_for_stock(platform, 21)
    reply = await platform.request("PUT", "/inventory/20/stock", json={"totalQuantity": 30}, token=supplier)
    assert reply.status == 200 and reply.body["totalQuantity"] == 30
    reply = await platform.request("PUT", "/inventory/21/stock", json={"totalQuantity": 30}, token=supplier)
    assert reply.status == 403


# -- reservations ----------------------------------------------------------------------------
async def test_reservation_is_idempotent_per_order_and_product(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 30, 10)
    await wait_for_stock(platform, 30)
    first = await reserve(platform, order_id=100, product_id=30, quantity=3)
    assert first.status == 201, first
    assert first.body["status"] == "reserved" and first.body["orderId"] == 100
    again = await reserve(platform, order_id=100, product_id=30, quantity=3)
    assert again.status == 201 and again.body["id"] == first.body["id"]
    level = await stock_of(platform, 30)
    assert (level["reservedQuantity"], level["availableQuantity"]) == (3, 7)


async def test_reservation_errors(make_platform):
    platform = await make_platform(["gateway", "inventory"])
    announce_product(platform, 31, 2)
    await wait_for_stock(platform, 31)
    short = await reserve(platform, order_id=1, product_id=31, quantity=3)
    assert short.status == 409 and "product 31" in short.body["message"]
    unknown = await reserve(platform, order_id=1, product_id=999, quantity=1)
    assert unknown.status == 404
    for body in ({"orderId": 1, "productId": 31, "quantity": 0}, {"orderId": "1", "productId": 31},
                 {"orderId": 1, "productId": 31, "quantity": 1, "expiresAt": "tomorrow-ish"}):
        reply = await platform.post("/internal/reservations", json=body, service="inventory",
                                    headers=internal(platform))
        assert reply.status == 400, (body, reply)
    # Internal routes need the service token, and the gateway does not pass them through.
    reply = await platform.post("/internal/reservations", service="inventory",
                                json={"orderId": 1, "productId": 31, "quantity": 1})
    assert reply.status == 403
    reply = await platform.post("/internal/reservations", json={"orderId": 1, "productId": 31, "quantity": 1})
    assert reply.status in (403, 404) and reply.body["message"]
    assert (await stock_of(platform, 31))["reservedQuantity"] == 0


async def test_release_a_reservation_and_an_order_idempotently(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 32, 10)
    await wait_for_stock(platform, 32)
    one = (await reserve(platform, order_id=7, product_id=32, quantity=2)).body
    await reserve(platform, order_id=8, product_id=32, quantity=3)

    for _ in range(2):
        reply = await internal_post(platform, f"/internal/reservations/{one['id']}/release")
        assert reply.status == 200 and reply.body["status"] == "released"
    assert (await stock_of(platform, 32))["reservedQuantity"] == 3
    for _ in range(2):
        reply = await internal_post(platform, "/internal/orders/8/release")
        assert reply.status == 200
        assert [r["status"] for r in reply.body["reservations"]] == ["released"]
    level = await stock_of(platform, 32)
    assert (level["reservedQuantity"], level["availableQuantity"]) == (0, 10)
    assert (await internal_post(platform, "/internal/reservations/999/release")).status == 404
    assert (await internal_post(platform, "/internal/reservations/x/release")).status == 400


async def test_confirm_sells_reserved_units_once(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 33, 10)
    await wait_for_stock(platform, 33)
    await reserve(platform, order_id=9, product_id=33, quantity=4)
    for _ in range(2):
        reply = await internal_post(platform, "/internal/orders/9/confirm")
        assert reply.status == 200 and reply.body["reservations"][0]["status"] == "confirmed"
    level = await stock_of(platform, 33)
    assert level == {"productId": 33, "totalQuantity": 6, "reservedQuantity": 0,
                     "availableQuantity": 6, "soldQuantity": 4, "discontinued": False}
    assert_stock_in(level, 10)
    # A confirmed reservation is sold: releasing the order afterwards gives nothing back.
    await internal_post(platform, "/internal/orders/9/release")
    assert (await stock_of(platform, 33))["soldQuantity"] == 4


async def test_confirming_a_lapsed_reservation_sells_from_available_or_refuses(make_platform):
    platform = await make_platform(["inventory"], reservation_sweep_interval_ms=NO_SWEEP_MS)
    announce_product(platform, 34, 3)
    await wait_for_stock(platform, 34)
    await reserve(platform, order_id=1, product_id=34, quantity=2, expires_at=PAST)
    assert (await internal_post(platform, "/internal/reservations/release-expired")).body == {"released": 1}
    await reserve(platform, order_id=3, product_id=34, quantity=2)  # only 1 unit left for order 1
    assert (await internal_post(platform, "/internal/orders/1/confirm")).status == 409
    await internal_post(platform, "/internal/orders/3/release")
    reply = await internal_post(platform, "/internal/orders/1/confirm")
    assert reply.status == 200 and reply.body["reservations"][0]["status"] == "confirmed"
    level = await stock_of(platform, 34)
    assert (level["totalQuantity"], level["soldQuantity"], level["availableQuantity"]) == (1, 2, 1)


async def test_multi_line_reservation_is_all_or_nothing(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 40, 5)
    announce_product(platform, 41, 1)
    await wait_for_stock(platform, 40)
    await wait_for_stock(platform, 41)
    inventory = platform.system("inventory")
    with pytest.raises(Conflict, match="product 41"):
        await inventory.ask(ReserveStock(order_id=50, lines=[ReserveLine(40, 2), ReserveLine(41, 2)]))
    assert (await stock_of(platform, 40))["reservedQuantity"] == 0
    reservations = await inventory.ask(ReserveStock(order_id=50, lines=[ReserveLine(40, 2), ReserveLine(41, 1)]))
    assert [(r.productId, r.quantity, r.status) for r in reservations] == [(40, 2, "reserved"), (41, 1, "reserved")]
    again = await inventory.ask(ReserveStock(order_id=50, lines=[ReserveLine(40, 2), ReserveLine(41, 1)]))
    assert [r.id for r in again] == [r.id for r in reservations]
    assert (await stock_of(platform, 41))["availableQuantity"] == 0
    released = await inventory.ask(ReleaseOrderStock(order_id=50))
    assert {r.status for r in released} == {"released"}
    assert (await stock_of(platform, 40))["availableQuantity"] == 5


async def test_concurrent_reservations_never_take_more_than_available(make_platform):
    platform = await make_platform(["inventory"], workers=4)
    announce_product(platform, 50, 10)
    await wait_for_stock(platform, 50)
    replies = await asyncio.gather(*(reserve(platform, order_id=1000 + i, product_id=50, quantity=1)
                                     for i in range(30)))
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) == 10 and statuses.count(409) == 20
    level = await stock_of(platform, 50)
    assert (level["availableQuantity"], level["reservedQuantity"]) == (0, 10)
    assert_stock_in(level, 10)


# -- expiry ------------------------------------------------------------------------------------
async def test_release_expired_route_releases_only_past_reservations(make_platform):
    platform = await make_platform(["inventory"], reservation_sweep_interval_ms=NO_SWEEP_MS)
    spy = EventSpy(platform)
    announce_product(platform, 60, 10)
    await wait_for_stock(platform, 60)
    await reserve(platform, order_id=1, product_id=60, quantity=2, expires_at=PAST)
    await reserve(platform, order_id=2, product_id=60, quantity=3)
    assert (await internal_post(platform, "/internal/reservations/release-expired")).body == {"released": 1}
    assert (await internal_post(platform, "/internal/reservations/release-expired")).body == {"released": 0}
    assert (await stock_of(platform, 60))["reservedQuantity"] == 3
    released = await eventually(lambda: _released(spy, 60))
    assert [(e.data.orderId, e.data.reason, e.data.quantity) for e in released] == [(1, "expired", 2)]


async def _released(spy: EventSpy, product_id: int) -> list:
    return spy.of(STOCK_RELEASED, product_id)


async def test_the_sweep_timer_expires_reservations_but_not_paid_ones(make_platform):
    platform = await make_platform(["inventory"], reservation_ttl_s=1, reservation_sweep_interval_ms=100)
    announce_product(platform, 61, 10)
    await wait_for_stock(platform, 61)
    await reserve(platform, order_id=1, product_id=61, quantity=2)
    await reserve(platform, order_id=2, product_id=61, quantity=3)
    platform.node.bus.publish("order-events", "2", new_event(ORDER_PAID, "test", order_data(2, "paid")))

    async def only_paid_left():
        level = await stock_of(platform, 61)
        return level if level["reservedQuantity"] == 3 else None

    await eventually(only_paid_left)
    await asyncio.sleep(1.5)  # well past the TTL: the paid order's units are still held
    assert (await stock_of(platform, 61))["reservedQuantity"] == 3
    reply = await internal_post(platform, "/internal/orders/1/release")
    assert reply.body["reservations"][0]["status"] == "expired"


# -- order events (backstops of the saga requests) -----------------------------------------------
async def test_order_cancelled_twice_releases_once(make_platform):
    platform = await make_platform(["inventory"])
    spy = EventSpy(platform)
    announce_product(platform, 70, 10)
    await wait_for_stock(platform, 70)
    await reserve(platform, order_id=77, product_id=70, quantity=4)
    await reserve(platform, order_id=78, product_id=70, quantity=1)
    platform.publish_twice(ORDER_CANCELLED, 77, order_data(77, "cancelled"))
    platform.publish_twice(ORDER_CANCELLED, 77, order_data(77, "cancelled"))  # and a second envelope

    async def released():
        level = await stock_of(platform, 70)
        return level if level["reservedQuantity"] == 1 else None

    level = await eventually(released)
    assert level["availableQuantity"] == 9
    await asyncio.sleep(0.2)
    assert len(spy.of(STOCK_RELEASED, 70)) == 1
    assert (await stock_of(platform, 70))["reservedQuantity"] == 1


async def test_order_shipped_confirms_as_a_backstop(make_platform):
    platform = await make_platform(["inventory"])
    announce_product(platform, 71, 10)
    await wait_for_stock(platform, 71)
    await reserve(platform, order_id=79, product_id=71, quantity=4)
    platform.publish_twice(ORDER_SHIPPED, 79, order_data(79, "shipped"))

    async def sold():
        level = await stock_of(platform, 71)
        return level if level["soldQuantity"] == 4 else None

    level = await eventually(sold)
    assert (level["totalQuantity"], level["reservedQuantity"]) == (6, 0)
