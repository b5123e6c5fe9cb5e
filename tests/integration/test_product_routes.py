"""Product service over real HTTP (through the gateway unless a test says otherwise)."""

import uuid

from mc_testkit import eventually

from microcommerce.contracts.product import (
    PRODUCT_CREATED,
    PRODUCT_DELETED,
    PRODUCT_UPDATED,
    GetProduct,
)
from microcommerce.errors import NotFound
from microcommerce.services.product import seed_demo_catalog

SERVICES = ["gateway", "user", "product"]


class Events:
    """Every event published on a topic, as a consumer group of its own sees it."""

    def __init__(self, platform, topic="product-events"):
        self.seen = []
        platform.node.bus.subscribe(topic, f"test-{uuid.uuid4().hex[:8]}", self._deliver)

    def _deliver(self, envelope, topic, key, done):
        self.seen.append((key, envelope))
        if done is not None:
            done()

    def of_type(self, event_type):
        return [envelope for _, envelope in self.seen if envelope.eventType == event_type]

    async def wait_for(self, event_type, count=1):
        await eventually(lambda: _async(len(self.of_type(event_type)) >= count))
        return self.of_type(event_type)


async def _async(value):
    return value


async def new_account(platform, admin, role):
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    reply = await platform.post("/users", token=admin, json={
        "name": role.title(), "email": email, "password": "password123", "role": role})
    assert reply.status == 201, reply
    return reply.body, await platform.login(email)


async def new_category(platform, admin, name=None):
    reply = await platform.post("/categories", token=admin, json={"name": name or f"Cat {uuid.uuid4().hex[:6]}"})
    assert reply.status == 201, reply
    return reply.body


async def new_product(platform, token, category_id, **fields):
    body = {"categoryId": category_id, "name": "Dune", "price": 12.5, "stockQuantity": 10, **fields}
    reply = await platform.post("/products", token=token, json=body)
    assert reply.status == 201, reply
    return reply.body


