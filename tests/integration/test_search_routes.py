"""Search service on a real platform: events in, `GET /search/products` out (through the gateway)."""

import itertools
from urllib.parse import urlencode

from mc_testkit import eventually

from microcommerce.contracts.events import EventEnvelope, event_type, new_event
from microcommerce.contracts.inventory import STOCK_RESERVED, STOCK_UPDATED, StockChanged
from microcommerce.contracts.product import (
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    PRODUCT_UPDATED,
    ProductData,
    ProductDeleted,
)
from microcommerce.services.search.messages import GetIndexEntry

SERVICES = ["gateway", "user", "search"]
T1 = "2026-02-15T12:00:01.000Z"
T2 = "2026-02-15T12:00:02.000Z"
T3 = "2026-02-15T12:00:03.000Z"
T4 = "2026-02-15T12:00:04.000Z"
_sentinel_ids = itertools.count(900_000)


def publish(platform, name: str, key: int, data, at: str | None = None) -> EventEnvelope:
    envelope = new_event(name, "test-service", data)
    if at is not None:
        envelope.occurredAt = at
    platform.node.bus.publish(event_type(name).topic, str(key), envelope)
    return envelope


def product(pid: int, name: str, price: float, *, category: int = 1, stock: int = 5,
            description: str = "", version: int = 0) -> ProductData:
    return ProductData(id=pid, categoryId=category, categoryName=f"Category {category}", name=name,
                       description=description, price=price, stockQuantity=stock, version=version)


def stock(pid: int, available: int, version: int = 0) -> StockChanged:
    return StockChanged(productId=pid, totalQuantity=available + 1, reservedQuantity=1,
                        availableQuantity=available, quantity=1, version=version)


async def entry(platform, pid: int):
    return await platform.system("search").ask(GetIndexEntry(product_id=pid))


async def drain(platform, key: int) -> None:
    """Wait until every event published so far on `key` is applied: one worker per key, FIFO.

    The marker is a stock event for an unused product id, which only makes a hidden placeholder.
    """
    marker = next(_sentinel_ids)
    publish(platform, STOCK_UPDATED, key, stock(marker, 1))
    await eventually(lambda: entry(platform, marker))


async def search(platform, **params):
    return await platform.get("/search/products?" + urlencode(params))


async def ids(platform, **params) -> list[int]:
    reply = await search(platform, **params)
    assert reply.status == 200, reply
    return [item["id"] for item in reply.body["items"]]


async def test_search_filters_paging_and_deletes(make_platform):
    platform = await make_platform(SERVICES)
    publish(platform, PRODUCT_CREATED, 1, product(1, "Desk Lamp", 19.99, category=1, stock=3))
    publish(platform, PRODUCT_CREATED, 2, product(2, "Floor light", 49.50, category=1, stock=0,
                                                  description="A tall LAMP for the corner"))
    publish(platform, PRODUCT_CREATED, 3, product(3, "Oak Chair", 10.00, category=2, stock=7))
    publish(platform, PRODUCT_CREATED, 4, product(4, "50% off Table", 120.00, category=2, stock=1))
    publish(platform, PRODUCT_CREATED, 5, product(5, "Gone Shelf", 30.00, category=2, stock=2))
    publish(platform, PRODUCT_DELETED, 5, ProductDeleted(id=5))

    async def settled():
        reply = await search(platform)
        return reply.status == 200 and reply.body["total"] == 4 and reply.body

    body = await eventually(settled)
    assert [item["id"] for item in body["items"]] == [1, 2, 3, 4]  # id ascending
    assert (body["page"], body["pageSize"]) == (1, 20)
    assert body["items"][0] == {
        "id": 1, "name": "Desk Lamp", "description": "", "categoryId": 1,
        "categoryName": "Category 1", "price": 19.99, "currency": "USD",
        "availableQuantity": 3, "inStock": True,
    }

    assert await ids(platform, q="lamp") == [1, 2]  # name or description, any case
    assert await ids(platform, q="  CHAIR ") == [3]
    assert await ids(platform, q="50%") == [4]  # % is literal, not a wildcard
    assert await ids(platform, q="shelf") == []  # deleted products leave the results
    assert await ids(platform, categoryId=2) == [3, 4]
    assert await ids(platform, minPrice="19.99") == [1, 2, 4]  # bounds are inclusive, in cents
    assert await ids(platform, maxPrice="19.99") == [1, 3]
    assert await ids(platform, minPrice="10", maxPrice="49.5") == [1, 2, 3]
    assert await ids(platform, inStock="true") == [1, 3, 4]
    assert await ids(platform, inStock="false") == [2]
    assert await ids(platform, categoryId=1, inStock="true", q="lamp") == [1]

    reply = await search(platform, page=2, pageSize=3)
    assert reply.status == 200
    assert ([i["id"] for i in reply.body["items"]], reply.body["total"]) == ([4], 4)
    assert (reply.body["page"], reply.body["pageSize"]) == (2, 3)
    reply = await search(platform, page=9)
    assert (reply.body["items"], reply.body["total"]) == ([], 4)

    # Stock events move products in and out of stock; updates change what matches.
    publish(platform, STOCK_RESERVED, 1, stock(1, 0))
    publish(platform, PRODUCT_UPDATED, 3, product(3, "Oak Stool", 12.00, category=2))
    await eventually(lambda: _ids_equal(platform, [3, 4], inStock="true"))
    assert await ids(platform, q="stool") == [3]
    assert await ids(platform, q="chair") == []
    reply = await search(platform, q="stool")
    assert (reply.body["items"][0]["price"], reply.body["items"][0]["availableQuantity"]) == (12.0, 7)


