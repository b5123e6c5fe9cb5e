"""`Idempotency-Key` on POST /payments/me/orders/:orderId/charge, on a real platform.

Same key from the same user: the same answer (status and body) and one effect, even when the
requests race; the same key with another request: 422; a malformed key: 400.
"""

from __future__ import annotations

import asyncio
import zlib

from mc_testkit import eventually
from test_payment_routes import SHOP, order_payments, pending_order, product, shop

from microcommerce.services.payment import idempotency, providers


async def keyed_charge(platform, token: str, order_id: int, key: str, **body):
    return await platform.post(f"/payments/me/orders/{order_id}/charge", token=token, json=body or None,
                               headers={"Idempotency-Key": key})


async def test_the_same_key_gets_the_same_answer_and_charges_once(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)

    first = await keyed_charge(platform, token, order["id"], "order-1-attempt", paymentToken="tok_visa")
    assert first.status == 201, first
    again = await keyed_charge(platform, token, order["id"], "order-1-attempt", paymentToken="tok_visa")
    assert (again.status, again.body) == (201, first.body)  # not 409 "already paid": the same answer
    assert [p["id"] for p in await order_payments(platform, order["id"])] == [first.body["id"]]
    # Without the key (or with another) it is a new request, and the order is paid.
    assert (await keyed_charge(platform, token, order["id"], "order-1-attempt-2")).status == 409


async def test_racing_requests_with_one_key_get_one_answer(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)
    replies = await asyncio.gather(*(keyed_charge(platform, token, order["id"], "race", paymentToken="tok_visa")
                                     for _ in range(5)))
    assert {r.status for r in replies} == {201}, replies
    assert len({r.body["id"] for r in replies}) == 1
    assert [p["status"] for p in await order_payments(platform, order["id"])] == ["succeeded"]


async def test_a_declined_answer_is_kept_and_another_key_may_try_again(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)
    declined = await keyed_charge(platform, token, order["id"], "k-decline", paymentToken="tok_chargeDeclined")
    assert declined.status == 402 and declined.body["message"] == "Payment failed: the card was declined"
    again = await keyed_charge(platform, token, order["id"], "k-decline", paymentToken="tok_chargeDeclined")
    assert (again.status, again.body) == (402, declined.body)
    paid = await keyed_charge(platform, token, order["id"], "k-visa", paymentToken="tok_visa")
    assert paid.status == 201
    # The first key still answers what it answered, though the order is paid by now.
    replay = await keyed_charge(platform, token, order["id"], "k-decline", paymentToken="tok_chargeDeclined")
    assert (replay.status, replay.body) == (402, declined.body)
    assert [p["status"] for p in await order_payments(platform, order["id"])] == ["failed", "succeeded"]


async def test_the_same_key_with_another_request_is_422(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, admin = await shop(platform)
    other = await pending_order(platform, token, await product(platform, admin, 3.0))
    assert (await keyed_charge(platform, token, order["id"], "k", paymentToken="tok_visa",
                               metadata={"a": 1, "b": 2})).status == 201
    # Same meaning, other spelling: the same request.
    same = await platform.post(f"/payments/me/orders/{order['id']}/charge", token=token,
                               data='{ "metadata": {"b": 2, "a": 1}, "paymentToken": "tok_visa" }',
                               headers={"Idempotency-Key": "k", "Content-Type": "application/json"})
    assert same.status == 201, same
    for changed in ({"paymentToken": "tok_mastercard", "metadata": {"a": 1, "b": 2}},
                    {"paymentToken": "tok_visa", "metadata": {"a": 1}},
                    {"paymentToken": "tok_visa", "metadata": {"a": 1, "b": 2}, "provider": "paymob"}):
        reply = await keyed_charge(platform, token, order["id"], "k", **changed)
        assert reply.status == 422 and reply.body == {"message": idempotency.KEY_REUSED_MESSAGE}, (changed, reply)
    reply = await keyed_charge(platform, token, other["id"], "k", paymentToken="tok_visa", metadata={"a": 1, "b": 2})
    assert reply.status == 422
    assert await order_payments(platform, other["id"]) == []  # nothing was charged for it


async def test_keys_belong_to_their_user(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, admin = await shop(platform)
    _, other_token = await platform.new_user()
    other_order = await pending_order(platform, other_token, await product(platform, admin, 4.0))
    assert (await keyed_charge(platform, token, order["id"], "shared-key")).status == 201
    theirs = await keyed_charge(platform, other_token, other_order["id"], "shared-key")
    assert theirs.status == 201 and theirs.body["orderId"] == other_order["id"]


async def test_business_errors_are_answers_too(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)
    _, stranger = await platform.new_user()
    forbidden = await keyed_charge(platform, stranger, order["id"], "k403")
    assert forbidden.status == 403
    again = await keyed_charge(platform, stranger, order["id"], "k403")
    assert (again.status, again.body) == (403, forbidden.body)
    missing = await keyed_charge(platform, token, 999999, "k404")
    assert missing.status == 404 and (await keyed_charge(platform, token, 999999, "k404")).body == missing.body


async def test_a_malformed_key_is_400_and_charges_nothing(make_platform):
    platform = await make_platform(SHOP)
    _, token, order, _ = await shop(platform)
    path = f"/payments/me/orders/{order['id']}/charge"
    for key in ("x" * 256, "caf\u00e9".encode().decode("latin-1"), "a\tb"):
        reply = await platform.post(path, token=token, headers={"Idempotency-Key": key})
        assert reply.status == 400, (key, reply)
        assert reply.body == {"message": "Idempotency-Key must be 1 to 255 printable ASCII characters"}
    # An empty header is a malformed key too, not "no key".
    reply = await platform.post(path, token=token, headers={"Idempotency-Key": ""})
    assert reply.status == 400, reply
    assert await order_payments(platform, order["id"]) == []
    assert (await keyed_charge(platform, token, order["id"], "x" * 255)).status == 201


async def test_a_key_in_use_by_a_charge_under_way_is_not_answered_by_another_request(make_platform, monkeypatch):
    monkeypatch.setattr(providers, "SLOW_TOKEN_DELAY_S", 0.5)
    platform = await make_platform(SHOP)
    _, token, order, admin = await shop(platform)
    paid = await pending_order(platform, token, await product(platform, admin, 3.0))
    while _worker_of(paid["id"]) == _worker_of(order["id"]):  # the two must run side by side
        paid = await pending_order(platform, token, await product(platform, admin, 3.0))
    assert (await keyed_charge(platform, token, paid["id"], "other-key")).status == 201

    slow = asyncio.create_task(keyed_charge(platform, token, order["id"], "k", paymentToken="tok_visa_slow"))
    ledger = providers.ledger_for(platform.settings)
    await eventually(lambda: _charges(ledger, 2))  # the slow charge has claimed "k" and reached the provider
    # Another request under "k" (it would be a 409: that order is paid) must not become k's answer.
    reused = await keyed_charge(platform, token, paid["id"], "k", paymentToken="tok_visa_slow")
    assert reused.status == 422, reused
    first = await slow
    assert first.status == 201, first
    replay = await keyed_charge(platform, token, order["id"], "k", paymentToken="tok_visa_slow")
    assert (replay.status, replay.body) == (201, first.body)


def _worker_of(order_id: int, workers: int = 2) -> int:
    return zlib.crc32(str(order_id).encode()) % workers  # as the router picks a worker


async def _charges(ledger, count: int) -> bool:
    return len(ledger.charges()) == count
