"""Logout, and revocation state that a process learns from the user service when it starts later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
from mc_testkit import Platform, eventually, stop_platform
from mc_testkit import test_settings as settings_for

from microcommerce.actors.bus import LocalBus
from microcommerce.actors.requests import LocalRequester
from microcommerce.contracts.events import USER_EVENTS, EventEnvelope, utc_now_iso
from microcommerce.contracts.user import USER_LOGGED_OUT
from microcommerce.http.auth import Principal
from microcommerce.node import Node

PASSWORD = "password123"
SECRET = "one-secret-for-every-process-here"


async def put_user(platform: Platform, token: str, user_id: int, **changes: str):
    return await platform.request("PUT", f"/users/{user_id}", token=token, json=changes)


async def session_status(platform, token: str, service: str = "gateway") -> int:
    return (await platform.get("/auth/session", token=token, service=service)).status


async def test_logout_kills_that_token_everywhere_and_only_that_one(make_platform):
    platform = await make_platform(["gateway", "user", "cart", "audit"])
    logged_out: list[EventEnvelope] = []
    platform.node.bus.subscribe(USER_EVENTS, f"test-{uuid.uuid4().hex[:6]}",
                                lambda env, topic, key, done: logged_out.append(env)
                                if env.eventType == USER_LOGGED_OUT else None)
    user, token = await platform.new_user()
    other_token = await platform.login(user["email"])

    reply = await platform.post("/auth/logout", token=token)
    assert reply.status == 200 and reply.body == {"message": "Logged out"}

    assert await session_status(platform, token) == 401
    assert await session_status(platform, token, "user") == 401
    assert (await platform.get("/carts/me", token=token, service="cart")).status == 401
    assert (await platform.get("/carts/me", token=token)).status == 401
    assert await session_status(platform, other_token) == 200  # the user's other session lives on
    assert (await platform.get("/carts/me", token=other_token, service="cart")).status == 200

    # Twice is fine, through the gateway and directly, and announced once.
    assert (await platform.post("/auth/logout", token=token)).status == 200
    assert (await platform.post("/auth/logout", token=token, service="user")).status == 200
    async def announced():
        return logged_out

    envelope = (await eventually(announced))[0]
    assert (envelope.data.id, envelope.data.jti) == (user["id"], platform.node.issuer.identify(token).jti)
    await asyncio.sleep(0.1)
    assert len(logged_out) == 1


async def test_logout_needs_a_token_we_signed(make_platform):
    platform = await make_platform(["gateway", "user"])
    assert (await platform.post("/auth/logout")).status == 401
    reply = await platform.post("/auth/logout", token="garbage")
    assert reply.status == 401 and reply.body["message"] == "Invalid token"
    assert (await platform.post("/auth/logout", token="garbage", service="user")).status == 401


async def test_logout_is_audited(make_platform):
    platform = await make_platform(["gateway", "user", "audit"])
    user, token = await platform.new_user()
    assert (await platform.post("/auth/logout", token=token)).status == 200
    admin = await platform.admin_token()

    async def audited():
        reply = await platform.get(f"/audit/logs?eventType={USER_LOGGED_OUT}", token=admin)
        return reply.body["items"] if reply.status == 200 else None

    [record] = await eventually(audited)
    assert record["actorUserId"] == user["id"] and "logged out" in record["summary"]


@asynccontextmanager
async def nodes_on_one_bus() -> AsyncIterator[Callable[[list[str]], Awaitable[Platform]]]:
    """Start nodes sharing one bus, one requester and one JWT secret, as separate processes of one
    deployment."""
    bus, requester = LocalBus(), LocalRequester()
    started: list[Platform] = []

    async def start(services: list[str]) -> Platform:
        node = Node(settings_for(services, jwt_secret=SECRET), services, bus=bus, requester=requester)
        node.revocation_sync.RETRY_MAX_S = 0.05
        node.revocation_sync.REFRESH_S = 0.1
        await node.start()
        started.append(Platform(node, aiohttp.ClientSession()))
        return started[-1]

    try:
        yield start
    finally:
        for platform in reversed(started):
            await stop_platform(platform)


async def test_a_process_starting_later_learns_every_revocation_from_the_snapshot():
    """No event reaches a process that was not running: it must learn the state when it starts."""
    async with nodes_on_one_bus() as start:
        users = await start(["gateway", "user"])
        admin = await users.admin_token()
        blocked, blocked_token = await users.new_user()
        _, logged_out_token = await users.new_user()
        _, changed_token = await users.new_user()
        deleted, deleted_token = await users.new_user()
        demoted, _ = await users.new_user()
        assert (await put_user(users, admin, demoted["id"], role="admin")).status == 200
        demoted_token = await users.login(demoted["email"])
        _, fine_token = await users.new_user()

        assert (await put_user(users, admin, blocked["id"], accountStatus="blocked")).status == 200
        assert (await users.post("/auth/logout", token=logged_out_token)).status == 200
        assert (await users.post("/auth/reset-password", token=changed_token,
                                 json={"oldPassword": PASSWORD, "newPassword": "password456"})).status == 200
        assert (await users.request("DELETE", f"/users/{deleted['id']}", token=admin)).status == 200
        assert (await put_user(users, admin, demoted["id"], role="user")).status == 200

        cart = await start(["cart"])
        assert cart.node.revocation_sync.snapshots_applied == 1
        for token in (blocked_token, logged_out_token, changed_token, deleted_token, demoted_token):
            reply = await cart.get("/carts/me", token=token, service="cart")
            assert reply.status == 401 and reply.body["message"] == "Token revoked", reply
        # Authenticated (404: this process never saw the user's USER_CREATED, so no cart).
        assert (await cart.get("/carts/me", token=fine_token, service="cart")).status == 404


async def test_without_the_user_service_tokens_get_503_until_it_answers():
    async with nodes_on_one_bus() as start:
        cart = await start(["cart"])
        token = cart.node.issuer.issue(Principal(id=1, role="user"))
        reply = await cart.get("/carts/me", token=token, service="cart")
        assert reply.status == 503 and reply.headers["Retry-After"] == "1"
        assert "revocations" in reply.body["message"]
        assert (await cart.get("/carts/me", service="cart")).status == 401  # no token: plainly 401
        health = await cart.get("/health", service="cart")  # not ready: an orchestrator waits
        assert health.status == 503 and health.body["checks"]["revocations"] == "loading"

        await start(["user"])  # comes up later; the cart process keeps asking

        async def answered():
            return (await cart.get("/carts/me", token=token, service="cart")).status != 503

        await eventually(answered)
        assert (await cart.get("/health", service="cart")).status == 200


async def test_the_periodic_refresh_catches_a_change_whose_event_was_missed():
    async with nodes_on_one_bus() as start:
        users = await start(["gateway", "user"])
        user, token = await users.new_user()
        cart = await start(["cart"])
        assert (await cart.get("/carts/me", token=token, service="cart")).status == 404  # accepted
        db = users.system("user").open_database()
        await db.connect()
        try:  # a password change whose USER_PASSWORD_CHANGED never reached the cart process
            await db.execute("UPDATE users SET token_version = token_version + 1, updated_at = ? WHERE id = ?",
                             utc_now_iso(), user["id"])
        finally:
            await db.close()

        async def refused():
            return (await cart.get("/carts/me", token=token, service="cart")).status == 401

        await eventually(refused)