async def _ids_equal(platform, expected, **params) -> bool:
    return await ids(platform, **params) == expected


async def test_bad_query_values_are_400(make_platform):
    platform = await make_platform(SERVICES)
    bad = [
        {"page": "0"}, {"page": "abc"}, {"page": "1.5"}, {"pageSize": "0"}, {"pageSize": "101"},
        {"minPrice": "abc"}, {"minPrice": "-1"}, {"maxPrice": "nan"}, {"inStock": "maybe"},
        {"minPrice": "20", "maxPrice": "10"}, {"categoryId": "0"}, {"categoryId": "x"},
        {"categoryId": str(2**70)}, {"q": "x" * 201},
    ]
    for params in bad:
        reply = await search(platform, **params)
        assert reply.status == 400, (params, reply)
        assert isinstance(reply.body["message"], str) and reply.body["message"], reply
    reply = await search(platform, pageSize="100", page="1", inStock="", minPrice="")
    assert reply.status == 200 and reply.body["pageSize"] == 100


async def test_each_event_delivered_twice_changes_the_index_once(make_platform):
    platform = await make_platform(SERVICES)
    platform.publish_twice(PRODUCT_CREATED, 41, product(41, "Twice Lamp", 5.00, stock=3))
    platform.publish_twice(STOCK_RESERVED, 41, stock(41, 2))
    platform.publish_twice(PRODUCT_UPDATED, 41, product(41, "Twice Lamp v2", 6.00))
    await drain(platform, 41)
    indexed = await entry(platform, 41)
    assert indexed.version == 3  # one write per distinct event
    assert (indexed.name, indexed.available_quantity, indexed.price_cents) == ("Twice Lamp v2", 2, 600)
    reply = await search(platform, q="twice")
    assert reply.body["total"] == 1 and reply.body["items"][0]["availableQuantity"] == 2


async def test_two_stock_changes_in_one_millisecond_converge_on_the_newer_version(make_platform):
    """Found by the deterministic chaos runner (seed 3, ten simulated minutes): a redelivered
    older stock event with the same occurredAt as the newer one overwrote it."""
    platform = await make_platform(SERVICES)
    publish(platform, PRODUCT_CREATED, 61, product(61, "Same Instant", 7.00, stock=3), at=T1)
    publish(platform, STOCK_RESERVED, 61, stock(61, 1, version=3), at=T2)
    publish(platform, STOCK_RESERVED, 61, stock(61, 2, version=2), at=T2)  # redelivered, older
    await drain(platform, 61)
    indexed = await entry(platform, 61)
    assert (indexed.available_quantity, indexed.stock_version) == (1, 3)
    reply = await search(platform, q="same instant")
    assert reply.body["items"][0]["availableQuantity"] == 1


