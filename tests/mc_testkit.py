"""Test kit: start real platforms (real ports, real HTTP) and talk to them as a client would."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from microcommerce.config import Settings, load_settings
from microcommerce.contracts.events import EventEnvelope, event_type, new_event
from microcommerce.node import Node
from microcommerce.ports import free_ports  # noqa: F401 - the tests' import point

ADMIN_EMAIL = "admin@test.local"
ADMIN_PASSWORD = "admin-password-1"
_counter = itertools.count(1)


def test_settings(services: list[str], **overrides: Any) -> Settings:
    """Fast, isolated settings: in-memory SQLite, cheap bcrypt, free ports, quiet logs."""
    ports = dict(zip(services, free_ports(len(services)), strict=True))
    flags: dict[str, Any] = {
        "ephemeral": True,
        "password_hash_cost": 4,
        "access_log": False,
        "rate_limit_max": 100_000,
        "workers": 2,
        "outbox_poll_ms": 200,
        "bootstrap_admin_email": ADMIN_EMAIL,
        "bootstrap_admin_password": ADMIN_PASSWORD,
        "ports": ports,
    }
    flags.update(overrides)
    return load_settings(flags, env={})


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    def __repr__(self) -> str:  # shows up in assertion messages
        return f"Reply({self.status}, {self.body!r})"


class Platform:
    def __init__(self, node: Node, session: aiohttp.ClientSession) -> None:
        self.node = node
        self.session = session
        self.settings = node.settings

    def url(self, service: str = "gateway") -> str:
        return self.settings.url_of(service)

    def system(self, name: str):  # noqa: ANN201
        return self.node.system(name)

    async def request(self, method: str, path: str, *, service: str = "gateway", token: str | None = None,
                      json: Any = None, data: bytes | str | None = None,
                      headers: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.url(service) + path, json=json, data=data,
                                        headers=all_headers) as resp:
            text = await resp.text()
            try:
                body: Any = await resp.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(resp.status, body, resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def signup(self, *, name: str | None = None, email: str | None = None,
                     password: str = "password123") -> dict[str, Any]:
        n = next(_counter)
        email = email or f"user{n}-{uuid.uuid4().hex[:6]}@example.com"
        reply = await self.post("/auth/signup", json={"name": name or f"User {n}", "email": email,
                                                      "password": password})
        assert reply.status == 201, reply
        return reply.body

    async def login(self, email: str, password: str = "password123") -> str:
        reply = await self.post("/auth/login", json={"email": email, "password": password})
        assert reply.status == 200, reply
        return reply.body["token"]

    async def new_user(self, password: str = "password123") -> tuple[dict[str, Any], str]:
        """A signed-up, logged-in user whose cart exists (USER_CREATED consumed where relevant)."""
        user = await self.signup(password=password)
        token = await self.login(user["email"], password)
        if "cart" in self.node.services:
            await eventually(lambda: self._cart_exists(token))
        return user, token

    async def _cart_exists(self, token: str) -> bool:
        return (await self.get("/carts/me", token=token)).status == 200

    async def admin_token(self) -> str:
        return await self.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    async def deliver(self, service: str, envelope: EventEnvelope, key: object, times: int = 1) -> None:
        """Hand an event to one service's consumer `times` times, as the bus does, and wait until
        each copy is settled (applied, or recognised as a repeat)."""
        loop = asyncio.get_running_loop()
        handled = [asyncio.Event() for _ in range(times)]
        topic = event_type(envelope.eventType).topic
        for event in handled:
            self.system(service).deliver_event(envelope, topic, str(key),
                                               lambda settled, event=event: loop.call_soon_threadsafe(event.set))
        for event in handled:
            await asyncio.wait_for(event.wait(), 5)

    def publish_twice(self, event_name: str, key: object, data: Any) -> EventEnvelope:
        """Publish one envelope twice on the bus, as an at-least-once broker may."""
        envelope = new_event(event_name, "test-producer", data)
        topic = event_type(event_name).topic
        self.node.bus.publish(topic, str(key), envelope)
        self.node.bus.publish(topic, str(key), envelope)
        return envelope


def schema_dir_with(tmp_path: Path, sql: str) -> Path:
    """A one-migration schema folder for a test's own ServiceActor."""
    path = tmp_path / "schema"
    path.mkdir()
    (path / "0001_test.sql").write_text(sql)
    return path


async def equals(awaitable: Awaitable[Any], expected: Any) -> bool:
    """For `eventually`: does the answer equal `expected` yet?"""
    return await awaitable == expected


async def contains(awaitable: Awaitable[Any], item: Any) -> bool:
    """For `eventually`: is `item` in the answer yet?"""
    return item in await awaitable


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll an async check until it returns something truthy (projections converge asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result: {result!r})")
        await asyncio.sleep(interval)


async def start_platform(services: list[str], **overrides: Any) -> Platform:
    node = Node(test_settings(services, **overrides), services)
    if "user" not in services:
        node.revocations.loaded = True  # no user service to ask: the test stands in for it
    await node.start()
    session = aiohttp.ClientSession()
    return Platform(node, session)


async def stop_platform(platform: Platform) -> None:
    await platform.session.close()
    await platform.node.stop()
