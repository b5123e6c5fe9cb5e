"""Cart service over real HTTP and real events (gateway, user, product and cart on one node)."""

import uuid
from contextlib import asynccontextmanager

from mc_testkit import eventually

from microcommerce.contracts.cart import CartView, GetCart
from microcommerce.contracts.order import ORDER_PAID, OrderData, OrderLine
from microcommerce.contracts.user import (
    USER_CREATED,
    USER_UPDATED,
    UserData,
)
from microcommerce.errors import NotFound
from microcommerce.http.auth import Principal

SERVICES = ["gateway", "user", "cart", "product"]


# -- helpers -------------------------------------------------------------------------------
async def catalog(platform, *products):
    """Create a category and products [(name, price, currency?)]; returns their ids."""
    admin = await platform.admin_token()
    category = await platform.post("/categories", token=admin, json={"name": f"C {uuid.uuid4().hex[:6]}"})
    ids = []
    for name, price, *currency in products:
        body = {"categoryId": category.body["id"], "name": name, "price": price, "stockQuantity": 50}
        if currency:
            body["currency"] = currency[0]
        reply = await platform.post("/products", token=admin, json=body)
        assert reply.status == 201, reply
        ids.append(reply.body["id"])
    return ids


async def add(platform, token, product_id, quantity=1):
    return await platform.post("/carts/me/items", token=token, json={"productId": product_id, "quantity": quantity})


def lines(cart):
    return {item["productId"]: item["quantity"] for item in cart["items"]}


def mint_token(platform, user_id, role):
    """A valid token for an account the cart service may never have heard of."""
    return platform.node.issuer.issue(Principal(id=user_id, role=role))


@asynccontextmanager
async def cart_db(platform):
    """The cart service's own database, read directly (counts no API exposes)."""
    db = platform.system("cart").open_database()
    await db.connect()
    try:
        yield db
    finally:
        await db.close()


async def ask_cart(platform, user_id):
    return await platform.node.requester.request("cart", GetCart(user_id=user_id), timeout=2)


def order_paid(order_id, user_id, *bought):
    items = [OrderLine(productId=pid, productName=f"P{pid}", quantity=qty, unitPrice=1.0, lineTotal=float(qty))
             for pid, qty in bought]
    return OrderData(id=order_id, userId=user_id, status="paid", items=items,
                     totalAmount=float(sum(qty for _, qty in bought)))


