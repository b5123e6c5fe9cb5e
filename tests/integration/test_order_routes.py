"""Order routes on a real platform: catalog → cart → order, through the gateway.

`Shop` (also used by test_order_saga.py) drives the platform as an admin and customers would.
"""

from __future__ import annotations

import itertools

from mc_testkit import eventually

from microcommerce.contracts.events import ORDER_EVENTS
from microcommerce.contracts.order import GetOrderSummary, OrderSummary
from microcommerce.http.middlewares import INTERNAL_TOKEN_HEADER

SHOP = ["gateway", "user", "cart", "product", "inventory", "order"]
_names = itertools.count(1)


class OrderSpy:
    """A real consumer group on the bus that records the order service's events."""

    def __init__(self, platform) -> None:
        self.events = []
        platform.node.bus.subscribe(ORDER_EVENTS, "test-order-spy", self._record)

    def _record(self, envelope, topic, key, done) -> None:
        self.events.append(envelope)

    def of(self, order_id: int, event_type: str | None = None) -> list:
        return [e for e in self.events
                if e.data.id == order_id and (event_type is None or e.eventType == event_type)]


class Shop:
    def __init__(self, platform, admin: str) -> None:
        self.platform = platform
        self.admin = admin
        self.category_id: int | None = None

    @classmethod
    async def open(cls, make_platform, services: list[str] = SHOP, **overrides) -> Shop:
        platform = await make_platform(services, **overrides)
        return cls(platform, await platform.admin_token())

    async def product(self, stock: int, price: float = 10.0) -> int:
        """A catalog product whose stock the inventory service knows."""
        if self.category_id is None:
            category = await self.platform.post("/categories", token=self.admin,
                                                json={"name": f"Category {next(_names)}"})
            assert category.status == 201, category
            self.category_id = category.body["id"]
        created = await self.platform.post("/products", token=self.admin, json={
            "categoryId": self.category_id, "name": f"Product {next(_names)}", "price": price,
            "stockQuantity": stock})
        assert created.status == 201, created
        product_id = created.body["id"]

        async def stocked():
            return (await self.platform.get(f"/inventory/{product_id}")).status == 200

        await eventually(stocked)
        return product_id

    async def customer(self, *cart: tuple[int, int]) -> tuple[dict, str]:
        """A new user with (productId, quantity) lines in their cart."""
        user, token = await self.platform.new_user()
        for product_id, quantity in cart:
            added = await self.platform.post("/carts/me/items", token=token,
                                             json={"productId": product_id, "quantity": quantity})
            assert added.status == 201, added
        return user, token

    async def order(self, token: str, product_id: int, quantity: int | None = None):
        body = {"productId": product_id} if quantity is None else {"productId": product_id, "quantity": quantity}
        return await self.platform.post("/orders/me", json=body, token=token)

    async def placed(self, token: str, product_id: int, quantity: int | None = None) -> dict:
        reply = await self.order(token, product_id, quantity)
        assert reply.status == 201, reply
        return reply.body

    async def set_status(self, order_id: int, status: str, token: str | None = None):
        return await self.platform.request("PATCH", f"/orders/{order_id}/status", json={"status": status},
                                           token=token or self.admin)

    async def cancel(self, order_id: int, token: str):
        return await self.platform.request("PATCH", f"/orders/{order_id}/cancel", token=token)

    async def stock(self, product_id: int) -> dict:
        reply = await self.platform.get(f"/inventory/{product_id}")
        assert reply.status == 200, reply
        return reply.body

    async def levels(self, product_id: int) -> tuple[int, int, int, int]:
        """(total, reserved, available, sold)"""
        s = await self.stock(product_id)
        return s["totalQuantity"], s["reservedQuantity"], s["availableQuantity"], s["soldQuantity"]

    async def my_orders(self, token: str) -> list[dict]:
        reply = await self.platform.get("/orders/me", token=token)
        assert reply.status == 200, reply
        return reply.body["orders"]

    async def internal(self, method: str, path: str, json=None):
        return await self.platform.request(method, path, json=json, service="order",
                                           headers={INTERNAL_TOKEN_HEADER: self.platform.settings.internal_token})


# -- POST /orders/me ---------------------------------------------------------------------------
async def test_order_one_product_from_the_cart(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10, price=12.5)
    user, token = await shop.customer((lamp, 3))

    order = await shop.placed(token, lamp, quantity=2)
    assert order["status"] == "pending" and order["userId"] == user["id"]
    assert order["items"] == [{"productId": lamp, "productName": order["items"][0]["productName"],
                               "quantity": 2, "unitPrice": 12.5, "lineTotal": 25.0}]
    assert order["totalAmount"] == 25.0 and order["totalQuantity"] == 2 and order["currency"] == "USD"
    assert await shop.levels(lamp) == (10, 2, 8, 0)

    created = await eventually(lambda: _events(spy, order["id"], "ORDER_CREATED"))
    assert created[0].data.totalAmount == 25.0 and created[0].data.status == "pending"


