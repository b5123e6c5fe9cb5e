"""The order saga across cart, inventory and order on a real platform.

Branches without payment: reserve → pay (admin) → ship (stock sold) → deliver; cancel before and
after payment (stock released); expiry of unpaid reservations; the race for the last units;
redelivered events; the sweeps that repair a lost event or a crash mid-order.
"""

from __future__ import annotations

import asyncio

from mc_testkit import eventually
from test_order_routes import OrderSpy, Shop

from microcommerce.contracts.events import INVENTORY_EVENTS
from microcommerce.contracts.inventory import STOCK_RELEASED, StockChanged
from microcommerce.contracts.order import ORDER_CANCELLED, OrderData
from microcommerce.contracts.payment import PAYMENT_SUCCEEDED, PaymentData
from microcommerce.storage import open_database

FAST_EXPIRY = {"reservation_ttl_s": 1, "reservation_sweep_interval_ms": 100}


async def status_of(shop: Shop, order_id: int) -> dict:
    reply = await shop.platform.get(f"/orders/{order_id}", token=shop.admin)
    assert reply.status == 200, reply
    return reply.body


async def until_status(shop: Shop, order_id: int, status: str) -> dict:
    async def reached():
        order = await status_of(shop, order_id)
        return order if order["status"] == status else None

    return await eventually(reached)


async def until_events(spy: OrderSpy, order_id: int, event_type: str, count: int = 1) -> list:
    async def seen():
        found = spy.of(order_id, event_type)
        return found if len(found) >= count else None

    return await eventually(seen)


def assert_stock_in(level: dict, stock_in: int) -> None:
    assert level["availableQuantity"] + level["reservedQuantity"] + level["soldQuantity"] == stock_in


# -- the happy path and its cancellations ----------------------------------------------------------
async def test_paid_shipped_delivered_sells_the_stock(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    oid = order["id"]
    assert await shop.levels(lamp) == (10, 2, 8, 0)

    paid = await shop.set_status(oid, "paid")
    assert paid.status == 200 and paid.body["status"] == "paid"
    assert await shop.levels(lamp) == (10, 2, 8, 0)
    shipped = await shop.set_status(oid, "shipped")
    assert shipped.status == 200 and shipped.body["status"] == "shipped"
    assert await shop.levels(lamp) == (8, 0, 8, 2)
    delivered = await shop.set_status(oid, "delivered")
    assert delivered.status == 200 and delivered.body["status"] == "delivered"
    assert (await shop.platform.get(f"/orders/{oid}", token=token)).body["status"] == "delivered"

    for event_type in ("ORDER_CREATED", "ORDER_PAID", "ORDER_SHIPPED", "ORDER_DELIVERED"):
        await until_events(spy, oid, event_type)
    assert [e.data.previousStatus for e in spy.of(oid, "ORDER_SHIPPED")] == ["paid"]
    assert_stock_in(await shop.stock(lamp), 10)


async def test_cancelling_a_paid_order_releases_its_stock_and_says_it_was_paid(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 3))
    order = await shop.placed(token, lamp)
    await shop.set_status(order["id"], "paid")

    reply = await shop.set_status(order["id"], "cancelled")
    assert reply.status == 200 and reply.body["status"] == "cancelled"
    assert reply.body["cancelReason"] == "cancelled by admin"
    assert await shop.levels(lamp) == (10, 0, 10, 0)
    cancelled = (await until_events(spy, order["id"], "ORDER_CANCELLED"))[0].data
    assert (cancelled.previousStatus, cancelled.reason) == ("paid", "cancelled by admin")


async def test_admin_cancels_a_pending_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 3))
    order = await shop.placed(token, lamp)
    reply = await shop.set_status(order["id"], "cancelled")
    assert reply.status == 200 and reply.body["status"] == "cancelled"
    assert await shop.levels(lamp) == (10, 0, 10, 0)


async def test_invalid_transitions_are_409_and_change_nothing(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1))
    shipped = await shop.placed(token, lamp)
    cancelled = await shop.placed(token, lamp)
    await shop.set_status(shipped["id"], "paid")
    await shop.set_status(shipped["id"], "shipped")
    await shop.cancel(cancelled["id"], token)
    before = await shop.levels(lamp)

    for order_id, target in ((shipped["id"], "cancelled"), (shipped["id"], "paid"), (shipped["id"], "pending"),
                             (cancelled["id"], "paid"), (cancelled["id"], "pending")):
        reply = await shop.set_status(order_id, target)
        assert reply.status == 409, (target, reply)
        assert "Cannot change an order" in reply.body["message"]
    await shop.set_status(shipped["id"], "delivered")
    assert (await shop.set_status(shipped["id"], "shipped")).status == 409
    assert (await status_of(shop, cancelled["id"]))["status"] == "cancelled"
    assert await shop.levels(lamp) == before