# -- the cart appears with the user --------------------------------------------------------
async def test_a_new_user_has_an_empty_cart(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    reply = await platform.get("/carts/me", token=token)
    assert reply.status == 200
    cart = reply.body
    assert cart["userId"] == user["id"] and isinstance(cart["id"], int) and cart["updatedAt"]
    assert (cart["items"], cart["totalQuantity"], cart["totalAmount"], cart["currency"]) == ([], 0, 0, "USD")
    assert (await platform.get("/carts/me")).status == 401


async def test_no_cart_yet_is_a_clear_404(make_platform):
    platform = await make_platform(["cart"])
    token = mint_token(platform, 777, "user")
    reply = await platform.get("/carts/me", token=token, service="cart")
    assert reply.status == 404
    assert "No cart for user 777" in reply.body["message"]
    # The cart is checked first: no call to a product service (there is none on this node).
    adding = await platform.post("/carts/me/items", token=token, json={"productId": 1}, service="cart")
    assert adding.status == 404 and "No cart for user 777" in adding.body["message"]


async def test_user_created_delivered_twice_makes_one_cart(make_platform):
    platform = await make_platform(["cart"])
    user = UserData(id=4242, name="Twice", email="twice@example.com", role="user", accountStatus="active")
    first = platform.publish_twice(USER_CREATED, user.id, user)
    # A later event for the same user reaches the same worker after both copies.
    platform.publish_twice(USER_UPDATED, user.id, UserData(**{**_fields(user), "name": "Marker"}))
    async with cart_db(platform) as db:
        async def marker_applied():
            row = await db.fetch_one("SELECT name FROM cart_users WHERE id = ?", user.id)
            return row is not None and row["name"] == "Marker"

        await eventually(marker_applied)
        carts = await db.fetch_one("SELECT COUNT(*) AS n FROM carts WHERE user_id = ?", user.id)
        claims = await db.fetch_one("SELECT COUNT(*) AS n FROM inbox WHERE event_id = ?", first.eventId)
    assert (carts["n"], claims["n"]) == (1, 1)
    cart = await ask_cart(platform, user.id)
    assert isinstance(cart, CartView) and cart.userId == user.id and cart.items == []


async def test_a_deleted_user_loses_the_cart_for_good(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    admin = await platform.admin_token()
    [product] = await catalog(platform, ("Dune", 12.5))
    assert (await add(platform, token, product)).status == 201

    assert (await platform.request("DELETE", f"/users/{user['id']}", token=token)).status == 200

    async def cart_gone():
        return (await platform.get(f"/carts/{user['id']}", token=admin)).status == 404

    await eventually(cart_gone)
    # A late (re)delivered USER_CREATED or USER_UPDATED must not bring it back.
    data = UserData(id=user["id"], name=user["name"], email=user["email"], role="user", accountStatus="active")
    platform.publish_twice(USER_CREATED, user["id"], data)
    platform.publish_twice(USER_UPDATED, user["id"], data)
    async with cart_db(platform) as db:
        async def all_applied():
            row = await db.fetch_one("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'cart'")
            return row["n"] >= 5  # admin + user created, user deleted, and the two above
        await eventually(all_applied)
    assert (await platform.get(f"/carts/{user['id']}", token=admin)).status == 404


# -- adding items --------------------------------------------------------------------------
async def test_adding_snapshots_the_product_and_increases_the_line(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    dune, emma = await catalog(platform, ("Dune", 12.5), ("Emma", 0.1))

    first = await add(platform, token, dune, 2)
    assert first.status == 201
    assert first.body["items"] == [{"productId": dune, "productName": "Dune", "quantity": 2,
                                    "unitPrice": 12.5, "lineTotal": 25.0, "available": True}]
    await add(platform, token, emma, 3)
    defaulted = await platform.post("/carts/me/items", token=token, json={"productId": dune})
    assert defaulted.status == 201
    cart = (await platform.get("/carts/me", token=token)).body
    assert lines(cart) == {dune: 3, emma: 3}
    assert [item["productId"] for item in cart["items"]] == [dune, emma]  # in the order added
    assert (cart["totalQuantity"], cart["totalAmount"]) == (6, 37.8)


async def test_the_snapshot_holds_until_the_product_is_added_again(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    admin = await platform.admin_token()
    [dune] = await catalog(platform, ("Dune", 12.5))
    await add(platform, token, dune)
    await platform.request("PATCH", f"/products/{dune}", token=admin, json={"price": 15, "name": "Dune II"})

    item = (await platform.get("/carts/me", token=token)).body["items"][0]
    assert (item["productName"], item["unitPrice"]) == ("Dune", 12.5)
    item = (await add(platform, token, dune)).body["items"][0]
    assert (item["productName"], item["unitPrice"], item["quantity"], item["lineTotal"]) == (
        "Dune II", 15, 2, 30)


async def test_adding_a_missing_or_deleted_product_is_404(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    admin = await platform.admin_token()
    [dune] = await catalog(platform, ("Dune", 12.5))
    missing = await add(platform, token, 999)
    assert missing.status == 404 and missing.body["message"] == "Product 999 not found"
    await platform.request("DELETE", f"/products/{dune}", token=admin)
    assert (await add(platform, token, dune)).status == 404
    assert (await platform.get("/carts/me", token=token)).body["items"] == []


async def test_bad_add_bodies_are_400(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    [dune] = await catalog(platform, ("Dune", 12.5))
    for body, problem in [({"productId": "one", "quantity": 1}, "productId"),
                          ({"productId": dune, "quantity": "2"}, "quantity"),
                          ({"productId": dune, "quantity": 0}, "quantity"),
                          ({"productId": dune, "quantity": 1000}, "quantity"),
                          ({"productId": dune, "quantity": 1.5}, "quantity"),
                          ({"productId": 0}, "productId"),
                          ({"quantity": 1}, "productId")]:
        reply = await platform.post("/carts/me/items", token=token, json=body)
        assert reply.status == 400, (body, reply)
        assert problem in reply.body["message"], (body, reply)
    for raw in (b"{oops", b"", b'"text"'):
        reply = await platform.post("/carts/me/items", token=token, data=raw,
                                    headers={"Content-Type": "application/json"})
        assert reply.status == 400, (raw, reply)


async def test_only_shoppers_change_carts(make_platform):
    platform = await make_platform(SERVICES)
    [dune] = await catalog(platform, ("Dune", 12.5))
    admin = await platform.admin_token()
    supplier = mint_token(platform, 9001, "supplier")
    body = {"productId": dune, "quantity": 1}
    assert (await platform.post("/carts/me/items", json=body)).status == 401
    assert (await platform.post("/carts/me/items", json=body, token="garbage")).status == 401
    for token in (admin, supplier):
        reply = await platform.post("/carts/me/items", json=body, token=token)
        assert reply.status == 403 and reply.body["message"] == "Requires role: user"
        assert (await platform.request("PATCH", f"/carts/me/items/{dune}", json={"quantity": 2},
                                       token=token)).status == 403
        assert (await platform.request("DELETE", f"/carts/me/items/{dune}", token=token)).status == 403
        assert (await platform.request("DELETE", "/carts/me", token=token)).status == 403
    assert (await platform.get("/carts/me", token=admin)).status == 200  # an admin still reads their own


async def test_line_limit_and_one_currency_per_cart_are_409(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    dune, euro_book = await catalog(platform, ("Dune", 12.5), ("Le Petit Prince", 9, "EUR"))
    assert (await add(platform, token, dune, 999)).status == 201
    over = await add(platform, token, dune, 1)
    assert over.status == 409 and "at most 999" in over.body["message"]
    mixed = await add(platform, token, euro_book, 1)
    assert mixed.status == 409 and "EUR" in mixed.body["message"]
    assert lines((await platform.get("/carts/me", token=token)).body) == {dune: 999}


async def test_product_service_down_is_503(make_platform):
    platform = await make_platform(["gateway", "user", "cart"])
    _, token = await platform.new_user()
    reply = await add(platform, token, 1)
    assert reply.status == 503
    assert reply.body["message"] == "product service is not available"


# -- changing and removing items -----------------------------------------------------------
async def test_set_quantity_remove_and_clear(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    dune, emma = await catalog(platform, ("Dune", 12.5), ("Emma", 8))
    await add(platform, token, dune)
    await add(platform, token, emma, 2)

    patched = await platform.request("PATCH", f"/carts/me/items/{dune}", token=token, json={"quantity": 4})
    assert patched.status == 200 and lines(patched.body) == {dune: 4, emma: 2}
    assert patched.body["totalAmount"] == 66
    removed = await platform.request("DELETE", f"/carts/me/items/{emma}", token=token)
    assert removed.status == 200 and lines(removed.body) == {dune: 4}
    again = await platform.request("DELETE", f"/carts/me/items/{emma}", token=token)
    assert again.status == 404 and again.body["message"] == f"Product {emma} is not in the cart"
    not_there = await platform.request("PATCH", f"/carts/me/items/{emma}", token=token, json={"quantity": 1})
    assert not_there.status == 404

    cleared = await platform.request("DELETE", "/carts/me", token=token)
    assert cleared.status == 200 and cleared.body["items"] == [] and cleared.body["totalAmount"] == 0
    assert (await platform.get("/carts/me", token=token)).body["items"] == []


async def test_bad_item_changes_are_400_or_401(make_platform):
    platform = await make_platform(SERVICES)
    _, token = await platform.new_user()
    [dune] = await catalog(platform, ("Dune", 12.5))
    await add(platform, token, dune)
    path = f"/carts/me/items/{dune}"
    for body in ({"quantity": 0}, {"quantity": "3"}, {"quantity": None}, {}, {"quantity": 1000}):
        reply = await platform.request("PATCH", path, token=token, json=body)
        assert reply.status == 400 and "quantity" in reply.body["message"], (body, reply)
    bad_id = await platform.request("PATCH", "/carts/me/items/abc", token=token, json={"quantity": 1})
    assert bad_id.status == 400 and "productId" in bad_id.body["message"]
    assert (await platform.request("DELETE", "/carts/me/items/-1", token=token)).status == 400
    assert (await platform.request("PATCH", path, json={"quantity": 2})).status == 401
    assert (await platform.request("DELETE", path)).status == 401
    assert (await platform.request("DELETE", "/carts/me")).status == 401
    assert lines((await platform.get("/carts/me", token=token)).body) == {dune: 1}


# -- reading someone's cart ----------------------------------------------------------------
async def test_a_cart_by_user_id_for_its_owner_or_an_admin(make_platform):
    platform = await make_platform(SERVICES)
    owner, owner_token = await platform.new_user()
    _, other_token = await platform.new_user()
    admin = await platform.admin_token()
    [dune] = await catalog(platform, ("Dune", 12.5))
    await add(platform, owner_token, dune, 2)
    path = f"/carts/{owner['id']}"

    mine = await platform.get(path, token=owner_token)
    assert mine.status == 200 and lines(mine.body) == {dune: 2}
    assert (await platform.get(path, token=admin)).body == mine.body
    forbidden = await platform.get(path, token=other_token)
    assert forbidden.status == 403 and forbidden.body["message"] == "Only the owner or an admin may do this"
    assert (await platform.get(path)).status == 401
    assert (await platform.get("/carts/abc", token=admin)).status == 400
    assert (await platform.get("/carts/0", token=admin)).status == 400
    assert (await platform.get("/carts/99999", token=admin)).status == 404


async def test_get_cart_request_for_the_order_service(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    [dune] = await catalog(platform, ("Dune", 12.5))
    await add(platform, token, dune, 2)
    cart = await ask_cart(platform, user["id"])
    assert isinstance(cart, CartView)
    assert (cart.userId, cart.totalQuantity, cart.totalAmount) == (user["id"], 2, 25.0)
    assert [(line.productId, line.productName, line.unitPrice) for line in cart.items] == [(dune, "Dune", 12.5)]
    try:
        await ask_cart(platform, 31337)
    except NotFound:
        pass
    else:
        raise AssertionError("no cart must be NotFound")


# -- paid orders ---------------------------------------------------------------------------
async def test_order_paid_removes_what_was_bought_once(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    dune, emma, runner = await catalog(platform, ("Dune", 12.5), ("Emma", 8), ("Runner", 89))
    await add(platform, token, dune, 5)
    await add(platform, token, emma, 2)
    await add(platform, token, runner, 2)

    platform.publish_twice(ORDER_PAID, 71, order_paid(71, user["id"], (dune, 2), (emma, 2)))
    # A different event with the same key lands on the same worker after both copies.
    platform.publish_twice(ORDER_PAID, 71, order_paid(71, user["id"], (runner, 1)))

    async def runner_reduced():
        cart = (await platform.get("/carts/me", token=token)).body
        return cart if lines(cart).get(runner) == 1 else None

    cart = await eventually(runner_reduced)
    assert lines(cart) == {dune: 3, runner: 1}  # 2 Dune taken once, Emma's line gone
    assert (cart["totalQuantity"], cart["totalAmount"]) == (4, 126.5)


async def test_order_paid_for_unknown_carts_or_products_changes_nothing(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    [dune] = await catalog(platform, ("Dune", 12.5))
    await add(platform, token, dune, 1)
    platform.publish_twice(ORDER_PAID, 5, order_paid(5, 123456, (dune, 1)))  # someone without a cart
    platform.publish_twice(ORDER_PAID, 5, order_paid(5, user["id"], (dune + 100, 1)))  # not in this cart
    async with cart_db(platform) as db:
        async def both_applied():
            row = await db.fetch_one("SELECT COUNT(*) AS n FROM inbox WHERE consumer = 'cart'")
            return row["n"] >= 4  # admin + user created, the two orders
        await eventually(both_applied)
    assert lines((await platform.get("/carts/me", token=token)).body) == {dune: 1}


def _fields(user: UserData) -> dict:
    return {name: getattr(user, name) for name in user.__struct_fields__}