async def test_two_product_updates_in_one_millisecond_converge_on_the_newer_version(make_platform):
    platform = await make_platform(SERVICES)
    publish(platform, PRODUCT_CREATED, 62, product(62, "Name v1", 1.00, version=1), at=T1)
    publish(platform, PRODUCT_UPDATED, 62, product(62, "Name v3", 3.00, version=3), at=T2)
    publish(platform, PRODUCT_UPDATED, 62, product(62, "Name v2", 2.00, version=2), at=T2)  # late, older
    await drain(platform, 62)
    indexed = await entry(platform, 62)
    assert (indexed.name, indexed.price_cents, indexed.product_version) == ("Name v3", 300, 3)


async def test_out_of_order_events_converge(make_platform):
    platform = await make_platform(SERVICES)
    # Stock before the product: a hidden placeholder, whose stock wins over the initial quantity.
    publish(platform, STOCK_RESERVED, 51, stock(51, 2), at=T2)
    await eventually(lambda: entry(platform, 51))
    assert (await search(platform)).body["total"] == 0
    publish(platform, PRODUCT_CREATED, 51, product(51, "Early Stock", 9.00, stock=9), at=T1)

    # An older product update arriving late is ignored.
    publish(platform, PRODUCT_CREATED, 52, product(52, "Name v1", 1.00, stock=4), at=T1)
    publish(platform, PRODUCT_UPDATED, 52, product(52, "Name v3", 3.00), at=T3)
    publish(platform, PRODUCT_UPDATED, 52, product(52, "Name v2", 2.00), at=T2)

    # An older stock level arriving late is ignored.
    publish(platform, PRODUCT_CREATED, 53, product(53, "Stocky", 1.00, stock=10), at=T1)
    publish(platform, STOCK_UPDATED, 53, stock(53, 4), at=T3)
    publish(platform, STOCK_RESERVED, 53, stock(53, 8), at=T2)

    # Deleted before created: stays out.
    publish(platform, PRODUCT_DELETED, 54, ProductDeleted(id=54), at=T2)
    publish(platform, PRODUCT_CREATED, 54, product(54, "Zombie", 1.00), at=T1)
    publish(platform, PRODUCT_UPDATED, 54, product(54, "Zombie", 1.00), at=T4)

    for key in (51, 52, 53, 54):
        await drain(platform, key)
    reply = await search(platform)
    assert reply.status == 200
    found = {item["id"]: item for item in reply.body["items"]}
    assert sorted(found) == [51, 52, 53]
    assert (found[51]["name"], found[51]["availableQuantity"]) == ("Early Stock", 2)
    assert (found[52]["name"], found[52]["price"], found[52]["availableQuantity"]) == ("Name v3", 3.0, 4)
    assert found[53]["availableQuantity"] == 4
    assert (await entry(platform, 54)).deleted


async def test_index_follows_real_product_and_inventory_routes(make_platform):
    platform = await make_platform(["gateway", "user", "product", "inventory", "search"])
    admin = await platform.admin_token()
    category = await platform.post("/categories", json={"name": "Lamps"}, token=admin)
    assert category.status == 201, category
    created = await platform.post("/products", token=admin, json={
        "categoryId": category.body["id"], "name": "Real Lamp", "description": "Bright and warm",
        "price": 25.5, "stockQuantity": 4})
    assert created.status == 201, created
    pid = created.body["id"]

    async def hit(**params):
        reply = await search(platform, q="real lamp", **params)
        assert reply.status == 200, reply
        return reply.body["items"][0] if reply.body["items"] else None

    item = await eventually(hit)
    assert item == {"id": pid, "name": "Real Lamp", "description": "Bright and warm",
                    "categoryId": category.body["id"], "categoryName": "Lamps", "price": 25.5,
                    "currency": "USD", "availableQuantity": 4, "inStock": True}

    stock = await platform.request("PUT", f"/inventory/{pid}/stock", json={"totalQuantity": 0}, token=admin)
    assert stock.status == 200, stock
    item = await eventually(lambda: hit(inStock="false"))
    assert item["availableQuantity"] == 0

    patched = await platform.request("PATCH", f"/products/{pid}", json={"price": 30}, token=admin)
    assert patched.status == 200, patched
    item = await eventually(lambda: hit(minPrice="30"))
    assert (item["price"], item["availableQuantity"]) == (30.0, 0)

    deleted = await platform.request("DELETE", f"/products/{pid}", token=admin)
    assert deleted.status == 200, deleted

    async def gone():
        return (await search(platform, q="real lamp")).body["total"] == 0

    assert await eventually(gone)