# -- expiry --------------------------------------------------------------------------------------------
async def test_an_unpaid_order_expires_with_its_reservation(make_platform):
    shop = await Shop.open(make_platform, **FAST_EXPIRY)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=5)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)

    expired = await until_status(shop, order["id"], "cancelled")
    assert expired["cancelReason"] == "reservation expired"
    assert await shop.levels(lamp) == (5, 0, 5, 0)
    await asyncio.sleep(0.3)  # later sweeps must not cancel (or announce) it again
    assert len(spy.of(order["id"], "ORDER_CANCELLED")) == 1


async def test_a_paid_order_keeps_its_units_past_the_ttl(make_platform):
    shop = await Shop.open(make_platform, **FAST_EXPIRY)
    lamp = await shop.product(stock=5)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    assert (await shop.set_status(order["id"], "paid")).status == 200
    await asyncio.sleep(2.5)  # TTL and the order sweep's grace are both over
    assert (await status_of(shop, order["id"]))["status"] == "paid"
    assert await shop.levels(lamp) == (5, 2, 3, 0)
    assert (await shop.set_status(order["id"], "shipped")).status == 200
    assert await shop.levels(lamp) == (3, 0, 3, 2)


async def test_the_order_sweep_cancels_when_the_expiry_event_is_lost(make_platform):
    shop = await Shop.open(make_platform, **FAST_EXPIRY)
    # Fault: the order service never hears inventory's events (its consumer drops them).
    shop.platform.node.bus.subscribe(INVENTORY_EVENTS, "order", lambda *delivery: None)
    lamp = await shop.product(stock=5)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)

    expired = await until_status(shop, order["id"], "cancelled")
    assert expired["cancelReason"] == "reservation expired"
    assert await shop.levels(lamp) == (5, 0, 5, 0)


async def test_the_order_sweep_cleans_up_after_a_crash_between_insert_and_reservation(make_platform):
    shop = await Shop.open(make_platform, **FAST_EXPIRY)
    lamp = await shop.product(stock=5)
    _, token = await shop.customer((lamp, 1))
    # The crash left an order row in its internal "reserving" state, and a reservation for it
    # far from expiry: only the order sweep can give those units back.
    order_id = await _crashed_order(shop, user_id=1)
    far = "2999-01-01T00:00:00.000Z"
    reserved = await shop.platform.post(
        "/internal/reservations", service="inventory", json={
            "orderId": order_id, "productId": lamp, "quantity": 2, "expiresAt": far},
        headers={"X-Internal-Token": shop.platform.settings.internal_token})
    assert reserved.status == 201, reserved

    async def released():
        return await shop.levels(lamp) == (5, 0, 5, 0)

    await eventually(released)
    assert (await shop.platform.get(f"/orders/{order_id}", token=shop.admin)).status == 404
    # A real order afterwards is unaffected.
    assert (await shop.order(token, lamp)).status == 201


async def _crashed_order(shop: Shop, user_id: int) -> int:
    db = open_database(shop.platform.settings.database_url_of("order"))
    await db.connect()
    try:
        long_ago = "2000-01-01T00:00:00.000Z"
        result = await db.execute(
            "INSERT INTO orders (user_id, status, total_cents, currency, created_at, updated_at) "
            "VALUES (?, 'reserving', 2000, 'USD', ?, ?)", user_id, long_ago, long_ago)
        assert result.lastrowid is not None
        return result.lastrowid
    finally:
        await db.close()


# -- the race for the last units ---------------------------------------------------------------------
async def test_fifty_customers_race_for_ten_units(make_platform):
    await _race_for_ten_units(await Shop.open(make_platform))


async def test_fifty_customers_race_for_ten_units_on_mariadb(mysql_database_template, make_platform):
    # InnoDB row locks and the conditional update, with 4 workers per service racing for real.
    await _race_for_ten_units(await Shop.open(make_platform, database_url=mysql_database_template, workers=4))


