"""One source of truth for stock: inventory (issue item 13), on a real platform through the gateway.

`PATCH /products/:id {stockQuantity}` asks inventory to set the units on hand (409 below what is
reserved, nothing changed); the product's `stockQuantity` is a projection of inventory's number,
fed by STOCK_UPDATED / STOCK_CONFIRMED and guarded by the stock row's version.
"""

from __future__ import annotations

from mc_testkit import eventually
from test_order_routes import Shop

from microcommerce.contracts.events import new_event
from microcommerce.contracts.inventory import STOCK_UPDATED, StockChanged


async def patch(shop: Shop, product_id: int, body: dict, token: str | None = None):
    return await shop.platform.request("PATCH", f"/products/{product_id}", json=body, token=token or shop.admin)


async def product_stock(shop: Shop, product_id: int) -> int:
    reply = await shop.platform.get(f"/products/{product_id}")
    assert reply.status == 200, reply
    return reply.body["stockQuantity"]


async def until_product_stock(shop: Shop, product_id: int, expected: int) -> None:
    async def shown():
        listed = (await shop.platform.get("/products")).body["items"]
        in_list = next(item["stockQuantity"] for item in listed if item["id"] == product_id)
        return await product_stock(shop, product_id) == expected and in_list == expected

    await eventually(shown)


async def test_patch_stock_quantity_sets_inventorys_number(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)

    reply = await patch(shop, lamp, {"stockQuantity": 25})
    assert reply.status == 200 and reply.body["stockQuantity"] == 25, reply
    assert await shop.levels(lamp) == (25, 0, 25, 0)
    assert await product_stock(shop, lamp) == 25

    both = await patch(shop, lamp, {"stockQuantity": 4, "price": 3.5})
    assert both.status == 200 and (both.body["stockQuantity"], both.body["price"]) == (4, 3.5), both
    assert await shop.levels(lamp) == (4, 0, 4, 0)


async def test_put_inventory_stock_shows_in_the_product(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)

    put = await shop.platform.request("PUT", f"/inventory/{lamp}/stock", token=shop.admin,
                                      json={"totalQuantity": 7})
    assert put.status == 200, put
    await until_product_stock(shop, lamp, 7)


async def test_patch_below_the_reserved_units_is_409_and_changes_nothing(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 5))
    await shop.placed(token, lamp)

    reply = await patch(shop, lamp, {"stockQuantity": 3, "price": 1.0})
    assert reply.status == 409, reply
    assert "below the 5 units reserved" in reply.body["message"]
    assert await shop.levels(lamp) == (10, 5, 5, 0)
    product = (await shop.platform.get(f"/products/{lamp}")).body
    assert (product["stockQuantity"], product["price"]) == (10, 10.0)  # nothing of the PATCH applied
    assert (await patch(shop, lamp, {"stockQuantity": 5})).status == 200


async def test_shipping_lowers_the_products_stock_and_old_events_never_win(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, token = await shop.customer((lamp, 3))
    order = await shop.placed(token, lamp)
    await shop.set_status(order["id"], "paid")
    assert (await shop.set_status(order["id"], "shipped")).status == 200
    await until_product_stock(shop, lamp, 7)

    # A stale copy of the initial STOCK_UPDATED (version 1) arrives late: the projection keeps 7.
    stale = StockChanged(productId=lamp, totalQuantity=10, reservedQuantity=0, availableQuantity=10,
                         quantity=10, reason="initial", version=1)
    await shop.platform.deliver("product", new_event(STOCK_UPDATED, "inventory-service", stale), lamp)
    assert await product_stock(shop, lamp) == 7


async def test_only_an_editor_of_the_product_sets_its_stock(make_platform):
    shop = await Shop.open(make_platform)
    lamp = await shop.product(stock=10)
    _, shopper = await shop.platform.new_user()
    assert (await patch(shop, lamp, {"stockQuantity": 1}, token=shopper)).status == 403
    assert (await patch(shop, 999_999, {"stockQuantity": 1})).status == 404
    assert (await patch(shop, lamp, {"stockQuantity": -1})).status == 400
    assert await shop.levels(lamp) == (10, 0, 10, 0)
