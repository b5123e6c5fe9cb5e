"""Issue 2's done-criterion, through the gateway only: a new user fills their cart from the catalog."""

from mc_testkit import eventually


async def test_new_user_adds_a_catalog_product_to_their_cart(make_platform):
    platform = await make_platform(["gateway", "user", "cart", "product"])
    user = await platform.signup(name="Bea", email="bea@example.com")
    token = await platform.login("bea@example.com")

    async def empty_cart():
        reply = await platform.get("/carts/me", token=token)
        return reply if reply.status == 200 else None

    cart = (await eventually(empty_cart)).body
    assert cart["userId"] == user["id"]
    assert cart["items"] == [] and cart["totalQuantity"] == 0 and cart["totalAmount"] == 0

    admin = await platform.admin_token()
    category = await platform.post("/categories", json={"name": "Books"}, token=admin)
    assert category.status == 201, category
    product = await platform.post("/products", token=admin, json={
        "categoryId": category.body["id"], "name": "Dune", "price": 12.5, "stockQuantity": 10})
    assert product.status == 201, product

    added = await platform.post("/carts/me/items", token=token,
                                json={"productId": product.body["id"], "quantity": 2})
    assert added.status == 201, added
    again = await platform.post("/carts/me/items", token=token,
                                json={"productId": product.body["id"], "quantity": 1})
    assert again.status == 201, again

    cart = (await platform.get("/carts/me", token=token)).body
    assert cart["items"] == [{"productId": product.body["id"], "productName": "Dune", "quantity": 3,
                              "unitPrice": 12.5, "lineTotal": 37.5, "available": True}]
    assert cart["totalQuantity"] == 3
    assert cart["totalAmount"] == 37.5
    assert cart["currency"] == "USD"