async def _events(spy: OrderSpy, order_id: int, event_type: str) -> list:
    return spy.of(order_id, event_type)


async def test_quantity_defaults_to_the_carts(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 4))
    order = await shop.placed(token, lamp)
    assert order["items"][0]["quantity"] == 4 and order["totalAmount"] == 40.0


async def test_ordering_needs_a_user_and_a_product_in_the_cart(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    chair = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))

    assert (await shop.platform.post("/orders/me", json={"productId": lamp})).status == 401
    reply = await shop.order(shop.admin, lamp)
    assert reply.status == 403
    reply = await shop.order(token, chair)
    assert reply.status == 400 and "not in your cart" in reply.body["message"]
    reply = await shop.order(token, lamp, quantity=3)
    assert reply.status == 400 and "exceeds" in reply.body["message"]
    for body in ({"productId": lamp, "quantity": 0}, {"productId": "one"}, {"quantity": 1},
                 {"productId": lamp, "quantity": 1.5}):
        reply = await shop.platform.post("/orders/me", json=body, token=token)
        assert reply.status == 400, (body, reply)
        assert reply.body["message"]
    reply = await shop.platform.post("/orders/me", data="{", token=token,
                                     headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.body["message"] == "Malformed JSON body"
    assert await shop.my_orders(token) == []
    assert await shop.levels(lamp) == (10, 0, 10, 0)


async def test_short_stock_is_409_and_leaves_no_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=2)
    _, token = await shop.customer((lamp, 3))
    reply = await shop.order(token, lamp)
    assert reply.status == 409 and f"product {lamp}" in reply.body["message"]
    assert await shop.my_orders(token) == []
    assert await shop.levels(lamp) == (2, 0, 2, 0)
    # Asking for what is there works.
    assert (await shop.order(token, lamp, quantity=2)).status == 201


# -- POST /orders/me/checkout ------------------------------------------------------------------
async def test_checkout_orders_the_whole_cart(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=5, price=10)
    chair = await shop.product(stock=5, price=2.25)
    _, token = await shop.customer((lamp, 1), (chair, 4))
    reply = await shop.platform.post("/orders/me/checkout", token=token)
    assert reply.status == 201, reply
    order = reply.body
    assert sorted((i["productId"], i["quantity"], i["lineTotal"]) for i in order["items"]) == \
        sorted([(lamp, 1, 10.0), (chair, 4, 9.0)])
    assert order["totalAmount"] == 19.0 and order["totalQuantity"] == 5 and order["status"] == "pending"
    assert (await shop.levels(lamp))[1:3] == (1, 4)
    assert (await shop.levels(chair))[1:3] == (4, 1)


async def test_checkout_is_all_or_nothing_and_needs_a_cart(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=5)
    chair = await shop.product(stock=1)
    _, token = await shop.customer((lamp, 2), (chair, 2))
    reply = await shop.platform.post("/orders/me/checkout", token=token)
    assert reply.status == 409 and f"product {chair}" in reply.body["message"]
    assert await shop.levels(lamp) == (5, 0, 5, 0)
    assert await shop.my_orders(token) == []

    _, empty = await shop.customer()
    reply = await shop.platform.post("/orders/me/checkout", token=empty)
    assert reply.status == 400 and "empty" in reply.body["message"]
    assert (await shop.platform.post("/orders/me/checkout")).status == 401
    assert (await shop.platform.post("/orders/me/checkout", token=shop.admin)).status == 403


# -- reading -------------------------------------------------------------------------------------
async def test_who_may_read_which_orders(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    alice, alice_token = await shop.customer((lamp, 1))
    _, bob_token = await shop.customer((lamp, 1))
    order = await shop.placed(alice_token, lamp)
    await shop.placed(bob_token, lamp)
    get = shop.platform.get

    mine = await shop.my_orders(alice_token)
    assert [o["id"] for o in mine] == [order["id"]]
    assert (await get(f"/orders/{order['id']}", token=alice_token)).body == order
    assert (await get(f"/orders/{order['id']}", token=shop.admin)).status == 200
    assert (await get(f"/orders/{order['id']}", token=bob_token)).status == 403
    assert (await get(f"/orders/{order['id']}")).status == 401
    assert (await get("/orders/99999", token=shop.admin)).status == 404
    assert (await get("/orders/abc", token=shop.admin)).status == 400

    reply = await get(f"/orders/user/{alice['id']}", token=alice_token)
    assert reply.status == 200 and [o["id"] for o in reply.body["orders"]] == [order["id"]]
    reply = await get(f"/orders/user/{alice['id']}", token=shop.admin)
    assert reply.status == 200 and len(reply.body["orders"]) == 1
    assert (await get(f"/orders/user/{alice['id']}", token=bob_token)).status == 403
    assert (await get("/orders/user/x", token=shop.admin)).status == 400
    assert (await get("/orders/me?limit=abc", token=alice_token)).status == 400


# -- PATCH /orders/:id/cancel ----------------------------------------------------------------------
async def test_owner_cancels_a_pending_order_and_its_stock_returns(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 3))
    _, other = await shop.customer()
    order = await shop.placed(token, lamp)

    assert (await shop.cancel(order["id"], other)).status == 403
    reply = await shop.cancel(order["id"], token)
    assert reply.status == 200, reply
    assert reply.body["status"] == "cancelled" and reply.body["cancelReason"] == "cancelled by user"
    assert await shop.levels(lamp) == (10, 0, 10, 0)
    again = await shop.cancel(order["id"], token)
    assert again.status == 409 and "pending" in again.body["message"]
    assert (await shop.cancel(99999, token)).status == 404
    cancelled = await eventually(lambda: _events(spy, order["id"], "ORDER_CANCELLED"))
    assert cancelled[0].data.reason == "cancelled by user" and cancelled[0].data.previousStatus == "pending"


