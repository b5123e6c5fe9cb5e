"""No event is lost to `kill -9` or to a restart: the real program, killed at a random instant.

Every user the user service committed (acknowledged with 201 or not) must end up with a cart,
one welcome notification per channel and one USER_CREATED audit record, however the process
died. This is the outbox guarantee: a row is done only when every consumer group applied it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import subprocess
import uuid

import aiohttp
import pytest
from mc_process import CLI, ROOT, DevProcess, call
from mc_testkit import eventually

CHANNELS = {"email", "sms", "push"}
KILL_CYCLES = 3
SHOPPERS = 24


async def signup_burst(dev: DevProcess, acknowledged: dict[str, int], stop: asyncio.Event) -> None:
    """Concurrent signups until `stop`; records each one answered 201. Errors after the kill are
    expected: those signups have an unknown outcome and are checked like every other user."""
    counter = itertools.count()
    run = uuid.uuid4().hex[:6]

    async def shopper(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            email = f"crash-{run}-{next(counter)}@example.com"
            try:
                status, body = await call(session, "POST", dev.url() + "/auth/signup",
                                          json={"name": "Crash Test", "email": email, "password": "password123"})
            except (TimeoutError, aiohttp.ClientError, ValueError):
                await asyncio.sleep(0.01)
                continue
            if status == 201:
                acknowledged[email] = body["id"]

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(shopper(session) for _ in range(SHOPPERS)))


async def all_users(session: aiohttp.ClientSession, dev: DevProcess, admin: str) -> dict[str, int]:
    users: dict[str, int] = {}
    for offset in itertools.count(0, 500):
        status, body = await call(session, "GET", f"{dev.url()}/auth/users?limit=500&offset={offset}", token=admin)
        assert status == 200, body
        users.update({user["email"]: user["id"] for user in body["users"]})
        if len(body["users"]) < 500:
            return users


async def audited_user_ids(session: aiohttp.ClientSession, dev: DevProcess, admin: str) -> list[int]:
    ids: list[int] = []
    for page in itertools.count(1):
        status, body = await call(session, "GET",
                                  f"{dev.url()}/audit/logs?eventType=USER_CREATED&limit=200&page={page}", token=admin)
        assert status == 200, body
        items = body["items"]
        ids += [json.loads(item["payload"])["id"] for item in items]
        if len(items) < 200:
            return ids


async def missing_effects(session: aiohttp.ClientSession, dev: DevProcess, admin: str,
                          users: dict[str, int]) -> dict[str, list[int]]:
    """Users without their cart, their welcome per channel, or their one audit record."""
    missing: dict[str, list[int]] = {"cart": [], "welcome": [], "audit": []}
    audited = audited_user_ids(session, dev, admin)
    for user_id in users.values():
        status, _ = await call(session, "GET", f"{dev.url()}/carts/{user_id}", token=admin)
        if status != 200:
            missing["cart"].append(user_id)
        status, body = await call(session, "GET", f"{dev.url()}/notifications/user/{user_id}", token=admin)
        welcomes = [n["channel"] for n in body["notifications"] if n["type"] == "USER_CREATED"] if status == 200 else []
        if sorted(welcomes) != sorted(CHANNELS):
            missing["welcome"].append(user_id)
    counts = {user_id: 0 for user_id in users.values()}
    for user_id in await audited:
        if user_id in counts:
            counts[user_id] += 1
    missing["audit"] = [user_id for user_id, n in counts.items() if n != 1]
    return {kind: ids for kind, ids in missing.items() if ids}


@pytest.mark.timeout(180)
async def test_kill_9_during_a_signup_burst_loses_no_event(tmp_path):
    dev = DevProcess(tmp_path / "var")
    acknowledged: dict[str, int] = {}
    rng = random.Random()
    try:
        for _ in range(KILL_CYCLES):
            dev.start()
            await dev.wait_until_up()
            stop = asyncio.Event()
            burst = asyncio.create_task(signup_burst(dev, acknowledged, stop))
            await asyncio.sleep(rng.uniform(0.4, 1.5))
            dev.kill9()  # mid-burst: commits, relays and consumers are all in flight
            stop.set()
            await burst
        dev.start()
        await dev.wait_until_up()
        assert len(acknowledged) > 50, "the burst should have signed up users before each kill"

        async with aiohttp.ClientSession() as session:
            _, login = await call(session, "POST", dev.url() + "/auth/login",
                                  json={"email": "ops@example.com", "password": "ops-password-1"})
            admin = login["token"]
            users = await all_users(session, dev, admin)
            lost = {email for email in acknowledged if email not in users}
            assert not lost, f"acknowledged signups missing after restart: {sorted(lost)[:5]}"
            users.pop("ops@example.com")

            async def converged() -> bool:
                return not await missing_effects(session, dev, admin, users)

            try:
                await eventually(converged, timeout=20, interval=0.5)
            except AssertionError:
                problems = await missing_effects(session, dev, admin, users)
                raise AssertionError(f"of {len(users)} users, events were lost: "
                                     f"{ {k: v[:10] for k, v in problems.items()} }") from None
    finally:
        dev.stop()


@pytest.mark.timeout(90)
async def test_events_written_while_stopped_reach_services_that_start_later(tmp_path):
    """create-admin writes the user and its USER_CREATED outbox row with the platform stopped;
    at the next start the user relay runs before cart, notification and audit subscribe."""
    dev = DevProcess(tmp_path / "var")
    proc = subprocess.run([*CLI, "create-admin", "--email", "boss@example.com", "--password", "boss-password-1",
                           "--data-dir", str(dev.data_dir)], env=dev.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    try:
        dev.start()
        await dev.wait_until_up()
        async with aiohttp.ClientSession() as session:
            _, login = await call(session, "POST", dev.url() + "/auth/login",
                                  json={"email": "boss@example.com", "password": "boss-password-1"})
            admin = login["token"]
            users = await all_users(session, dev, admin)
            boss = {"boss@example.com": users["boss@example.com"]}

            async def converged() -> bool:
                return not await missing_effects(session, dev, admin, boss)

            await eventually(converged, timeout=10, interval=0.2)
    finally:
        dev.stop()