async def _race_for_ten_units(shop: Shop) -> None:
    lamp = await shop.product(stock=10)
    customers = await asyncio.gather(*(shop.customer((lamp, 1)) for _ in range(50)))

    replies = await asyncio.gather(*(shop.order(token, lamp, quantity=1) for _, token in customers))
    statuses = [reply.status for reply in replies]
    assert statuses.count(201) == 10 and statuses.count(409) == 40, statuses
    assert all(reply.body["message"] for reply in replies if reply.status == 409)

    level = await shop.stock(lamp)
    assert (level["availableQuantity"], level["reservedQuantity"], level["soldQuantity"]) == (0, 10, 0)
    assert_stock_in(level, 10)
    orders = [order for _, token in customers for order in await shop.my_orders(token)]
    assert len(orders) == 10 and {order["status"] for order in orders} == {"pending"}


# -- redelivered events ---------------------------------------------------------------------------------
async def test_payment_succeeded_twice_pays_once(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10, price=7.5)
    user, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    payment = PaymentData(id=88, orderId=order["id"], userId=user["id"], provider="stripe",
                          providerPaymentId="pi_88", status="succeeded", amount=15.0, currency="USD")
    shop.platform.publish_twice(PAYMENT_SUCCEEDED, order["id"], payment)
    shop.platform.publish_twice(PAYMENT_SUCCEEDED, order["id"], payment)  # and another envelope

    paid = await until_status(shop, order["id"], "paid")
    assert paid["paymentId"] == 88
    await until_events(spy, order["id"], "ORDER_PAID")
    await asyncio.sleep(0.3)
    assert len(spy.of(order["id"], "ORDER_PAID")) == 1


async def test_payment_for_a_cancelled_order_changes_nothing(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    user, token = await shop.customer((lamp, 1))
    order = await shop.placed(token, lamp)
    await shop.cancel(order["id"], token)
    payment = PaymentData(id=9, orderId=order["id"], userId=user["id"], provider="stripe",
                          providerPaymentId="pi_9", status="succeeded", amount=10.0, currency="USD")
    shop.platform.publish_twice(PAYMENT_SUCCEEDED, order["id"], payment)
    await asyncio.sleep(0.3)
    assert (await status_of(shop, order["id"]))["status"] == "cancelled"


async def test_expired_stock_event_twice_cancels_once(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    released = StockChanged(productId=lamp, totalQuantity=10, reservedQuantity=0, availableQuantity=10,
                            orderId=order["id"], quantity=2, reason="expired")
    shop.platform.publish_twice(STOCK_RELEASED, lamp, released)
    shop.platform.publish_twice(STOCK_RELEASED, lamp, released)

    cancelled = await until_status(shop, order["id"], "cancelled")
    assert cancelled["cancelReason"] == "reservation expired"
    # The ORDER_CANCELLED backstop hands the (still reserved) units back to inventory.
    await eventually(lambda: _levels_are(shop, lamp, (10, 0, 10, 0)))
    await asyncio.sleep(0.3)
    assert len(spy.of(order["id"], "ORDER_CANCELLED")) == 1


async def test_a_released_reason_other_than_expired_does_not_cancel(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    released = StockChanged(productId=lamp, totalQuantity=10, reservedQuantity=0, availableQuantity=10,
                            orderId=order["id"], quantity=2, reason="released")
    shop.platform.publish_twice(STOCK_RELEASED, lamp, released)
    await asyncio.sleep(0.3)
    assert (await status_of(shop, order["id"]))["status"] == "pending"


async def test_order_cancelled_twice_releases_once(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    _, other = await shop.customer((lamp, 3))
    order = await shop.placed(token, lamp)
    await shop.placed(other, lamp)
    data = OrderData(id=order["id"], userId=order["userId"], status="cancelled", items=[],
                     totalAmount=20.0, reason="cancelled by user", previousStatus="pending")
    shop.platform.publish_twice(ORDER_CANCELLED, order["id"], data)
    shop.platform.publish_twice(ORDER_CANCELLED, order["id"], data)

    await eventually(lambda: _levels_are(shop, lamp, (10, 3, 7, 0)))
    await asyncio.sleep(0.3)
    assert await shop.levels(lamp) == (10, 3, 7, 0)


async def _levels_are(shop: Shop, product_id: int, expected: tuple[int, int, int, int]) -> bool:
    return await shop.levels(product_id) == expected