# -- categories ----------------------------------------------------------------------------
async def test_admin_creates_categories_with_unique_slugs(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()

    shoes = await platform.post("/categories", token=admin, json={"name": "Shoes", "description": "Footwear"})
    assert shoes.status == 201, shoes
    assert (shoes.body["name"], shoes.body["slug"], shoes.body["description"]) == ("Shoes", "shoes", "Footwear")
    tees = await platform.post("/categories", token=admin, json={"name": "T-Shirts"})
    other_tees = await platform.post("/categories", token=admin, json={"name": "T Shirts"})
    assert (tees.body["slug"], other_tees.body["slug"]) == ("t-shirts", "t-shirts-2")

    duplicate = await platform.post("/categories", token=admin, json={"name": "  shoes "})
    assert duplicate.status == 409, duplicate
    assert "already exists" in duplicate.body["message"]

    listing = await platform.get("/categories")
    assert listing.status == 200
    assert sorted(c["slug"] for c in listing.body["items"]) == ["shoes", "t-shirts", "t-shirts-2"]


async def test_only_admins_create_categories(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    _, user = await platform.new_user()
    _, supplier = await new_account(platform, admin, "supplier")

    assert (await platform.post("/categories", json={"name": "Books"})).status == 401
    assert (await platform.post("/categories", json={"name": "Books"}, token="not-a-jwt")).status == 401
    for token in (user, supplier):
        reply = await platform.post("/categories", json={"name": "Books"}, token=token)
        assert reply.status == 403, reply
        assert reply.body["message"] == "Requires role: admin"
    assert (await platform.get("/categories")).body["items"] == []


async def test_bad_category_bodies_are_400(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    for raw in (b"{not json", b"", b"[]"):
        reply = await platform.post("/categories", token=admin, data=raw,
                                    headers={"Content-Type": "application/json"})
        assert reply.status == 400, reply
    for body, problem in [({"name": 5}, "name"), ({}, "name"), ({"name": "   "}, "blank"),
                          ({"name": "x" * 201}, "name"), ({"name": "Ok", "description": 3}, "description")]:
        reply = await platform.post("/categories", token=admin, json=body)
        assert reply.status == 400, (body, reply)
        assert problem in reply.body["message"], reply


# -- creating products ---------------------------------------------------------------------
async def test_admin_creates_a_product_and_product_created_is_published(make_platform):
    platform = await make_platform(SERVICES)
    events = Events(platform)
    admin = await platform.admin_token()
    category = await new_category(platform, admin, "Books")

    reply = await platform.post("/products", token=admin, json={
        "categoryId": category["id"], "name": "Dune", "description": "Desert planet", "price": 12.5,
        "stockQuantity": 40, "images": ["https://img.test/front.png",
                                        {"url": "https://img.test/back.png", "sortOrder": 5}]})
    assert reply.status == 201, reply
    product = reply.body
    assert {k: product[k] for k in ("categoryId", "name", "description", "price", "currency",
                                    "stockQuantity", "createdBy")} == {
        "categoryId": category["id"], "name": "Dune", "description": "Desert planet", "price": 12.5,
        "currency": "USD", "stockQuantity": 40, "createdBy": 1}
    assert product["images"] == [{"url": "https://img.test/front.png", "isPrimary": True, "sortOrder": 0},
                                 {"url": "https://img.test/back.png", "isPrimary": False, "sortOrder": 1}]
    assert product["createdAt"] and product["updatedAt"]
    assert (await platform.get(f"/products/{product['id']}")).body == product

    [created] = await events.wait_for(PRODUCT_CREATED)
    data = created.data
    assert (data.id, data.categoryId, data.categoryName, data.name, data.price, data.stockQuantity) == (
        product["id"], category["id"], "Books", "Dune", 12.5, 40)
    assert data.images == ["https://img.test/front.png", "https://img.test/back.png"]
    assert created.producer == "product-service"
    assert [key for key, env in events.seen if env is created] == [str(product["id"])]


async def test_product_currency_is_normalized(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    product = await new_product(platform, admin, category["id"], currency="eur", price=7)
    assert (product["currency"], product["price"]) == ("EUR", 7)


async def test_bad_product_bodies_are_400_with_a_clear_message(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    good = {"categoryId": category["id"], "name": "Dune", "price": 12.5, "stockQuantity": 10}
    cases = [
        ({**good, "price": "12.50"}, "price"),
        ({**good, "price": 0}, "greater than 0"),
        ({**good, "price": -3}, "greater than 0"),
        ({**good, "price": 1.999}, "2 decimal"),
        ({**good, "stockQuantity": -1}, "stockQuantity"),
        ({**good, "stockQuantity": 1.5}, "stockQuantity"),
        ({**good, "categoryId": "one"}, "categoryId"),
        ({**good, "currency": "EURO"}, "currency"),
        ({**good, "images": "https://img.test/a.png"}, "images"),
        ({**good, "images": ["nope"]}, "http"),
        ({**good, "images": [{"url": "https://a.test/1", "isPrimary": True},
                             {"url": "https://a.test/2", "isPrimary": True}]}, "primary"),
        ({k: v for k, v in good.items() if k != "price"}, "price"),
        ({**good, "categoryId": 999}, "categoryId 999 does not exist"),
    ]
    for body, problem in cases:
        reply = await platform.post("/products", token=admin, json=body)
        assert reply.status == 400, (body, reply)
        assert problem in reply.body["message"], (body, reply)
    malformed = await platform.post("/products", token=admin, data=b'{"name": ',
                                    headers={"Content-Type": "application/json"})
    assert malformed.status == 400 and malformed.body["message"] == "Malformed JSON body"
    assert (await platform.get("/products")).body["total"] == 0


async def test_only_admins_and_suppliers_create_products(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    body = {"categoryId": category["id"], "name": "Dune", "price": 12.5, "stockQuantity": 1}
    assert (await platform.post("/products", json=body)).status == 401
    _, user = await platform.new_user()
    reply = await platform.post("/products", json=body, token=user)
    assert reply.status == 403 and "admin or supplier" in reply.body["message"]
    supplier, supplier_token = await new_account(platform, admin, "supplier")
    created = await new_product(platform, supplier_token, category["id"])
    assert created["createdBy"] == supplier["id"]


# -- updating and deleting -----------------------------------------------------------------
async def test_only_the_creating_supplier_or_an_admin_edits(make_platform):
    platform = await make_platform(SERVICES)
    events = Events(platform)
    admin = await platform.admin_token()
    category = await new_category(platform, admin, "Books")
    other_category = await new_category(platform, admin, "Comics")
    _, owner = await new_account(platform, admin, "supplier")
    _, rival = await new_account(platform, admin, "supplier")
    _, shopper = await platform.new_user()
    product = await new_product(platform, owner, category["id"])
    path = f"/products/{product['id']}"

    rival_try = await platform.request("PATCH", path, token=rival, json={"price": 1})
    assert rival_try.status == 403 and "own products" in rival_try.body["message"]
    assert (await platform.request("PATCH", path, token=shopper, json={"price": 1})).status == 403
    assert (await platform.request("PATCH", path, json={"price": 1})).status == 401

    patched = await platform.request("PATCH", path, token=owner, json={
        "price": 9.99, "name": "Dune (paperback)", "categoryId": other_category["id"],
        "images": ["https://img.test/cover.png"]})
    assert patched.status == 200, patched
    assert (patched.body["price"], patched.body["name"], patched.body["categoryName"]) == (
        9.99, "Dune (paperback)", "Comics")
    assert patched.body["stockQuantity"] == 10 and patched.body["description"] == ""  # untouched
    assert patched.body["images"] == [{"url": "https://img.test/cover.png", "isPrimary": True, "sortOrder": 0}]
    by_admin = await platform.request("PATCH", path, token=admin, json={"price": 8.5})
    assert by_admin.status == 200 and by_admin.body["price"] == 8.5
    assert (await platform.get(path)).body == by_admin.body
    # (stockQuantity is the inventory service's: see test_stock_source.py)

    updates = await events.wait_for(PRODUCT_UPDATED, 2)
    assert [(u.data.price, u.data.stockQuantity, u.data.categoryName, u.data.version) for u in updates] == [
        (9.99, 10, "Comics", 2), (8.5, 10, "Comics", 3)]  # version 1 was PRODUCT_CREATED


async def test_bad_patches(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    product = await new_product(platform, admin, category["id"])
    path = f"/products/{product['id']}"
    for body, status, problem in [
        ({"price": None}, 400, "price"),
        ({"name": None}, 400, "name"),
        ({"price": "cheap"}, 400, "price"),
        ({"price": 0.001}, 400, "2 decimal"),
        ({"categoryId": 404}, 400, "categoryId 404 does not exist"),
        ({"stockQuantity": -5}, 400, "stockQuantity"),
    ]:
        reply = await platform.request("PATCH", path, token=admin, json=body)
        assert reply.status == status, (body, reply)
        assert problem in reply.body["message"], (body, reply)
    assert (await platform.request("PATCH", "/products/999", token=admin, json={"price": 1})).status == 404
    bad_id = await platform.request("PATCH", "/products/abc", token=admin, json={"price": 1})
    assert bad_id.status == 400 and "id must be a positive integer" in bad_id.body["message"]
    unchanged = await platform.request("PATCH", path, token=admin, json={})
    assert unchanged.status == 200 and unchanged.body["updatedAt"] == product["updatedAt"]


async def test_delete_is_soft_and_published(make_platform):
    platform = await make_platform(SERVICES)
    events = Events(platform)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    _, owner = await new_account(platform, admin, "supplier")
    _, rival = await new_account(platform, admin, "supplier")
    product = await new_product(platform, owner, category["id"])
    path = f"/products/{product['id']}"

    assert (await platform.request("DELETE", path, token=rival)).status == 403
    assert (await platform.request("DELETE", path)).status == 401
    deleted = await platform.request("DELETE", path, token=owner)
    assert deleted.status == 200 and deleted.body == {"message": "Product deleted", "id": product["id"]}

    gone = await platform.get(path)
    assert gone.status == 404 and gone.body["message"] == f"Product {product['id']} not found"
    assert (await platform.get("/products")).body["total"] == 0
    assert (await platform.request("DELETE", path, token=owner)).status == 404
    assert (await platform.request("PATCH", path, token=admin, json={"price": 2})).status == 404
    [event] = await events.wait_for(PRODUCT_DELETED)
    assert event.data.id == product["id"]


# -- reading -------------------------------------------------------------------------------
async def test_listing_filters_and_pages(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    books = await new_category(platform, admin, "Books")
    shoes = await new_category(platform, admin, "Shoes")
    await new_product(platform, admin, books["id"], name="Dune", price=12.5, description="Desert planet")
    await new_product(platform, admin, books["id"], name="Emma", price=8, description="A novel about DUNES")
    await new_product(platform, admin, shoes["id"], name="Runner", price=89)
    await new_product(platform, admin, shoes["id"], name="100% Wool Sock", price=5)

    async def names(query):
        reply = await platform.get(f"/products{query}")
        assert reply.status == 200, reply
        return [item["name"] for item in reply.body["items"]]

    assert await names("") == ["Dune", "Emma", "Runner", "100% Wool Sock"]
    assert await names(f"?categoryId={shoes['id']}") == ["Runner", "100% Wool Sock"]
    assert await names("?q=dUnE") == ["Dune", "Emma"]  # name or description, any case
    assert await names("?q=%25") == ["100% Wool Sock"]  # a literal %, not a wildcard
    assert await names("?minPrice=8&maxPrice=12.5") == ["Dune", "Emma"]
    assert await names(f"?categoryId={books['id']}&q=novel&maxPrice=10") == ["Emma"]
    assert await names("?categoryId=999") == []

    page = (await platform.get("/products?page=2&pageSize=3")).body
    assert (page["total"], page["page"], page["pageSize"]) == (4, 2, 3)
    assert [item["name"] for item in page["items"]] == ["100% Wool Sock"]
    assert (await platform.get("/products?pageSize=100")).body["pageSize"] == 100
    too_big = await platform.get("/products?pageSize=1000")
    assert too_big.status == 400 and "pageSize" in too_big.body["message"]
    first = (await platform.get("/products")).body
    assert (first["page"], first["pageSize"]) == (1, 20)


async def test_bad_listing_queries_are_400(make_platform):
    platform = await make_platform(SERVICES)
    for query, problem in [("page=0", "page"), ("page=two", "page"), ("pageSize=0", "pageSize"),
                           ("minPrice=cheap", "minPrice"), ("maxPrice=-1", "maxPrice"),
                           ("minPrice=10&maxPrice=5", "minPrice"), ("categoryId=-2", "categoryId"),
                           ("categoryId=abc", "categoryId"), ("minPrice=nan", "minPrice")]:
        reply = await platform.get(f"/products?{query}")
        assert reply.status == 400, (query, reply)
        assert problem in reply.body["message"], (query, reply)


async def test_get_one_product_errors(make_platform):
    platform = await make_platform(SERVICES)
    missing = await platform.get("/products/12345")
    assert missing.status == 404 and missing.body["message"] == "Product 12345 not found"
    for bad in ("abc", "0", "-3"):
        assert (await platform.get(f"/products/{bad}")).status == 400


# -- for other services --------------------------------------------------------------------
async def test_internal_routes_need_the_service_token(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    product = await new_product(platform, admin, category["id"], price=19.99)
    internal = {"X-Internal-Token": platform.settings.internal_token}
    path = f"/internal/products/{product['id']}"

    info = await platform.get(path, service="product", headers=internal)
    assert info.status == 200
    assert info.body == {"id": product["id"], "name": "Dune", "price": 19.99, "currency": "USD",
                         "categoryId": category["id"]}
    assert (await platform.get(f"{path}/exists", service="product", headers=internal)).body == {"exists": True}
    assert (await platform.get("/internal/products/999/exists", service="product",
                               headers=internal)).body == {"exists": False}
    assert (await platform.get("/internal/products/999", service="product", headers=internal)).status == 404
    assert (await platform.get(path, service="product")).status == 403  # no service token
    assert (await platform.get(path)).status == 404  # the gateway never exposes /internal


async def test_get_product_request_answers_product_info_until_deleted(make_platform):
    platform = await make_platform(SERVICES)
    admin = await platform.admin_token()
    category = await new_category(platform, admin)
    product = await new_product(platform, admin, category["id"])
    info = await platform.node.requester.request("product", GetProduct(id=product["id"]), timeout=2)
    assert (info.id, info.name, info.price, info.currency) == (product["id"], "Dune", 12.5, "USD")

    await platform.request("DELETE", f"/products/{product['id']}", token=admin)
    try:
        await platform.node.requester.request("product", GetProduct(id=product["id"]), timeout=2)
    except NotFound as err:
        assert err.message == f"Product {product['id']} not found"
    else:
        raise AssertionError("a deleted product must not be found")


async def test_demo_catalog_seeds_an_empty_catalog_once(make_platform):
    platform = await make_platform(SERVICES, demo_catalog=True)
    assert platform.node.ready_results["product"] == {"seeded": True, "categories": 3, "products": 6}
    listing = (await platform.get("/products")).body
    assert listing["total"] == 6 and all(item["stockQuantity"] > 0 for item in listing["items"])
    assert len((await platform.get("/categories")).body["items"]) == 3
    # Starting again on the same data must not duplicate it.
    assert await seed_demo_catalog(platform.node) == {"seeded": False, "reason": "catalog not empty"}
    assert (await platform.get("/products")).body["total"] == 6


async def test_demo_catalog_is_off_by_default(make_platform):
    platform = await make_platform(["product"])
    assert platform.node.ready_results["product"]["seeded"] is False
    assert (await platform.get("/products", service="product")).body["total"] == 0
