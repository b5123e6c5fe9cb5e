"""The dead-letter queue: a poison event is parked durably with its error, shown to operators
(admin route and `microcommerce dlq list`), and redriven once its cause is fixed — applied once
however often it is redriven."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from mc_testkit import eventually, free_ports

from microcommerce.actors.bus import LocalBus
from microcommerce.actors.dlq import ListDeadLetters
from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.actors.system import ActorSystem
from microcommerce.cli import main as cli_main
from microcommerce.config import load_settings
from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import USER_EVENTS, EventEnvelope, new_event
from microcommerce.contracts.user import USER_DELETED, UserDeleted
from microcommerce.http.app import create_app
from microcommerce.http.auth import Principal, Revocations, TokenIssuer

SCHEMA = "CREATE TABLE deletions (event_id VARCHAR(64) NOT NULL, user_id INTEGER NOT NULL);\n"
CAUSE = {"broken": True}  # the "bug" an operator fixes before redriving


class Deletions(Command, frozen=True):
    pass


class DeletionsActor(ServiceActor):
    @on_event(USER_DELETED)
    async def on_deleted(self, tx, data: UserDeleted, envelope: EventEnvelope) -> None:
        await tx.execute("INSERT INTO deletions (event_id, user_id) VALUES (?, ?)", envelope.eventId, data.id)
        if CAUSE["broken"]:
            raise RuntimeError("deletions table is read-only today")

    @handles(Deletions)
    async def deletions(self, cmd: Deletions) -> list[int]:
        return [row["user_id"] for row in await self.db.fetch_all("SELECT user_id FROM deletions")]


class Service:
    def __init__(self, system: ActorSystem, bus: LocalBus, url: str, issuer: TokenIssuer,
                 session: aiohttp.ClientSession) -> None:
        self.system, self.bus, self.url, self.issuer, self.session = system, bus, url, issuer, session

    def token(self, role: str) -> str:
        return self.issuer.issue(Principal(id=1, role=role, email="ops@example.com"))

    async def call(self, method: str, path: str, *, role: str | None = "admin", body=None):
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    def poison(self, user_id: int) -> EventEnvelope:
        envelope = new_event(USER_DELETED, "user-service", UserDeleted(id=user_id, email=f"u{user_id}@example.com"))
        self.bus.publish(USER_EVENTS, str(user_id), envelope)
        return envelope


@pytest.fixture
async def service(tmp_path: Path):
    """A service named `cart` (so the CLI knows it) running this test's consumer on a file database."""
    CAUSE["broken"] = True
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "0001_deletions.sql").write_text(SCHEMA)
    database_url = f"sqlite:///{tmp_path}/{{service}}.db"
    settings = load_settings({"database_url": database_url, "workers": 2, "outbox_poll_ms": 100,
                              "event_max_attempts": 2, "access_log": False}, env={})
    bus = LocalBus()
    bus.declare(USER_EVENTS, "cart")
    system = ActorSystem("cart", settings, bus, DeletionsActor, schema_dir=schema)
    await system.migrate()
    await system.start()
    issuer = TokenIssuer(settings.jwt_secret, settings.jwt_ttl_s, Revocations())
    runner = web.AppRunner(create_app("cart", settings, issuer, system=system), access_log=None)
    await runner.setup()
    port = free_ports(1)[0]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = aiohttp.ClientSession()
    yield Service(system, bus, f"http://127.0.0.1:{port}", issuer, session)
    await session.close()
    await runner.cleanup()
    await system.stop()


async def parked(service: Service, status: str | None = None) -> list:
    return await service.system.ask(ListDeadLetters(status=status))


async def test_a_poison_event_is_parked_with_its_error_and_listed_for_admins(service):
    poison = service.poison(7)
    letters = await eventually(lambda: parked(service))
    assert (letters[0].eventId, letters[0].eventType, letters[0].topic, letters[0].attempts) == (
        poison.eventId, USER_DELETED, USER_EVENTS, 2)

    status, body = await service.call("GET", "/admin/dead-letters")
    assert status == 200
    [item] = body["items"]
    assert item["status"] == "parked" and item["consumer"] == "cart"
    assert "RuntimeError: deletions table is read-only today" in item["error"]
    assert json.loads(item["payload"])["eventId"] == poison.eventId

    assert (await service.call("GET", "/admin/dead-letters", role=None))[0] == 401
    assert (await service.call("GET", "/admin/dead-letters", role="user"))[0] == 403
    assert (await service.call("POST", "/admin/dead-letters/redrive", role="user", body={"all": True}))[0] == 403
    assert (await service.call("GET", "/admin/dead-letters?status=lost"))[0] == 400
    assert (await service.call("POST", "/admin/dead-letters/redrive", body={}))[0] == 400
    assert (await service.call("POST", "/admin/dead-letters/redrive", body={"ids": ["x"]}))[0] == 400


async def test_a_redrive_after_the_fix_applies_the_event_once_however_often_it_is_asked(service):
    poison = service.poison(8)
    [letter] = await eventually(lambda: parked(service))
    CAUSE["broken"] = False  # the operator fixed the cause

    status, body = await service.call("POST", "/admin/dead-letters/redrive", body={"ids": [letter.id]})
    assert (status, body) == (202, {"requested": 1})
    await eventually(lambda: parked(service, "redriven"))
    assert await service.system.ask(Deletions()) == [8]

    # Asking again redrives nothing; even a second delivery of the same event changes nothing.
    assert await service.call("POST", "/admin/dead-letters/redrive", body={"all": True}) == (202, {"requested": 0})
    service.bus.publish(USER_EVENTS, "8", poison)
    await asyncio.sleep(0.3)
    assert await service.system.ask(Deletions()) == [8]


async def test_a_redrive_that_fails_again_is_parked_again(service):
    service.poison(9)
    [letter] = await eventually(lambda: parked(service))
    assert await service.call("POST", "/admin/dead-letters/redrive", body={"all": True}) == (202, {"requested": 1})

    async def parked_again():
        letters = await parked(service, "parked")
        return letters and letters[0].attempts == 4 and letters

    [again] = await eventually(parked_again)
    assert again.id == letter.id  # one row per consumer and event
    assert await service.system.ask(Deletions()) == []


async def test_the_cli_lists_and_redrives_what_the_running_service_parked(service, tmp_path, capsys):
    poison = service.poison(10)
    await eventually(lambda: parked(service))
    database = ["--db", f"sqlite:///{tmp_path}/{{service}}.db", "--service", "cart"]

    await asyncio.to_thread(cli_main, ["dlq", "list", *database])
    out = capsys.readouterr().out
    assert poison.eventId in out and "parked" in out and "read-only today" in out and "1 dead letter(s)" in out

    CAUSE["broken"] = False
    await asyncio.to_thread(cli_main, ["dlq", "redrive", "--all", *database])
    assert "cart: 1 dead letter(s) marked for redrive" in capsys.readouterr().out
    await eventually(lambda: parked(service, "redriven"))  # the running relay picked it up
    assert await service.system.ask(Deletions()) == [10]

    await asyncio.to_thread(cli_main, ["dlq", "redrive", "--all", *database])
    assert "nothing to redrive" in capsys.readouterr().out
    await asyncio.to_thread(cli_main, ["dlq", "list", "--json", *database])
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["status"] == "redriven"
