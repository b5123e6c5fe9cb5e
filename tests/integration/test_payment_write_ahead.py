"""A charge is written ahead and reconciled with the providers' books, on a real platform.

The state a crash leaves (a pending payment whose key the provider has or has not booked) is
made with the service's own store and provider, then the real reconciliation settles it. The
real crash — `kill -9` of `microcommerce dev` while the provider answers — is in test_payment_crash.py.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from mc_testkit import eventually
from test_payment_routes import SHOP, PaymentSpy, charge, order_payments, order_status, shop

from microcommerce.contracts.events import iso_from_epoch
from microcommerce.contracts.money import to_cents
from microcommerce.http.middlewares import INTERNAL_TOKEN_HEADER
from microcommerce.services.payment import SPEC as PAYMENT
from microcommerce.services.payment import books, domain, providers, store
from microcommerce.services.payment.providers import mock_providers
from microcommerce.storage import IntegrityError, migrate, open_database

QUIET = {"payment_reconcile_interval_ms": 600_000}  # the tests reconcile when they choose to


class PaymentDb:
    """The payment service's own database, opened beside its workers."""

    def __init__(self, platform) -> None:
        self.db = platform.system("payment").open_database()

    async def __aenter__(self):
        await self.db.connect()
        return self.db

    async def __aexit__(self, *exc) -> None:
        await self.db.close()


async def written_ahead(platform, user: dict, order: dict, *, age_s: float = 0.0) -> dict:
    """A pending attempt, exactly as step 1 of a charge commits it."""
    payment = store.NewPayment(order_id=order["id"], user_id=user["id"], provider="stripe", provider_payment_id=None,
                               payment_method=None, status="pending", amount_cents=to_cents(order["totalAmount"]),
                               currency=order["currency"], failure_reason=None, metadata=None,
                               idempotency_key=domain.new_attempt_key())
    async with PaymentDb(platform) as db:
        async with db.transaction() as tx:
            payment_id = await store.insert(tx, payment)
            if age_s:
                await tx.execute("UPDATE payments SET created_at = ? WHERE id = ?",
                                 iso_from_epoch(time.time() - age_s), payment_id)
        return await store.by_id(db, payment_id)


def provider_of(platform):
    return mock_providers(providers.ledger_for(platform.settings))["stripe"]


async def reconcile(platform) -> dict:
    reply = await platform.post("/internal/payments/reconcile", service="payment",
                                headers={INTERNAL_TOKEN_HEADER: platform.settings.internal_token})
    assert reply.status == 200, reply
    return reply.body


async def audit(platform) -> list[str]:
    ledger = providers.ledger_for(platform.settings)
    async with PaymentDb(platform) as db:
        return books.disagreements(ledger.charges(), ledger.refunds(), await store.booked(db))


async def test_the_attempt_is_committed_before_the_provider_answers(make_platform, monkeypatch):
    monkeypatch.setattr(providers, "SLOW_TOKEN_DELAY_S", 0.5)
    platform = await make_platform(SHOP, **QUIET)
    _, token, order, _ = await shop(platform)
    ledger = providers.ledger_for(platform.settings)

    charging = asyncio.create_task(charge(platform, token, order["id"], paymentToken="tok_visa_slow"))
    booked = await eventually(lambda: _first_charge(ledger))  # the provider has taken the money...
    async with PaymentDb(platform) as db:
        rows = await store.for_order(db, order["id"])
    # ...and the payment service already holds the attempt under the key the provider got.
    assert [(r["status"], r["idempotency_key"]) for r in rows] == [("pending", booked.idempotencyKey)]
    assert await audit(platform) == [f"stripe charge {booked.chargeId} (key {booked.idempotencyKey}): "
                                     f"payment {rows[0]['id']} is still pending"]

    reply = await charging
    assert reply.status == 201 and reply.body["providerPaymentId"] == booked.chargeId
    assert await audit(platform) == []


async def _first_charge(ledger):
    charges = ledger.charges()
    return charges[0] if charges else None