async def test_admin_cancels_a_customers_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1))
    order = await shop.placed(token, lamp)
    reply = await shop.cancel(order["id"], shop.admin)
    assert reply.status == 200 and reply.body["cancelReason"] == "cancelled by admin"


async def test_a_paid_order_cannot_be_cancelled_by_its_owner(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1))
    order = await shop.placed(token, lamp)
    assert (await shop.set_status(order["id"], "paid")).status == 200
    reply = await shop.cancel(order["id"], token)
    assert reply.status == 409 and "paid" in reply.body["message"]


# -- PATCH /orders/:id/status -------------------------------------------------------------------
async def test_status_changes_are_admin_only_and_validated(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1))
    order = await shop.placed(token, lamp)
    oid = order["id"]

    assert (await shop.set_status(oid, "paid", token=token)).status == 403
    reply = await shop.set_status(oid, "teleported")
    assert reply.status == 400 and "status must be one of" in reply.body["message"]
    reply = await shop.set_status(oid, "reserving")  # internal states are not statuses
    assert reply.status == 400
    reply = await shop.platform.request("PATCH", f"/orders/{oid}/status", json={"status": 3}, token=shop.admin)
    assert reply.status == 400
    reply = await shop.set_status(oid, "shipped")
    assert reply.status == 409 and "pending to shipped" in reply.body["message"]
    assert (await shop.set_status(99999, "paid")).status == 404
    assert (await shop.platform.get(f"/orders/{oid}", token=token)).body["status"] == "pending"


# -- internal routes and the payment service's requests ---------------------------------------------
async def test_internal_exists_and_mark_paid(make_platform):
    shop = await Shop.open(make_platform)
    spy = OrderSpy(shop.platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    oid = order["id"]

    assert (await shop.internal("GET", f"/internal/orders/{oid}/exists")).body == {"exists": True}
    assert (await shop.internal("GET", "/internal/orders/99999/exists")).body == {"exists": False}
    assert (await shop.platform.get(f"/orders/{oid}", service="order")).status == 401
    assert (await shop.platform.get(f"/internal/orders/{oid}/exists", service="order")).status == 403

    for _ in range(2):
        reply = await shop.internal("POST", f"/internal/orders/{oid}/mark-paid", json={"paymentId": 41})
        assert reply.status == 200, reply
        assert reply.body == {"id": oid, "userId": order["userId"], "status": "paid",
                              "totalAmount": 20.0, "currency": "USD"}
    paid = (await shop.platform.get(f"/orders/{oid}", token=token)).body
    assert paid["status"] == "paid" and paid["paymentId"] == 41
    await eventually(lambda: _events(spy, oid, "ORDER_PAID"))
    assert len(spy.of(oid, "ORDER_PAID")) == 1

    reply = await shop.internal("POST", f"/internal/orders/{oid}/mark-paid", json={"paymentId": "x"})
    assert reply.status == 400
    reply = await shop.internal("POST", "/internal/orders/99999/mark-paid", json={"paymentId": 1})
    assert reply.status == 404


async def test_mark_paid_refuses_a_cancelled_order(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    await shop.cancel(order["id"], token)
    reply = await shop.internal("POST", f"/internal/orders/{order['id']}/mark-paid", json={"paymentId": 5})
    assert reply.status == 409 and "cancelled" in reply.body["message"]


async def test_order_summary_request(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10, price=3.3)
    _, token = await shop.customer((lamp, 3))
    order = await shop.placed(token, lamp)
    summary = await shop.platform.system("order").ask(GetOrderSummary(order_id=order["id"]))
    assert summary == OrderSummary(id=order["id"], userId=order["userId"], status="pending",
                                   totalAmount=9.9, currency="USD")
