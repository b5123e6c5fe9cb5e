"""A refund undoes the sale (issue item 11), on a real platform through the gateway.

Refunding the payment of a paid order cancels the order and releases its pinned reservation; a
shipped or delivered order ends `refunded` with its stock still sold. Either way no paid, shipped
or delivered order is left without exactly one succeeded, unrefunded payment.
"""

from __future__ import annotations

import msgspec
from mc_testkit import eventually
from test_order_routes import OrderSpy, Shop
from test_payment_routes import charge, order_payments

from microcommerce.contracts.events import ORDER_EVENTS, new_event
from microcommerce.contracts.payment import PAYMENT_REFUNDED, PaymentData

SHOP = ["gateway", "user", "cart", "product", "inventory", "order", "payment"]
SETTLED = ("paid", "shipped", "delivered")


async def paid_order(shop: Shop, product_id: int, quantity: int) -> tuple[dict, str, dict]:
    """(order, customer token, succeeded payment) once the order reads paid."""
    _, token = await shop.customer((product_id, quantity))
    order = await shop.placed(token, product_id)
    payment = await charge(shop.platform, token, order["id"], paymentToken="tok_visa")
    assert payment.status == 201 and payment.body["status"] == "succeeded", payment
    await until_status(shop, order["id"], "paid")
    return order, token, payment.body


async def until_status(shop: Shop, order_id: int, status: str) -> dict:
    async def reached():
        reply = await shop.platform.get(f"/orders/{order_id}", token=shop.admin)
        return reply.body if reply.body["status"] == status else None

    return await eventually(reached)


async def refund(shop: Shop, payment_id: int):
    reply = await shop.platform.post(f"/payments/{payment_id}/refund", token=shop.admin,
                                     json={"reason": "customer asked"})
    assert reply.status == 200 and reply.body["status"] == "refunded", reply
    return reply.body


async def assert_payment_invariant(shop: Shop, order_id: int) -> None:
    """Settled orders have exactly one succeeded payment; no other order keeps one."""
    order = (await shop.platform.get(f"/orders/{order_id}", token=shop.admin)).body
    succeeded = [p for p in await order_payments(shop.platform, order_id) if p["status"] == "succeeded"]
    assert len(succeeded) == (1 if order["status"] in SETTLED else 0), (order, succeeded)


async def test_refunding_a_paid_order_cancels_it_releases_its_stock_and_it_cannot_ship(make_platform):
    shop = await Shop.open(make_platform, SHOP)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    order, token, payment = await paid_order(shop, lamp, 3)
    assert await shop.levels(lamp) == (10, 3, 7, 0)

    await refund(shop, payment["id"])

    cancelled = await until_status(shop, order["id"], "cancelled")
    assert cancelled["cancelReason"] == "payment refunded"
    shipped = await shop.set_status(order["id"], "shipped")
    assert shipped.status == 409, shipped
    assert (await until_status(shop, order["id"], "cancelled"))["status"] == "cancelled"

    async def released():
        return await shop.levels(lamp) == (10, 0, 10, 0)

    await eventually(released)
    event = (await eventually(lambda: _async(spy.of(order["id"], "ORDER_CANCELLED"))))[0]
    assert (event.data.previousStatus, event.data.reason) == ("paid", "payment refunded")
    await assert_payment_invariant(shop, order["id"])
    # The customer cannot pay the refunded order again.
    again = await charge(shop.platform, token, order["id"], paymentToken="tok_visa")
    assert again.status == 409, again


async def test_refunding_a_shipped_order_keeps_the_stock_sold_and_marks_it_refunded(make_platform):
    shop = await Shop.open(make_platform, SHOP)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    order, _, payment = await paid_order(shop, lamp, 2)
    assert (await shop.set_status(order["id"], "shipped")).status == 200
    assert await shop.levels(lamp) == (8, 0, 8, 2)

    await refund(shop, payment["id"])

    refunded = await until_status(shop, order["id"], "refunded")
    assert refunded["cancelReason"] == "payment refunded"
    await eventually(lambda: _async(spy.of(order["id"], "ORDER_REFUNDED")))
    assert await shop.levels(lamp) == (8, 0, 8, 2)  # the goods left: they stay sold
    for target in ("delivered", "shipped", "paid", "cancelled", "refunded"):
        reply = await shop.set_status(order["id"], target)
        assert reply.status == 409, (target, reply)
    await assert_payment_invariant(shop, order["id"])


async def test_a_redelivered_refund_changes_nothing_twice(make_platform):
    shop = await Shop.open(make_platform, SHOP)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    order, _, payment = await paid_order(shop, lamp, 1)
    refunded = await refund(shop, payment["id"])
    await until_status(shop, order["id"], "cancelled")
    await eventually(lambda: _async(spy.of(order["id"], "ORDER_CANCELLED")))

    data = PaymentData(id=refunded["id"], orderId=order["id"], userId=refunded["userId"],
                       provider=refunded["provider"], providerPaymentId=refunded["providerPaymentId"],
                       status="refunded", amount=refunded["amount"], currency=refunded["currency"])
    await shop.platform.deliver("order", new_event(PAYMENT_REFUNDED, "payment-service", data), order["id"], 2)
    # A refund of a payment that never paid this order is ignored too.
    stranger = msgspec.structs.replace(data, id=refunded["id"] + 100)
    await shop.platform.deliver("order", new_event(PAYMENT_REFUNDED, "payment-service", stranger), order["id"], 1)

    assert len(spy.of(order["id"], "ORDER_CANCELLED")) == 1
    assert (await until_status(shop, order["id"], "cancelled"))["status"] == "cancelled"
    assert await shop.levels(lamp) == (10, 0, 10, 0)
    await assert_payment_invariant(shop, order["id"])


async def _async(value):
    return value


async def test_a_payment_that_lands_after_the_reservation_lapsed_is_cancelled_and_refunded(make_platform):
    """The race the chaos harness found: the order is paid, but inventory's sweep takes the units
    back before ORDER_PAID pins them (here inventory never hears ORDER_PAID, so the 1 s TTL
    always wins). A paid order without stock must not stay paid: it is cancelled and refunded."""
    shop = await Shop.open(make_platform, SHOP, reservation_ttl_s=1, reservation_sweep_interval_ms=100)
    shop.platform.node.bus.subscribe(ORDER_EVENTS, "inventory", lambda *delivery: None)
    lamp = await shop.product(stock=5)
    order, _, payment = await paid_order(shop, lamp, 2)

    cancelled = await until_status(shop, order["id"], "cancelled")
    assert cancelled["cancelReason"] == "reservation expired"

    async def refunded():
        return [p["status"] for p in await order_payments(shop.platform, order["id"])] == ["refunded"]

    await eventually(refunded)
    assert await shop.levels(lamp) == (5, 0, 5, 0)  # the units went back once, with the lapse
    await assert_payment_invariant(shop, order["id"])
