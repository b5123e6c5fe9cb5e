"""Payment service on a real platform: charges against real orders, declines, refunds, cancellations.

Orders come from the real order service (catalog → cart → POST /orders/me); payment events are
watched by a real consumer group on the bus.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from mc_testkit import eventually

from microcommerce.actors import outbox
from microcommerce.contracts import payment as payment_events
from microcommerce.contracts.events import PAYMENT_EVENTS, new_event
from microcommerce.contracts.order import ORDER_CANCELLED, OrderData
from microcommerce.http.middlewares import INTERNAL_TOKEN_HEADER
from microcommerce.services.payment import SPEC as PAYMENT
from microcommerce.services.payment import store as payment_store
from microcommerce.storage import IntegrityError, migrate, open_database

SHOP = ["gateway", "user", "cart", "product", "inventory", "order", "payment"]
_names = itertools.count(1)


class PaymentSpy:
    """A real consumer group on the bus that records what the payment service published."""

    def __init__(self, platform) -> None:
        self.events = []
        platform.node.bus.subscribe(PAYMENT_EVENTS, "test-payment-spy", self._record)

    def _record(self, envelope, topic, key, done) -> None:
        self.events.append(envelope)

    def of(self, payment_id: int) -> list[str]:
        return [e.eventType for e in self.events if e.data.id == payment_id]


async def product(platform, admin: str, price: float, stock: int = 10) -> int:
    category = await platform.post("/categories", token=admin, json={"name": f"Category {next(_names)}"})
    assert category.status == 201, category
    created = await platform.post("/products", token=admin, json={
        "categoryId": category.body["id"], "name": f"Product {next(_names)}", "price": price,
        "stockQuantity": stock})
    assert created.status == 201, created
    product_id = created.body["id"]

    async def stocked():
        reply = await platform.get(f"/inventory/{product_id}")
        return reply.status == 200 and reply.body["availableQuantity"] == stock

    await eventually(stocked)
    return product_id


async def pending_order(platform, token: str, product_id: int, quantity: int = 2) -> dict:
    added = await platform.post("/carts/me/items", token=token, json={"productId": product_id, "quantity": quantity})
    assert added.status == 201, added
    order = await platform.post("/orders/me", token=token, json={"productId": product_id})
    assert order.status == 201, order
    assert order.body["status"] == "pending"
    return order.body


async def shop(platform, price: float = 12.5, quantity: int = 2) -> tuple[dict, str, dict, str]:
    """A user with a pending order: (user, token, order, admin token)."""
    admin = await platform.admin_token()
    user, token = await platform.new_user()
    order = await pending_order(platform, token, await product(platform, admin, price), quantity)
    return user, token, order, admin


async def charge(platform, token: str, order_id: int, **body):
    return await platform.post(f"/payments/me/orders/{order_id}/charge", token=token, json=body or None)


async def order_status(platform, token: str, order_id: int) -> str:
    reply = await platform.get(f"/orders/{order_id}", token=token)
    assert reply.status == 200, reply
    return reply.body["status"]


async def order_payments(platform, order_id: int) -> list[dict]:
    reply = await platform.get(f"/internal/orders/{order_id}/payments", service="payment",
                               headers={INTERNAL_TOKEN_HEADER: platform.settings.internal_token})
    assert reply.status == 200, reply
    return reply.body["payments"]


async def test_a_visa_charge_pays_the_order_with_the_orders_amount(make_platform):
    platform = await make_platform(SHOP)
    spy = PaymentSpy(platform)
    user, token, order, admin = await shop(platform, price=12.5, quantity=2)

    reply = await charge(platform, token, order["id"], paymentToken="tok_visa", amount=0.01,
                         paymentMethod="card", metadata={"note": "gift"})
    assert reply.status == 201, reply
    payment = reply.body
    assert payment["orderId"] == order["id"] and payment["userId"] == user["id"]
    assert payment["provider"] == "stripe" and payment["providerPaymentId"].startswith("ch_")
    assert payment["status"] == "succeeded" and payment["failureReason"] is None
    assert payment["amount"] == 25.0 == order["totalAmount"]
    assert payment["currency"] == "USD"
    assert payment["paymentMethod"] == "card" and payment["metadata"] == {"note": "gift"}
    assert payment["createdAt"].endswith("Z")

    async def paid():
        return await order_status(platform, token, order["id"]) == "paid"

    await eventually(paid)
    await eventually(lambda: _events(spy, payment["id"], ["PAYMENT_CREATED", "PAYMENT_SUCCEEDED"]))

    # Reading it back: owner, admin, and the lists.
    assert (await platform.get(f"/payments/{payment['id']}", token=token)).body == payment
    assert (await platform.get(f"/payments/{payment['id']}", token=admin)).body == payment
    _, stranger = await platform.new_user()
    assert (await platform.get(f"/payments/{payment['id']}", token=stranger)).status == 403
    mine = await platform.get("/payments/me", token=token)
    assert mine.status == 200 and mine.body["payments"] == [payment]
    assert await order_payments(platform, order["id"]) == [payment]


async def _events(spy, payment_id, expected):
    return spy.of(payment_id) == expected


async def test_a_declined_charge_takes_no_money_and_the_order_stays_pending(make_platform):
    platform = await make_platform(SHOP)
    spy = PaymentSpy(platform)
    _, token, order, _ = await shop(platform)

    declined = await charge(platform, token, order["id"], paymentToken="tok_chargeDeclined")
    assert declined.status == 402, declined
    assert declined.body["status"] == "failed" and declined.body["failureReason"] == "card_declined"
    assert declined.body["message"] == "Payment failed: the card was declined"
    assert declined.body["amount"] == order["totalAmount"]
    assert await order_status(platform, token, order["id"]) == "pending"

    poor = await charge(platform, token, order["id"], paymentToken="tok_insufficientFunds")
    assert (poor.status, poor.body["failureReason"]) == (402, "insufficient_funds")
    bogus = await charge(platform, token, order["id"], paymentToken="tok_madeUp")
    assert (bogus.status, bogus.body["failureReason"]) == (402, "invalid_token")
    paymob = await charge(platform, token, order["id"], provider="paymob", paymentToken="paymob_declined")
    assert (paymob.status, paymob.body["failureReason"]) == (402, "declined")
    assert paymob.body["providerPaymentId"].startswith("pm_")

    # A retry with a good card goes through; once its success is out, every earlier event is too.
    retry = await charge(platform, token, order["id"], provider="paymob")
    assert retry.status == 201 and retry.body["status"] == "succeeded"
    await eventually(lambda: _events(spy, retry.body["id"], ["PAYMENT_CREATED", "PAYMENT_SUCCEEDED"]))
    for failed in (declined, poor, bogus, paymob):
        assert spy.of(failed.body["id"]) == ["PAYMENT_CREATED", "PAYMENT_FAILED"]
    statuses = [p["status"] for p in await order_payments(platform, order["id"])]
    assert statuses == ["failed", "failed", "failed", "failed", "succeeded"]


async def test_a_paid_order_is_never_charged_twice(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)

    # Two charges at once: one worker owns the order, so exactly one wins.
    first, second = await asyncio.gather(charge(platform, token, order["id"]),
                                         charge(platform, token, order["id"]))
    assert sorted([first.status, second.status]) == [201, 409], (first, second)
    again = await charge(platform, token, order["id"], paymentToken="tok_visa")
    assert again.status == 409 and again.body["message"] == "Order is already paid"
    payments = await order_payments(platform, order["id"])
    assert [p["status"] for p in payments] == ["succeeded"]


async def test_cancelling_a_paid_order_refunds_it_and_blocks_new_charges(make_platform):
    platform = await make_platform(SHOP)
    spy = PaymentSpy(platform)
    _, token, order, admin = await shop(platform)
    payment = (await charge(platform, token, order["id"])).body
    assert payment["status"] == "succeeded"

    cancelled = await platform.request("PATCH", f"/orders/{order['id']}/status", token=admin,
                                       json={"status": "cancelled"})
    assert cancelled.status == 200, cancelled

    async def refunded():
        reply = await platform.get(f"/payments/{payment['id']}", token=token)
        return reply.body if reply.body["status"] == "refunded" else None

    body = await eventually(refunded)
    assert body["refundReason"] == "order_cancelled" and body["refundedAt"] is not None
    await eventually(lambda: _events(spy, payment["id"],
                                     ["PAYMENT_CREATED", "PAYMENT_SUCCEEDED", "PAYMENT_REFUNDED"]))
    again = await charge(platform, token, order["id"])
    assert again.status == 409, again


async def test_order_cancelled_delivered_twice_refunds_once(make_platform):
    platform = await make_platform(SHOP)
    spy = PaymentSpy(platform)
    user, token, order, _ = await shop(platform)
    payment = (await charge(platform, token, order["id"])).body

    data = OrderData(id=order["id"], userId=user["id"], status="cancelled", totalAmount=order["totalAmount"],
                     items=[], previousStatus="paid")
    envelope = new_event(ORDER_CANCELLED, "test-producer", data)
    await platform.deliver("payment", envelope, order["id"], times=2)
    db = platform.system("payment").open_database()
    await db.connect()
    try:
        await eventually(lambda: _drained(db))  # whatever the deliveries emitted is now published
    finally:
        await db.close()

    assert spy.of(payment["id"]).count(payment_events.PAYMENT_REFUNDED) == 1
    assert [p["status"] for p in await order_payments(platform, order["id"])] == ["refunded"]
    again = await charge(platform, token, order["id"])
    assert again.status == 409, again


async def test_a_cancellation_seen_before_the_order_service_shows_it_blocks_the_charge(make_platform):
    platform = await make_platform(SHOP)
    user, token, order, _ = await shop(platform)
    data = OrderData(id=order["id"], userId=user["id"], status="cancelled", totalAmount=order["totalAmount"],
                     items=[], previousStatus="pending")
    await platform.deliver("payment", new_event(ORDER_CANCELLED, "test-producer", data), order["id"], times=1)
    assert await order_status(platform, token, order["id"]) == "pending"  # the order service lags
    reply = await charge(platform, token, order["id"])
    assert reply.status == 409 and reply.body["message"] == "Order is cancelled; it can no longer be charged"
    assert await order_payments(platform, order["id"]) == []


async def _drained(db) -> bool:
    return await outbox.count_pending(db) == 0


async def test_admin_refunds(make_platform):
    platform = await make_platform(SHOP)
    spy = PaymentSpy(platform)
    _, token, order, admin = await shop(platform)
    declined = (await charge(platform, token, order["id"], paymentToken="tok_chargeDeclined")).body
    payment = (await charge(platform, token, order["id"])).body
    path = f"/payments/{payment['id']}/refund"

    assert (await platform.post(path, token=token)).status == 403
    assert (await platform.post(path)).status == 401
    reply = await platform.post(path, token=admin, json={"reason": "customer asked"})
    assert reply.status == 200, reply
    assert reply.body["status"] == "refunded" and reply.body["refundReason"] == "customer asked"
    await eventually(lambda: _events(spy, payment["id"],
                                     ["PAYMENT_CREATED", "PAYMENT_SUCCEEDED", "PAYMENT_REFUNDED"]))

    again = await platform.post(path, token=admin)
    assert again.status == 409 and again.body["message"] == "Payment is refunded; only a succeeded payment can be refunded"
    failed = await platform.post(f"/payments/{declined['id']}/refund", token=admin)
    assert failed.status == 409
    assert (await platform.post("/payments/999999/refund", token=admin)).status == 404
    assert (await platform.post("/payments/abc/refund", token=admin)).status == 400
    bad = await platform.post(path, token=admin, data="{oops", headers={"Content-Type": "application/json"})
    assert bad.status == 400


async def test_charge_errors(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, admin = await shop(platform)
    _, stranger = await platform.new_user()
    path = f"/payments/me/orders/{order['id']}/charge"

    assert (await charge(platform, token, 999999)).status == 404
    reply = await charge(platform, stranger, order["id"])
    assert reply.status == 403 and reply.body["message"] == "This order belongs to another user"
    assert (await charge(platform, admin, order["id"])).status == 403  # role user only
    assert (await platform.post(path)).status == 401
    unknown = await charge(platform, token, order["id"], provider="paypal")
    assert unknown.status == 400 and unknown.body["message"] == "provider must be one of stripe, paymob"
    for body in ('{"paymentToken": 5}', '{"metadata": "note"}', '{"provider": ["stripe"]}', "{oops", "[]"):
        reply = await platform.post(path, token=token, data=body, headers={"Content-Type": "application/json"})
        assert reply.status == 400 and "message" in reply.body, (body, reply)
    assert (await charge(platform, token, "abc")).status == 400

    # An order cancelled before payment cannot be charged.
    cancelled = await platform.request("PATCH", f"/orders/{order['id']}/cancel", token=token)
    assert cancelled.status == 200, cancelled
    reply = await charge(platform, token, order["id"])
    assert reply.status == 409, reply
    assert await order_payments(platform, order["id"]) == []


async def test_reading_payments_needs_the_owner_or_an_admin(make_platform):
    platform = await make_platform(["gateway", "user", "payment"])
    _, token = await platform.new_user()
    assert (await platform.get("/payments/me", token=token)).body["payments"] == []
    assert (await platform.get("/payments/me")).status == 401
    assert (await platform.get("/payments/999", token=token)).status == 404
    assert (await platform.get("/payments/0", token=token)).status == 400
    # Internal routes: refused from outside the gateway, and without the service token.
    assert (await platform.get("/internal/orders/1/payments")).status in (403, 404)  # gateway's answer
    assert (await platform.get("/internal/orders/1/payments", service="payment")).status == 403
    assert await order_payments(platform, 1) == []
    # Without an order service to ask, a charge is a clear 503, not a hang.
    reply = await charge(platform, token, 1)
    assert reply.status == 503 and "message" in reply.body


async def test_payment_guards_hold_on_mariadb(mysql_db_url):
    """The SQL guards behind 'never charged twice' and 'charge vs cancel' on the production dialect."""
    db = open_database(mysql_db_url)
    await db.connect()
    try:
        await migrate(db, PAYMENT.schema_dir)
        async with db.transaction() as tx:
            assert await payment_store.lock_order(tx, 5) is False  # first touch inserts the guard row
            await payment_store.mark_cancelled(tx, 5)
        async with db.transaction() as tx:
            assert await payment_store.lock_order(tx, 5) is True  # later touches update it

        def new(status: str = "pending") -> payment_store.NewPayment:
            return payment_store.NewPayment(order_id=9, user_id=1, provider="stripe", provider_payment_id="ch_1",
                                            payment_method=None, status=status, amount_cents=2550, currency="USD",
                                            failure_reason=None, metadata={"note": "50% off"})

        async with db.transaction() as tx:
            first = await payment_store.insert(tx, new())
            await payment_store.mark_succeeded(tx, first, 9)
        with pytest.raises(IntegrityError):
            async with db.transaction() as tx:
                second = await payment_store.insert(tx, new())
                await payment_store.mark_succeeded(tx, second, 9)
        assert [row["id"] for row in await payment_store.for_order(db, 9)] == [first]  # rolled back

        async with db.transaction() as tx:
            assert await payment_store.mark_refunded(tx, first, "order_cancelled") is True
            assert await payment_store.mark_refunded(tx, first, "order_cancelled") is False
        assert await payment_store.has_succeeded(db, 9)  # a refunded order stays un-chargeable
        view = payment_store.to_view(await payment_store.by_id(db, first))
        assert (view.status, view.amount, view.metadata) == ("refunded", 25.5, {"note": "50% off"})
    finally:
        await db.close()
