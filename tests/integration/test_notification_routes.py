"""Notification service on a real platform: consumed events, per-channel records, routes, dev outbox."""

from __future__ import annotations

import re
from collections import Counter

import msgspec
from mc_testkit import eventually

from microcommerce.contracts import order as order_events
from microcommerce.contracts import payment as payment_events
from microcommerce.contracts import user as user_events
from microcommerce.contracts.order import OrderData, OrderLine
from microcommerce.contracts.payment import PaymentData
from microcommerce.contracts.user import PasswordResetRequested, UserData
from microcommerce.http.auth import Principal
from microcommerce.services.notification import SPEC as NOTIFICATION
from microcommerce.services.notification import store
from microcommerce.storage import migrate, open_database

CHANNELS = {"email", "sms", "push"}
SERVICES = ["gateway", "user", "notification"]


async def my_notifications(platform, token, query=""):
    reply = await platform.get(f"/notifications/me{query}", token=token)
    assert reply.status == 200, reply
    return reply.body


async def wait_for_type(platform, token, event_type, count):
    async def check():
        items = (await my_notifications(platform, token))["notifications"]
        found = [n for n in items if n["type"] == event_type]
        return found if len(found) >= count else None

    return await eventually(check)


async def outbox(platform, to):
    """The dev outbox holds everyone's reset codes: only an admin may read it."""
    reply = await platform.get(f"/notifications/dev/outbox?to={to}", token=await platform.admin_token())
    assert reply.status == 200, reply
    return reply.body["messages"]