async def test_a_charge_the_provider_booked_is_recorded_and_pays_the_order(make_platform):
    platform = await make_platform(SHOP, **QUIET)
    spy = PaymentSpy(platform)
    user, token, order, _ = await shop(platform)
    attempt = await written_ahead(platform, user, order)
    booked = await provider_of(platform).charge(attempt["idempotency_key"], attempt["amount_cents"], "USD", "tok_visa")

    assert await reconcile(platform) == {"settled": 1, "inFlight": 0}
    [payment] = await order_payments(platform, order["id"])
    assert (payment["status"], payment["providerPaymentId"]) == ("succeeded", booked.provider_payment_id)
    assert await order_status(platform, token, order["id"]) == "paid"
    await eventually(lambda: _events(spy, payment["id"], ["PAYMENT_SUCCEEDED"]))
    assert await reconcile(platform) == {"settled": 0, "inFlight": 0}
    assert (await charge(platform, token, order["id"])).status == 409  # paid: never charged twice
    assert len(providers.ledger_for(platform.settings).charges()) == 1
    assert await audit(platform) == []


async def test_a_new_charge_first_settles_what_an_earlier_attempt_did(make_platform):
    platform = await make_platform(SHOP, **QUIET)
    user, token, order, _ = await shop(platform)
    attempt = await written_ahead(platform, user, order)
    await provider_of(platform).charge(attempt["idempotency_key"], attempt["amount_cents"], "USD", "tok_visa")

    again = await charge(platform, token, order["id"], paymentToken="tok_visa")
    assert again.status == 409 and again.body["message"] == "Order is already paid"
    assert [p["status"] for p in await order_payments(platform, order["id"])] == ["succeeded"]
    assert await order_status(platform, token, order["id"]) == "paid"
    assert len(providers.ledger_for(platform.settings).charges()) == 1
    assert await audit(platform) == []


async def test_an_attempt_that_never_reached_the_provider(make_platform):
    platform = await make_platform(SHOP, **QUIET)
    spy = PaymentSpy(platform)
    user, token, order, _ = await shop(platform)

    # Young: some worker may still be sending it; nobody may charge the order meanwhile.
    young = await written_ahead(platform, user, order)
    assert await reconcile(platform) == {"settled": 0, "inFlight": 1}
    busy = await charge(platform, token, order["id"])
    assert busy.status == 409 and busy.body["message"] == "A charge of this order is in progress; retry shortly"
    async with PaymentDb(platform) as db:
        await db.execute("UPDATE payments SET created_at = ? WHERE id = ?",
                         iso_from_epoch(time.time() - 60), young["id"])

    # Old: it never reached the provider and never will: failed, and the order may be paid.
    assert await reconcile(platform) == {"settled": 1, "inFlight": 0}
    [failed] = await order_payments(platform, order["id"])
    assert (failed["status"], failed["failureReason"], failed["providerPaymentId"]) == ("failed", "interrupted", None)
    await eventually(lambda: _events(spy, young["id"], ["PAYMENT_FAILED"]))
    assert (await charge(platform, token, order["id"])).status == 201
    assert await audit(platform) == []


async def test_a_booked_charge_of_an_order_cancelled_meanwhile_is_refunded(make_platform):
    platform = await make_platform(SHOP, **QUIET)
    spy = PaymentSpy(platform)
    user, token, order, _ = await shop(platform)
    attempt = await written_ahead(platform, user, order)
    booked = await provider_of(platform).charge(attempt["idempotency_key"], attempt["amount_cents"], "USD", None)
    assert (await platform.request("PATCH", f"/orders/{order['id']}/cancel", token=token)).status == 200
    async with PaymentDb(platform) as db:
        await eventually(lambda: store.is_cancelled(db, order["id"]))

    assert await reconcile(platform) == {"settled": 1, "inFlight": 0}
    [payment] = await order_payments(platform, order["id"])
    assert (payment["status"], payment["refundReason"]) == ("refunded", "order_cancelled")
    await eventually(lambda: _events(spy, payment["id"], ["PAYMENT_SUCCEEDED", "PAYMENT_REFUNDED"]))
    assert [r.chargeId for r in providers.ledger_for(platform.settings).refunds()] == [booked.provider_payment_id]
    assert await audit(platform) == []


