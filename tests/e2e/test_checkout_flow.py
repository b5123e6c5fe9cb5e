"""Issue 3's done-criterion, through the gateway only, as a new user and an admin would."""

from mc_testkit import eventually

ALL = ["gateway", "user", "cart", "order", "product", "inventory", "search", "payment",
       "notification", "audit"]


async def _catalog_product(platform, admin: str, stock: int) -> dict:
    category = await platform.post("/categories", token=admin, json={"name": "Lamps"})
    assert category.status == 201, category
    product = await platform.post("/products", token=admin, json={
        "categoryId": category.body["id"], "name": "Desk lamp", "price": 19.99, "stockQuantity": stock})
    assert product.status == 201, product
    return product.body


async def _stock(platform, product_id: int) -> dict:
    reply = await platform.get(f"/inventory/{product_id}")
    assert reply.status == 200, reply
    return reply.body


async def _search_stock(platform, product_id: int) -> int | None:
    reply = await platform.get("/search/products?q=desk")
    found = [item for item in reply.body["items"] if item["id"] == product_id]
    return found[0]["availableQuantity"] if found else None


async def test_a_paid_order_flows_through_every_service(make_platform):
    await _paid_order_flow(await make_platform(ALL))


async def test_the_same_flow_on_mariadb(mysql_database_template, make_platform):
    # The template fixture comes first so its databases are dropped after the platform stops.
    await _paid_order_flow(await make_platform(ALL, database_url=mysql_database_template))


async def _paid_order_flow(platform) -> None:
    admin = await platform.admin_token()
    product = await _catalog_product(platform, admin, stock=10)
    pid = product["id"]
    user, token = await platform.new_user()

    assert (await platform.post("/carts/me/items", token=token, json={"productId": pid, "quantity": 2})).status == 201
    order = await platform.post("/orders/me", token=token, json={"productId": pid})
    assert order.status == 201, order
    assert (order.body["status"], order.body["totalAmount"]) == ("pending", 39.98)
    oid = order.body["id"]
    assert await _stock(platform, pid) == {"productId": pid, "totalQuantity": 10, "reservedQuantity": 2,
                                           "availableQuantity": 8, "soldQuantity": 0, "discontinued": False}

    paid = await platform.post(f"/payments/me/orders/{oid}/charge", token=token,
                               json={"provider": "stripe", "paymentToken": "tok_visa", "amount": 0.01})
    assert paid.status == 201, paid
    assert (paid.body["status"], paid.body["amount"]) == ("succeeded", 39.98)
    assert (await platform.get(f"/orders/{oid}", token=token)).body["status"] == "paid"

    # The bought items leave the cart.
    async def cart_emptied():
        return (await platform.get("/carts/me", token=token)).body["items"] == []
    assert await eventually(cart_emptied)

    # Shipping confirms the reservation: stock is deducted for good.
    shipped = await platform.request("PATCH", f"/orders/{oid}/status", token=admin, json={"status": "shipped"})
    assert shipped.status == 200, shipped
    assert await _stock(platform, pid) == {"productId": pid, "totalQuantity": 8, "reservedQuantity": 0,
                                           "availableQuantity": 8, "soldQuantity": 2, "discontinued": False}

    # One notification per channel for the payment.
    async def payment_notes():
        notes = (await platform.get("/notifications/me?limit=200", token=token)).body["notifications"]
        channels = sorted(n["channel"] for n in notes if n["type"] == "PAYMENT_SUCCEEDED")
        return channels if channels == ["email", "push", "sms"] else None
    assert await eventually(payment_notes)

    # The search index shows the new stock; the audit log shows the events.
    assert await eventually(lambda: _search_is(platform, pid, 8))

    async def audited():
        reply = await platform.get("/audit/logs?logType=event&limit=200", token=admin)
        types = {item["eventType"] for item in reply.body["items"]}
        wanted = {"USER_CREATED", "PRODUCT_CREATED", "ORDER_CREATED", "STOCK_RESERVED",
                  "PAYMENT_SUCCEEDED", "ORDER_PAID", "ORDER_SHIPPED", "STOCK_CONFIRMED"}
        return wanted <= types
    assert await eventually(audited)


async def _search_is(platform, pid: int, expected: int) -> bool:
    return await _search_stock(platform, pid) == expected


async def test_a_declined_card_takes_no_money_and_cancelling_releases_the_stock(make_platform):
    platform = await make_platform(ALL)
    admin = await platform.admin_token()
    pid = (await _catalog_product(platform, admin, stock=5))["id"]
    _, token = await platform.new_user()
    assert (await platform.post("/carts/me/items", token=token, json={"productId": pid, "quantity": 3})).status == 201
    oid = (await platform.post("/orders/me/checkout", token=token)).body["id"]

    declined = await platform.post(f"/payments/me/orders/{oid}/charge", token=token,
                                   json={"paymentToken": "tok_chargeDeclined"})
    assert declined.status == 402, declined
    assert declined.body["status"] == "failed" and declined.body["failureReason"] == "card_declined"
    assert (await platform.get(f"/orders/{oid}", token=token)).body["status"] == "pending"
    payments = (await platform.get("/payments/me", token=token)).body["payments"]
    assert [p["status"] for p in payments] == ["failed"]
    assert (await _stock(platform, pid))["reservedQuantity"] == 3

    cancelled = await platform.request("PATCH", f"/orders/{oid}/cancel", token=token)
    assert cancelled.status == 200, cancelled
    assert cancelled.body["status"] == "cancelled"
    assert await _stock(platform, pid) == {"productId": pid, "totalQuantity": 5, "reservedQuantity": 0,
                                           "availableQuantity": 5, "soldQuantity": 0, "discontinued": False}
    assert await eventually(lambda: _search_is(platform, pid, 5))
