"""Idempotency-Key on order creation and checkout, and the bound on what one user may hold
(issue item 14), on a real platform through the gateway; the key's bookkeeping after lost
attempts on real SQLite and MariaDB databases.
"""

from __future__ import annotations

import asyncio

import pytest
from test_order_routes import Shop

from microcommerce.config import load_settings
from microcommerce.errors import Conflict, ServiceUnavailable, UnprocessableEntity
from microcommerce.http.idempotency import IdempotencyKey
from microcommerce.services.order import SPEC as ORDER
from microcommerce.services.order import idempotency, store
from microcommerce.services.order.messages import OrderView
from microcommerce.storage import migrate, open_database


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def order(shop: Shop, token: str, body: dict, key: str):
    return await shop.platform.post("/orders/me", json=body, token=token, headers=keyed(key))


async def checkout(shop: Shop, token: str, key: str):
    return await shop.platform.post("/orders/me/checkout", token=token, headers=keyed(key))


async def test_the_same_key_twice_gives_the_same_answer_and_one_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))

    first = await order(shop, token, {"productId": lamp}, "order-1")
    again = await order(shop, token, {"productId": lamp}, "order-1")
    assert first.status == again.status == 201, (first, again)
    assert again.body == first.body
    assert len(await shop.my_orders(token)) == 1
    assert await shop.levels(lamp) == (10, 2, 8, 0)

    other = await order(shop, token, {"productId": lamp}, "order-2")
    assert other.status == 201 and other.body["id"] != first.body["id"]
    assert len(await shop.my_orders(token)) == 2
    assert await shop.levels(lamp) == (10, 4, 6, 0)


async def test_ten_concurrent_requests_with_one_key_make_one_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp, desk = await shop.product(stock=10), await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1), (desk, 2))

    orders = await asyncio.gather(*(order(shop, token, {"productId": lamp}, "race") for _ in range(10)))
    assert {reply.status for reply in orders} == {201}, orders
    assert len({reply.body["id"] for reply in orders}) == 1 and all(r.body == orders[0].body for r in orders)

    checkouts = await asyncio.gather(*(checkout(shop, token, "race-checkout") for _ in range(10)))
    assert {reply.status for reply in checkouts} == {201}, checkouts
    assert len({reply.body["id"] for reply in checkouts}) == 1

    assert len(await shop.my_orders(token)) == 2
    assert await shop.levels(lamp) == (10, 2, 8, 0)  # one unit for the order, one for the checkout
    assert await shop.levels(desk) == (10, 2, 8, 0)


async def test_a_key_reused_for_another_request_is_422(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 3))
    assert (await order(shop, token, {"productId": lamp, "quantity": 1}, "k")).status == 201

    other_body = await order(shop, token, {"productId": lamp, "quantity": 2}, "k")
    assert other_body.status == 422 and "different request" in other_body.body["message"], other_body
    other_route = await checkout(shop, token, "k")
    assert other_route.status == 422, other_route
    # Same request, keys in another order and other spacing: the same request.
    same = await shop.platform.post("/orders/me", token=token,
                                    headers={**keyed("k"), "Content-Type": "application/json"},
                                    data=f'{{ "quantity": 1,  "productId": {lamp} }}')
    assert same.status == 201, same
    # Keys belong to a user: another user's "k" is theirs alone.
    _, stranger = await shop.customer((lamp, 1))
    assert (await order(shop, stranger, {"productId": lamp}, "k")).status == 201
    assert await shop.levels(lamp) == (10, 2, 8, 0)


async def test_malformed_keys_are_400(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1))
    for bad in ("", "x" * 256, "tab\there"):
        reply = await order(shop, token, {"productId": lamp}, bad)
        assert reply.status == 400 and "Idempotency-Key" in reply.body["message"], (bad, reply)
    assert (await order(shop, token, {"productId": lamp}, "x" * 255)).status == 201
    assert await shop.levels(lamp) == (10, 1, 9, 0)


async def test_a_refusal_is_replayed_too_until_a_new_key(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=1)
    _, token = await shop.customer((lamp, 2))

    short = await order(shop, token, {"productId": lamp}, "first-try")
    assert short.status == 409, short
    put = await shop.platform.request("PUT", f"/inventory/{lamp}/stock", token=shop.admin, json={"totalQuantity": 5})
    assert put.status == 200
    replayed = await order(shop, token, {"productId": lamp}, "first-try")
    assert (replayed.status, replayed.body) == (409, short.body)
    assert (await order(shop, token, {"productId": lamp}, "second-try")).status == 201


