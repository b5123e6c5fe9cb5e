"""At-least-once delivery, exactly-once effects: every event of a real checkout, delivered a
second time to every consumer, changes nothing in any service's database."""

from __future__ import annotations

import asyncio

from mc_testkit import eventually

from microcommerce.contracts.events import EventEnvelope
from microcommerce.storage import open_database

ALL = ["gateway", "user", "cart", "order", "product", "inventory", "search", "payment",
       "notification", "audit"]


async def snapshot(platform) -> dict[str, dict[str, list]]:
    """Every row of every table of every service (outbox: which events, not when published)."""
    state: dict[str, dict[str, list]] = {}
    for name, runtime in platform.node.services.items():
        if runtime.system is None:
            continue
        db = open_database(runtime.system.database_url)
        await db.connect()
        try:
            tables = [row["name"] for row in await db.fetch_all(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
            state[name] = {}
            for table in tables:
                columns = "id, topic, event_key, event_type" if table == "outbox" else "*"
                rows = await db.fetch_all(f"SELECT {columns} FROM {table}")
                state[name][table] = sorted(map(repr, rows))
        finally:
            await db.close()
    return state


async def settled(platform) -> dict:
    """A snapshot that stays the same for a moment: every projection has caught up."""
    previous = await snapshot(platform)
    while True:
        await asyncio.sleep(0.3)
        current = await snapshot(platform)
        if current == previous:
            return current
        previous = current


async def redeliver(platform, envelope: EventEnvelope, topic: str, key: str) -> int:
    """Hand the same envelope again to every consumer group of its topic; wait until handled."""
    groups = [g for g in platform.node.bus.subscriptions().get(topic, []) if g in platform.node.services]
    done = asyncio.Event()
    remaining = len(groups)
    loop = asyncio.get_running_loop()

    def handled(settled: bool = True) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            loop.call_soon_threadsafe(done.set)

    for group in groups:
        platform.node.system(group).deliver_event(envelope, topic, key, handled)
    if groups:
        await asyncio.wait_for(done.wait(), 10)
    return len(groups)


async def test_every_event_of_a_checkout_redelivered_changes_nothing(make_platform):
    platform = await make_platform(ALL)
    seen: list[tuple[EventEnvelope, str, str]] = []
    topics = ["user-events", "product-events", "order-events", "inventory-events", "payment-events",
              "audit-events"]
    for topic in topics:
        platform.node.bus.subscribe(topic, "test-recorder",
                                    lambda env, t, k, done: seen.append((env, t, k)))

    # A checkout touching every consumer: users, catalog, stock, orders, payments, refunds.
    admin = await platform.admin_token()
    category = await platform.post("/categories", token=admin, json={"name": "Tea"})
    product = await platform.post("/products", token=admin, json={
        "categoryId": category.body["id"], "name": "Sencha", "price": 7.5, "stockQuantity": 20})
    pid = product.body["id"]
    user, token = await platform.new_user()
    await platform.post("/auth/forgot-password", json={"email": user["email"]})
    await platform.request("PUT", f"/users/{user['id']}", token=token, json={"name": "Renamed"})
    assert (await platform.post("/carts/me/items", token=token, json={"productId": pid, "quantity": 3})).status == 201
    paid = (await platform.post("/orders/me", token=token, json={"productId": pid, "quantity": 1})).body["id"]
    assert (await platform.post(f"/payments/me/orders/{paid}/charge", token=token, json={})).status == 201
    assert (await platform.request("PATCH", f"/orders/{paid}/status", token=admin, json={"status": "shipped"})).status == 200
    assert (await platform.request("PATCH", f"/orders/{paid}/status", token=admin, json={"status": "delivered"})).status == 200
    refunded = (await platform.post("/orders/me", token=token, json={"productId": pid, "quantity": 1})).body["id"]
    assert (await platform.post(f"/payments/me/orders/{refunded}/charge", token=token, json={})).status == 201
    assert (await platform.request("PATCH", f"/orders/{refunded}/status", token=admin, json={"status": "cancelled"})).status == 200
    declined = (await platform.post("/orders/me", token=token, json={"productId": pid, "quantity": 1})).body["id"]
    await platform.post(f"/payments/me/orders/{declined}/charge", token=token, json={"paymentToken": "tok_chargeDeclined"})
    assert (await platform.request("PATCH", f"/products/{pid}", token=admin, json={"price": 8})).status == 200
    assert (await platform.request("PUT", f"/inventory/{pid}/stock", token=admin, json={"totalQuantity": 30})).status == 200

    before = await settled(platform)
    event_types = {env.eventType for env, _, _ in seen}
    assert {"USER_CREATED", "USER_UPDATED", "PASSWORD_RESET_REQUESTED", "PRODUCT_CREATED", "PRODUCT_UPDATED",
            "STOCK_RESERVED", "STOCK_RELEASED", "STOCK_CONFIRMED", "STOCK_UPDATED", "ORDER_CREATED",
            "ORDER_PAID", "ORDER_SHIPPED", "ORDER_DELIVERED", "ORDER_CANCELLED", "PAYMENT_CREATED",
            "PAYMENT_SUCCEEDED", "PAYMENT_FAILED", "PAYMENT_REFUNDED", "HTTP_ACTIVITY"} <= event_types

    deliveries = 0
    for envelope, topic, key in list(seen):
        deliveries += await redeliver(platform, envelope, topic, key)
    assert deliveries > len(seen)  # most events have several consumers

    after = await snapshot(platform)
    for service in before:
        assert after[service] == before[service], f"{service} changed on redelivery"
    # And the platform still works afterwards.
    assert await eventually(lambda: _order_status_is(platform, token, paid, "delivered"))


async def _order_status_is(platform, token: str, order_id: int, status: str) -> bool:
    return (await platform.get(f"/orders/{order_id}", token=token)).body["status"] == status
