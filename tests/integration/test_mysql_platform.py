"""The same gateway and user service on the real MariaDB (aiomysql) instead of SQLite."""

from __future__ import annotations

import os
import uuid

import pymysql
import pytest
from mc_testkit import ADMIN_EMAIL, Platform, eventually, start_platform, stop_platform

from microcommerce.contracts.events import USER_EVENTS
from microcommerce.contracts.user import PASSWORD_RESET_REQUESTED, USER_CREATED

SERVICES = ["gateway", "user"]


def admin_connection(server_url: str) -> pymysql.Connection:
    host_port = server_url.removeprefix("mysql://").split("@", 1)[1]
    host, _, port = host_port.partition(":")
    return pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)


def databases(server_url: str) -> set[str]:
    with admin_connection(server_url) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {name for (name,) in cur.fetchall()}


def drop_databases(server_url: str, prefix: str) -> None:
    with admin_connection(server_url) as conn, conn.cursor() as cur:
        for name in databases(server_url):
            if name.startswith(f"{prefix}_"):
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


class MysqlPlatforms:
    """Platforms whose services keep their data in `mctest_<unique>_{service}` on MariaDB."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.prefix = f"mctest_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.running: list[Platform] = []

    async def start(self, **overrides) -> Platform:
        platform = await start_platform(SERVICES, database_url=f"{self.server_url}/{self.prefix}_{{service}}",
                                        **overrides)
        self.running.append(platform)
        return platform

    async def stop(self, platform: Platform) -> None:
        self.running.remove(platform)
        await stop_platform(platform)

    async def close(self) -> None:
        for platform in list(self.running):
            await self.stop(platform)
        drop_databases(self.server_url, self.prefix)


@pytest.fixture
async def mysql_platforms(mysql_server_url):
    platforms = MysqlPlatforms(mysql_server_url)
    try:
        yield platforms
    finally:
        await platforms.close()


async def test_user_service_runs_on_mariadb(mysql_platforms):
    platform = await mysql_platforms.start()
    health = await platform.get("/health", service="user")
    assert health.status == 200 and health.body["checks"]["db"] == "ok"
    assert platform.system("user").database_url.endswith(f"/{mysql_platforms.prefix}_user")
    assert f"{mysql_platforms.prefix}_user" in databases(mysql_platforms.server_url)

    user = await platform.signup(name="Maria", email="maria@example.com")
    assert user["role"] == "user"
    token = await platform.login("maria@example.com")
    session = await platform.get("/auth/session", token=token)
    assert session.status == 200 and session.body["user"]["email"] == "maria@example.com"

    duplicate = await platform.post("/auth/signup", json={"name": "M2", "email": "MARIA@example.com",
                                                          "password": "password123"})
    assert duplicate.status == 409
    wrong = await platform.post("/auth/login", json={"email": "maria@example.com", "password": "nope-nope"})
    assert wrong.status == 401


async def test_events_leave_through_the_mysql_outbox(mysql_platforms):
    platform = await mysql_platforms.start()
    seen = []
    platform.node.bus.subscribe(USER_EVENTS, "test-mysql", lambda env, topic, key, done: seen.append(env))
    user = await platform.signup()

    async def created():
        return [e for e in seen if e.eventType == USER_CREATED and e.data.id == user["id"]]

    assert (await eventually(created))[0].data.email == user["email"]

    await platform.post("/auth/forgot-password", json={"email": user["email"]})

    async def otp():
        return [e.data.otp for e in seen if e.eventType == PASSWORD_RESET_REQUESTED]

    code = (await eventually(otp))[0]
    reply = await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": code,
                                                                  "newPassword": "maria-new-pass"})
    assert reply.status == 200
    assert (await platform.post("/auth/reset-password/otp", json={"email": user["email"], "otp": code,
                                                                  "newPassword": "again-new-pass"})).status == 400
    await platform.login(user["email"], "maria-new-pass")


async def test_data_survives_a_restart_on_mariadb(mysql_platforms):
    first = await mysql_platforms.start()
    user = await first.signup(email="durable@example.com")
    await mysql_platforms.stop(first)

    second = await mysql_platforms.start()
    token = await second.login("durable@example.com")
    session = await second.get("/auth/session", token=token)
    assert session.body["user"]["id"] == user["id"]
    admin = await second.admin_token()  # the bootstrap admin was found, not created twice
    users = (await second.get("/auth/users", token=admin)).body["users"]
    assert [u["email"] for u in users].count(ADMIN_EMAIL) == 1


async def test_revocations_survive_a_restart_on_mariadb(mysql_platforms):
    secret = "one-jwt-secret-kept-across-restarts"
    first = await mysql_platforms.start(jwt_secret=secret)
    admin = await first.admin_token()
    blocked, blocked_token = await first.new_user()
    deleted, deleted_token = await first.new_user()
    _, logged_out_token = await first.new_user()
    _, kept_token = await first.new_user()
    assert (await first.request("PUT", f"/users/{blocked['id']}", token=admin,
                                json={"accountStatus": "blocked"})).status == 200
    assert (await first.request("DELETE", f"/users/{deleted['id']}", token=admin)).status == 200
    assert (await first.post("/auth/logout", token=logged_out_token)).status == 200
    await mysql_platforms.stop(first)

    second = await mysql_platforms.start(jwt_secret=secret)
    for token in (blocked_token, deleted_token, logged_out_token):
        assert (await second.get("/auth/session", token=token)).status == 401
    assert (await second.get("/auth/session", token=kept_token)).status == 200
    assert (await second.post("/auth/logout", token=logged_out_token)).status == 200  # twice is fine