async def test_signup_gets_a_welcome_on_every_channel(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    welcome = await wait_for_type(platform, token, "USER_CREATED", 3)
    assert {n["channel"] for n in welcome} == CHANNELS
    for n in welcome:
        assert n["userId"] == user["id"]
        assert n["status"] == "sent" and n["readAt"] is None
        assert n["title"] == "Welcome to MicroCommerce"
        assert n["body"].startswith(f"Hi {user['name']},")
    mails = await outbox(platform, user["email"])
    assert [(m["channel"], m["subject"]) for m in mails] == [("email", "Welcome to MicroCommerce")]
    assert mails[0]["notificationId"] in {n["id"] for n in welcome if n["channel"] == "email"}
    others = await outbox(platform, f"user:{user['id']}")
    assert sorted(m["channel"] for m in others) == ["push", "sms"]


async def test_reset_code_arrives_in_the_dev_outbox_and_works(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    reply = await platform.post("/auth/forgot-password", json={"email": user["email"]})
    assert reply.status == 200, reply

    async def reset_mail():
        mails = await outbox(platform, user["email"])
        return next((m for m in mails if m["subject"] == "Your password reset code"), None)

    mail = await eventually(reset_mail)
    otp = re.search(r"\b(\d{6})\b", mail["body"]).group(1)
    reply = await platform.post("/auth/reset-password/otp",
                                json={"email": user["email"], "otp": otp, "newPassword": "brand-new-pass"})
    assert reply.status == 200, reply
    assert await platform.login(user["email"], "brand-new-pass")

    # The history has one email record that does not repeat the code.
    records = await wait_for_type(platform, await platform.login(user["email"], "brand-new-pass"),
                                  "PASSWORD_RESET_REQUESTED", 1)
    assert [(n["channel"], otp in n["body"]) for n in records] == [("email", False)]


async def test_every_consumed_event_delivered_twice_makes_one_record_per_channel(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    uid = user["id"]
    await wait_for_type(platform, token, "USER_CREATED", 3)
    order = OrderData(id=900, userId=uid, status="pending", totalAmount=25.5, currency="USD",
                      items=[OrderLine(productId=1, productName="Mug", quantity=3, unitPrice=8.5, lineTotal=25.5)])
    pay = PaymentData(id=800, orderId=900, userId=uid, provider="stripe", providerPaymentId="ch_x",
                      status="succeeded", amount=25.5, currency="USD")
    events = [
        (user_events.USER_CREATED, UserData(id=uid, name=user["name"], email=user["email"], role="user",
                                            accountStatus="active")),
        (user_events.PASSWORD_RESET_REQUESTED, PasswordResetRequested(
            userId=uid, email=user["email"], name=user["name"], otp="654321", expiresAt="2030-01-01T00:00:00.000Z")),
        *[(name, order) for name in (order_events.ORDER_CREATED, order_events.ORDER_PAID, order_events.ORDER_SHIPPED,
                                     order_events.ORDER_DELIVERED, order_events.ORDER_CANCELLED)],
        *[(name, pay) for name in (payment_events.PAYMENT_SUCCEEDED, payment_events.PAYMENT_FAILED,
                                   payment_events.PAYMENT_REFUNDED)],
    ]
    # One key for all: they reach one worker in order, so once the sentinel (published last) is
    # recorded, every duplicate before it has been processed too.
    envelopes = [platform.publish_twice(name, uid, data) for name, data in events]
    sentinel = platform.publish_twice(order_events.ORDER_SHIPPED, uid, order)

    async def all_recorded():
        items = (await my_notifications(platform, token, "?limit=200"))["notifications"]
        return items if any(n["sourceEventId"] == sentinel.eventId for n in items) else None

    items = await eventually(all_recorded)
    per_event_channel = Counter((n["sourceEventId"], n["channel"]) for n in items)
    assert set(per_event_channel.values()) == {1}
    for envelope in envelopes:
        channels = {n["channel"] for n in items if n["sourceEventId"] == envelope.eventId}
        expected = {"email"} if envelope.eventType == user_events.PASSWORD_RESET_REQUESTED else CHANNELS
        assert channels == expected, envelope.eventType
        assert {n["type"] for n in items if n["sourceEventId"] == envelope.eventId} == {envelope.eventType}
    # Each email record was mailed exactly once.
    mails = await outbox(platform, user["email"])
    email_ids = [n["id"] for n in items if n["channel"] == "email"]
    assert sorted(m["notificationId"] for m in mails) == sorted(email_ids)
    shipped = next(n for n in items if n["type"] == "ORDER_SHIPPED" and n["channel"] == "email")
    assert shipped["title"] == "Order #900 shipped" and shipped["body"].startswith(f"Hi {user['name']},")


async def test_read_and_unread(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    _, other_token = await platform.new_user()
    welcome = await wait_for_type(platform, token, "USER_CREATED", 3)
    assert (await my_notifications(platform, token))["unreadCount"] == 3
    target = welcome[0]["id"]

    reply = await platform.request("PATCH", f"/notifications/me/{target}/read", token=token)
    assert reply.status == 200, reply
    assert reply.body["id"] == target and reply.body["readAt"] is not None
    first_read_at = reply.body["readAt"]
    again = await platform.request("PATCH", f"/notifications/me/{target}/read", token=token)
    assert again.status == 200 and again.body["readAt"] == first_read_at
    listing = await my_notifications(platform, token)
    assert listing["unreadCount"] == 2
    assert [n["readAt"] is not None for n in listing["notifications"] if n["id"] == target] == [True]

    # Someone else's notification looks like a missing one.
    reply = await platform.request("PATCH", f"/notifications/me/{target}/read", token=other_token)
    assert reply.status == 404 and "message" in reply.body
    reply = await platform.request("PATCH", "/notifications/me/999999/read", token=token)
    assert reply.status == 404
    reply = await platform.request("PATCH", "/notifications/me/abc/read", token=token)
    assert reply.status == 400 and reply.body["message"] == "notificationId must be a positive integer"
    reply = await platform.request("PATCH", f"/notifications/me/{target}/read")
    assert reply.status == 401


async def test_listing_limits_newest_first_and_owner_or_admin(make_platform):
    platform = await make_platform(SERVICES)
    user, token = await platform.new_user()
    _, other_token = await platform.new_user()
    await wait_for_type(platform, token, "USER_CREATED", 3)

    limited = await my_notifications(platform, token, "?limit=2")
    ids = [n["id"] for n in limited["notifications"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    assert limited["limit"] == 2
    assert (await my_notifications(platform, token, "?limit=200"))["limit"] == 200
    reply = await platform.get("/notifications/me?limit=5000", token=token)
    assert reply.status == 400 and reply.body["message"] == "limit must be an integer between 1 and 200"
    reply = await platform.get("/notifications/me?limit=abc", token=token)
    assert reply.status == 400 and "limit" in reply.body["message"]
    assert (await platform.get("/notifications/me")).status == 401

    path = f"/notifications/user/{user['id']}"
    own = await platform.get(path, token=token)
    assert own.status == 200 and len(own.body["notifications"]) == 3
    as_admin = await platform.get(path, token=await platform.admin_token())
    assert as_admin.status == 200 and as_admin.body["notifications"] == own.body["notifications"]
    stranger = await platform.get(path, token=other_token)
    assert stranger.status == 403 and "message" in stranger.body
    assert (await platform.get(path)).status == 401
    assert (await platform.get("/notifications/user/0", token=token)).status == 400


async def test_channels_are_configurable_and_the_dev_outbox_exists_only_in_dev(make_platform):
    platform = await make_platform(["notification"], profile="production", notification_channels=["email"])
    data = UserData(id=77, name="Zed", email="zed@example.com", role="user", accountStatus="active")
    platform.publish_twice(user_events.USER_CREATED, 77, data)
    token = platform.node.issuer.issue(Principal(id=77, role="user"))

    async def records():
        reply = await platform.get("/notifications/me", token=token, service="notification")
        return reply.body["notifications"] if reply.body["notifications"] else None

    assert [n["channel"] for n in await eventually(records)] == ["email"]
    reply = await platform.get("/notifications/dev/outbox?to=zed@example.com", service="notification")
    assert reply.status == 404
    assert reply.body == {"message": "Route not found: GET /notifications/dev/outbox"}


async def test_notification_sql_on_mariadb(mysql_db_url):
    """Dedup per (event, channel), the users projection and its tombstones on the production dialect."""
    db = open_database(mysql_db_url)
    await db.connect()
    try:
        await migrate(db, NOTIFICATION.schema_dir)
        record = store.NewNotification(user_id=7, channel="email", type="ORDER_PAID", title="t", body="b",
                                       source_event_id="event-1")
        async with db.transaction() as tx:
            first = await store.insert_notification(tx, record)
            assert first is not None
            assert await store.insert_notification(tx, record) is None
            assert await store.insert_notification(tx, msgspec.structs.replace(record, channel="sms")) is not None
            await store.upsert_user(tx, 7, "Alice", "alice@example.com")
            await store.upsert_user(tx, 7, "Alice B", "alice@example.com")
            await store.tombstone_user(tx, 8, "gone@example.com")
            await store.upsert_user(tx, 8, "Late", "gone@example.com")  # a late USER_CREATED
            await store.add_dev_message(tx, first, "email", "alice@example.com", "t", "b")
        assert await store.user(db, 7) == store.KnownUser(7, "Alice B", "alice@example.com")
        assert await store.user(db, 8) is None
        assert await store.unread_count(db, 7) == 2
        async with db.transaction() as tx:
            await store.mark_read(tx, first)
        assert await store.unread_count(db, 7) == 1
        assert [m["recipient"] for m in await store.dev_messages(db, "alice@example.com", 10)] == ["alice@example.com"]
        assert await store.dev_messages(db, "bob@example.com", 10) == []
    finally:
        await db.close()