async def test_the_books_agree_with_the_records_after_a_busy_run(make_platform):
    platform = await make_platform(SHOP, **QUIET)
    runs = [await shop(platform) for _ in range(4)]
    admin = runs[0][3]
    for i, (_, token, order, _) in enumerate(runs):
        await charge(platform, token, order["id"], paymentToken="tok_chargeDeclined")
        replies = await asyncio.gather(*(charge(platform, token, order["id"], provider=p)
                                         for p in ("stripe", "paymob", "stripe")))
        assert sorted(r.status for r in replies) == [201, 409, 409], replies
        paid = next(r.body for r in replies if r.status == 201)
        if i == 1:  # an admin refund
            assert (await platform.post(f"/payments/{paid['id']}/refund", token=admin)).status == 200
        if i == 2:  # a cancelled paid order is refunded through ORDER_CANCELLED
            cancelled = await platform.request("PATCH", f"/orders/{order['id']}/status", token=admin,
                                               json={"status": "cancelled"})
            assert cancelled.status == 200
            await eventually(lambda order=order: _refunded(platform, order["id"]))
    ledger = providers.ledger_for(platform.settings)
    assert len(ledger.charges()) == 8 and len(ledger.refunds()) == 2
    assert await audit(platform) == []

    # The audit can fail: money the provider holds without a record is named.
    stray = await provider_of(platform).charge("pay_stray", 100, "USD", None)
    assert await audit(platform) == [f"stripe charge {stray.provider_payment_id} (key pay_stray) has no payment record"]


async def _refunded(platform, order_id: int) -> bool:
    return [p["status"] for p in await order_payments(platform, order_id)][-1] == "refunded"


async def _events(spy, payment_id, expected):
    seen = [name for name in spy.of(payment_id) if name != "PAYMENT_CREATED"]
    return seen == expected


async def test_write_ahead_and_key_claims_hold_on_mariadb(mysql_db_url):
    """Conditional settling and one claim per (user, key), on the production dialect."""
    db = open_database(mysql_db_url)
    await db.connect()
    try:
        await migrate(db, PAYMENT.schema_dir)
        attempt = store.NewPayment(order_id=3, user_id=1, provider="stripe", provider_payment_id=None,
                                   payment_method=None, status="pending", amount_cents=500, currency="USD",
                                   failure_reason=None, metadata=None, idempotency_key="pay_a")
        async with db.transaction() as tx:
            first = await store.insert(tx, attempt)
            second = await store.insert(tx, msgspec.structs.replace(attempt, idempotency_key="pay_b"))
        with pytest.raises(IntegrityError):  # a provider key names one attempt
            await store.insert(db, attempt)
        assert [r["idempotency_key"] for r in await store.pending(db, 10)] == ["pay_a", "pay_b"]
        async with db.transaction() as tx:
            assert await store.mark_succeeded(tx, first, 3, "ch_1") is True
            assert await store.mark_succeeded(tx, first, 3, "ch_1") is False  # settled once
            assert await store.mark_failed(tx, first, "declined") is False
            assert await store.mark_duplicate(tx, second, "ch_2") is True
        rows = {r["id"]: r for r in await store.for_order(db, 3)}
        assert (rows[first]["status"], rows[first]["provider_payment_id"]) == ("succeeded", "ch_1")
        assert (rows[second]["status"], rows[second]["refund_reason"]) == ("refunded", "duplicate_charge")

        keyed = store.KeyedRequest(user_id=1, key_hash="a" * 64, fingerprint="f" * 64, order_id=3)
        async with db.transaction() as tx:
            await store.claim_key(tx, keyed, first)
        with pytest.raises(IntegrityError):
            async with db.transaction() as tx:
                await store.claim_key(tx, keyed, second)
        stranger = msgspec.structs.replace(keyed, fingerprint="0" * 64, order_id=4)  # same key, other request
        assert await store.save_answer(db, stranger, 409, '{"message": "not yours"}') is False
        assert await store.save_answer(db, keyed, 201, '{"id": 1}') is True
        assert await store.save_answer(db, keyed, 409, '{"message": "later"}') is False  # the first answer stays
        prior = await store.keyed_request(db, 1, "a" * 64)
        assert (prior["payment_id"], prior["status_code"], prior["response"]) == (first, 201, '{"id": 1}')
    finally:
        await db.close()
