"""A deleted product can no longer be ordered (issue item 12), on a real platform.

The gate every order passes is inventory's reservation: deleting a product discontinues its stock
(at once by request, PRODUCT_DELETED as the backstop), so reserving it is refused; the cart flags
the line so the customer sees why. An order placed before the deletion keeps its reservation and
may still be paid and shipped (the sale was agreed while the product was on sale).
"""

from __future__ import annotations

from mc_testkit import eventually
from test_inventory_routes import EventSpy, announce_product, reserve, stock_of, wait_for_stock
from test_order_routes import SHOP, Shop
from test_payment_routes import charge

from microcommerce.contracts.events import new_event
from microcommerce.contracts.inventory import STOCK_UPDATED
from microcommerce.contracts.product import (
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    PRODUCT_EVENTS,
    ProductData,
    ProductDeleted,
)


async def delete(shop: Shop, product_id: int) -> None:
    reply = await shop.platform.request("DELETE", f"/products/{product_id}", token=shop.admin)
    assert reply.status == 200, reply


async def test_the_testers_path_cart_then_delete_then_order_and_checkout_are_refused(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))

    await delete(shop, lamp)

    ordered = await shop.order(token, lamp)
    assert ordered.status == 409, ordered
    assert f"Product {lamp}" in ordered.body["message"] and "deleted" in ordered.body["message"]
    checkout = await shop.platform.post("/orders/me/checkout", token=token)
    assert checkout.status == 409, checkout
    assert "deleted" in checkout.body["message"]
    assert await shop.levels(lamp) == (10, 0, 10, 0)  # nothing reserved
    assert (await stock_of(shop.platform, lamp))["discontinued"] is True
    assert await shop.my_orders(token) == []

    async def flagged():
        cart = (await shop.platform.get("/carts/me", token=token)).body
        return cart if cart["items"] and cart["items"][0]["available"] is False else None

    cart = await eventually(flagged)
    assert (cart["totalQuantity"], cart["totalAmount"]) == (0, 0)
    # The customer sees the reason, and the line can go.
    again = await shop.order(token, lamp)
    assert again.status == 409 and "remove it from your cart" in again.body["message"]
    assert (await shop.platform.request("DELETE", f"/carts/me/items/{lamp}", token=token)).status == 200
    assert (await shop.platform.post("/carts/me/items", token=token,
                                     json={"productId": lamp, "quantity": 1})).status == 404


async def test_a_checkout_with_one_deleted_product_is_refused_whole(make_platform):
    shop = await Shop.open(make_platform)
    lamp, desk = await shop.product(stock=10), await shop.product(stock=10)
    _, token = await shop.customer((lamp, 1), (desk, 1))
    await delete(shop, desk)

    checkout = await shop.platform.post("/orders/me/checkout", token=token)
    assert checkout.status == 409 and f"Product {desk}" in checkout.body["message"], checkout
    assert await shop.levels(lamp) == (10, 0, 10, 0) and await shop.levels(desk) == (10, 0, 10, 0)
    assert await shop.my_orders(token) == []
    assert (await shop.order(token, lamp)).status == 201  # the other product can still be ordered


async def test_an_order_placed_before_the_deletion_can_still_be_paid_and_shipped(make_platform):
    shop = await Shop.open(make_platform, [*SHOP, "payment"])
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 2))
    order = await shop.placed(token, lamp)
    await delete(shop, lamp)

    paid = await charge(shop.platform, token, order["id"], paymentToken="tok_visa")
    assert paid.status == 201 and paid.body["status"] == "succeeded", paid

    async def is_paid():
        return (await shop.platform.get(f"/orders/{order['id']}", token=token)).body["status"] == "paid"

    await eventually(is_paid)
    assert (await shop.set_status(order["id"], "shipped")).status == 200
    assert await shop.levels(lamp) == (8, 0, 8, 2)


async def test_product_deleted_event_discontinues_stock_once_even_before_it_was_created(make_platform):
    platform = await make_platform(["inventory"])
    spy = EventSpy(platform)
    announce_product(platform, 41, 5)
    await wait_for_stock(platform, 41)
    deleted = new_event(PRODUCT_DELETED, "test", ProductDeleted(id=41))
    for _ in range(2):
        platform.node.bus.publish(PRODUCT_EVENTS, "41", deleted)

    async def discontinued():
        return (await stock_of(platform, 41))["discontinued"]

    await eventually(discontinued)
    refused = await reserve(platform, order_id=1, product_id=41, quantity=1)
    assert refused.status == 409 and "deleted" in refused.body["message"], refused
    async def announced() -> list[str]:  # the relay publishes after the commit the route saw
        reasons = [e.data.reason for e in spy.of(STOCK_UPDATED, 41)]
        return reasons if len(reasons) >= 2 else []

    assert await eventually(announced) == ["initial", "discontinued"]

    # Deleted before its creation reached inventory: the late PRODUCT_CREATED brings nothing back.
    await platform.deliver("inventory", new_event(PRODUCT_DELETED, "test", ProductDeleted(id=42)), 42)
    created = ProductData(id=42, categoryId=1, name="Late", price=9.99, stockQuantity=9)
    await platform.deliver("inventory", new_event(PRODUCT_CREATED, "test", created), 42)
    level = await stock_of(platform, 42)
    assert (level["totalQuantity"], level["discontinued"]) == (0, True)
    assert (await reserve(platform, order_id=2, product_id=42, quantity=1)).status == 409