async def test_one_user_holds_a_bounded_number_of_unpaid_orders_and_units(make_platform):
    shop = await Shop.open(make_platform, max_pending_orders_per_user=2, max_order_line_quantity=5)
    lamp = await shop.product(stock=100)
    _, token = await shop.customer((lamp, 6))

    too_many_units = await shop.order(token, lamp)
    assert too_many_units.status == 409 and "At most 5 units" in too_many_units.body["message"], too_many_units
    first = await shop.placed(token, lamp, 1)
    await shop.placed(token, lamp, 1)
    third = await shop.order(token, lamp, 1)
    assert third.status == 409 and "2 unpaid orders" in third.body["message"], third
    assert await shop.levels(lamp) == (100, 2, 98, 0)

    assert (await shop.cancel(first["id"], token)).status == 200
    assert (await shop.order(token, lamp, 1)).status == 201
    # A paid order no longer counts.
    paid = (await shop.my_orders(token))[0]
    assert (await shop.set_status(paid["id"], "paid")).status == 200
    assert (await shop.order(token, lamp, 1)).status == 201


# -- the key's bookkeeping when an attempt is lost (real databases, no platform) -------------------
def view(order_id: int) -> OrderView:
    return OrderView(id=order_id, userId=1, status="pending", items=[], totalQuantity=0, totalAmount=0.0,
                     currency="USD", paymentId=None, cancelReason=None, createdAt="t", updatedAt="t")


class Attempts:
    """What `once` asks of the order actor: place an order (recording it with the key), recover one."""

    def __init__(self, db, fail_with: BaseException | None = None) -> None:
        self.db = db
        self.fail_with = fail_with
        self.placed: list[int] = []
        self.recovered: list[int] = []

    async def work(self, key_id: int) -> OrderView:
        order_id = 100 + len(self.placed)
        self.placed.append(order_id)
        async with self.db.transaction() as tx:
            await store.attach_order(tx, key_id, order_id)
        if self.fail_with is not None:
            raise self.fail_with
        return view(order_id)

    async def recover(self, order_id: int) -> OrderView | None:
        self.recovered.append(order_id)
        return view(order_id)


@pytest.fixture(params=["sqlite", "mariadb"])
async def order_db(request):
    url = "sqlite://memory/idempotency-test" if request.param == "sqlite" else request.getfixturevalue("mysql_db_url")
    db = open_database(url)
    await db.connect()
    await migrate(db, ORDER.schema_dir)
    yield db
    await db.close()


SETTINGS = load_settings({"timeouts_ms": {"cart": 100, "inventory": 100}}, env={})
KEY = IdempotencyKey(key="k", fingerprint="f" * 64)


async def test_a_lost_attempt_is_taken_over_and_its_order_found(order_db):
    lost = Attempts(order_db, fail_with=RuntimeError("crash after the order was placed"))
    with pytest.raises(RuntimeError):
        await idempotency.once(order_db, SETTINGS, 1, KEY, lost.work, lost.recover)
    retry = Attempts(order_db)
    assert (await idempotency.once(order_db, SETTINGS, 1, KEY, retry.work, retry.recover)).id == 100
    assert (retry.placed, retry.recovered) == ([], [100])  # found, not placed again
    assert (await idempotency.once(order_db, SETTINGS, 1, KEY, retry.work, retry.recover)).id == 100
    assert retry.recovered == [100]  # answered from the stored reply now


async def test_a_5xx_is_not_stored_a_4xx_is(order_db):
    outage = Attempts(order_db, fail_with=ServiceUnavailable("inventory is down"))
    with pytest.raises(ServiceUnavailable):
        await idempotency.once(order_db, SETTINGS, 1, KEY, outage.work, outage.recover)
    refused = Attempts(order_db, fail_with=Conflict("Insufficient stock"))
    refused.recover = _nothing  # the lost attempt's order did not go through: place it again
    with pytest.raises(Conflict):
        await idempotency.once(order_db, SETTINGS, 1, KEY, refused.work, refused.recover)
    later = Attempts(order_db)
    with pytest.raises(Conflict, match="Insufficient stock"):
        await idempotency.once(order_db, SETTINGS, 1, KEY, later.work, later.recover)
    assert later.placed == []
    with pytest.raises(UnprocessableEntity):
        await idempotency.once(order_db, SETTINGS, 1, IdempotencyKey(key="k", fingerprint="0" * 64),
                               later.work, later.recover)


async def test_a_key_running_elsewhere_is_waited_for_then_409_and_a_stale_one_taken_over(order_db, monkeypatch):
    monkeypatch.setattr(idempotency, "WAIT_FOR_RUNNING_S", 0.2)
    async with order_db.transaction() as tx:
        assert await store.claim_key(tx, 1, "k", KEY.fingerprint)  # another process is working on it
    waiting = Attempts(order_db)
    with pytest.raises(Conflict, match="still in progress"):
        await idempotency.once(order_db, SETTINGS, 1, KEY, waiting.work, waiting.recover)
    assert waiting.placed == []

    async with order_db.transaction() as tx:  # that process died long ago
        await tx.execute("UPDATE idempotency_keys SET updated_at = ? WHERE idem_key = ?",
                         "2000-01-01T00:00:00.000Z", "k")
    assert (await idempotency.once(order_db, SETTINGS, 1, KEY, waiting.work, waiting.recover)).id == 100
    assert waiting.placed == [100]


async def _nothing(order_id: int) -> None:
    return None
