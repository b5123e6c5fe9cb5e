"""Actor systems on the Kafka bus: outbox → broker → inbox, with a real broker (Tansu)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from mc_testkit import contains, equals, eventually, schema_dir_with

from microcommerce.actors import outbox
from microcommerce.actors.bus import LocalBus
from microcommerce.actors.requests import current_request_id
from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.actors.system import ActorSystem
from microcommerce.config import load_settings
from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import USER_EVENTS, EventEnvelope, new_event
from microcommerce.contracts.user import USER_UPDATED, UserData
from microcommerce.kafka import KafkaBus, open_kafka_bus
from microcommerce.node import open_bus
from microcommerce.storage import open_database

SCHEMA = """CREATE TABLE accounts (id {{pk}}, name VARCHAR(200) NOT NULL);
CREATE TABLE applied (id {{pk}}, event_id VARCHAR(64) NOT NULL);
"""


class CreateAccount(Command, frozen=True):
    name: str


class PendingOutbox(Command, frozen=True):
    pass


class AppliedIds(Command, frozen=True):
    pass


class Producer(ServiceActor):
    @handles(CreateAccount)
    async def create(self, cmd: CreateAccount) -> EventEnvelope:
        async with self.db.transaction() as tx:
            result = await tx.execute("INSERT INTO accounts (name) VALUES (?)", cmd.name)
            user_id = result.lastrowid
            envelope = await self.emit(tx, USER_UPDATED, user_id, UserData(
                id=user_id, name=cmd.name, email=f"{cmd.name}@example.com", role="user",
                accountStatus="active"))
        return envelope

    @handles(PendingOutbox)
    async def pending(self, cmd: PendingOutbox) -> int:
        return await outbox.count_pending(self.db)


class Consumer(ServiceActor):
    @on_event(USER_UPDATED)
    async def on_user_updated(self, tx, data: UserData, envelope: EventEnvelope) -> None:
        await tx.execute("INSERT INTO applied (event_id) VALUES (?)", envelope.eventId)

    @handles(AppliedIds)
    async def applied(self, cmd: AppliedIds) -> list[str]:
        return [row["event_id"] for row in await self.db.fetch_all("SELECT event_id FROM applied ORDER BY id")]


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    return schema_dir_with(tmp_path, SCHEMA)


async def test_a_committed_change_reaches_another_system_once_through_kafka(kafka_broker, schema_dir):
    settings = load_settings({"ephemeral": True, "workers": 2, "outbox_poll_ms": 200,
                              "bus_url": kafka_broker.url}, env={})
    # Two processes' worth of bus: the producer's and the consumer's (their own clients).
    producer_bus, consumer_bus = open_kafka_bus(settings), open_kafka_bus(settings)
    suffix = uuid.uuid4().hex[:8]
    producer = ActorSystem(f"kproducer{suffix}", settings, producer_bus, Producer, schema_dir=schema_dir)
    consumer = ActorSystem(f"kconsumer{suffix}", settings, consumer_bus, Consumer, schema_dir=schema_dir)
    systems: list[tuple[ActorSystem, KafkaBus]] = []
    try:
        for system, bus in ((consumer, consumer_bus), (producer, producer_bus)):
            bus.start()
            await system.migrate()
            await system.start()
            systems.append((system, bus))
        first = await producer.ask(CreateAccount(name="alice"))
        assert await eventually(lambda: equals(consumer.ask(AppliedIds()), [first.eventId]), timeout=20)
        assert await eventually(lambda: equals(producer.ask(PendingOutbox()), 0))
        assert producer_bus.published >= 1

        # While the broker is down the row stays unpublished: it is marked only after the ack.
        kafka_broker.pause()
        try:
            second = await producer.ask(CreateAccount(name="bob"))
            await asyncio.sleep(1.0)  # the outage itself
            assert await producer.ask(PendingOutbox()) == 1
        finally:
            kafka_broker.resume()
        assert await eventually(lambda: equals(producer.ask(PendingOutbox()), 0), timeout=20)

        # A copy of the first event (as an at-least-once transport may deliver) is applied once;
        # a later event on the same key arrives after it, so once that one is in, so was the copy.
        key = str(first.data.id)
        producer_bus.publish(USER_EVENTS, key, first)
        third = new_event(USER_UPDATED, "test-producer", first.data)
        producer_bus.publish(USER_EVENTS, key, third)
        expected = [first.eventId, second.eventId, third.eventId]
        assert await eventually(lambda: contains(consumer.ask(AppliedIds()), third.eventId), timeout=20)
        assert await consumer.ask(AppliedIds()) == expected
    finally:
        for system, bus in reversed(systems):
            await system.stop()
            await asyncio.to_thread(bus.stop)




class AppendQuietly(Command, frozen=True):
    """Commit a row and its outbox event without waking the relay: only a stop will send it."""

    name: str


class QuietProducer(Producer):
    @handles(AppendQuietly)
    async def append_quietly(self, cmd: AppendQuietly) -> str:
        async with self.db.transaction() as tx:
            result = await tx.execute("INSERT INTO accounts (name) VALUES (?)", cmd.name)
            envelope = await outbox.append(tx, "test-producer", USER_UPDATED, result.lastrowid, UserData(
                id=result.lastrowid, name=cmd.name, email=f"{cmd.name}@example.com", role="user",
                accountStatus="active"))
        return envelope.eventId


async def test_a_graceful_stop_publishes_what_was_committed_and_waits_for_the_broker(
        kafka_broker, schema_dir, tmp_path):
    settings = load_settings({"database_url": f"sqlite:///{tmp_path}/{{service}}.db", "workers": 1,
                              "outbox_poll_ms": 60_000, "bus_url": kafka_broker.url}, env={})
    bus = open_kafka_bus(settings)
    bus.start()
    producer = ActorSystem(f"kquiet{uuid.uuid4().hex[:8]}", settings, bus, QuietProducer, schema_dir=schema_dir)
    await producer.migrate()
    await producer.start()
    try:
        await producer.ask(PendingOutbox())  # the relay's start-up flush is over
        await producer.ask(AppendQuietly(name="carol"))
        assert await producer.ask(PendingOutbox()) == 1
    finally:
        await producer.stop()
        await asyncio.to_thread(bus.stop)
    db = open_database(producer.database_url)
    await db.connect()
    try:
        assert await outbox.count_pending(db) == 0  # sent at stop and acknowledged before it ended
    finally:
        await db.close()


class TracingConsumer(ServiceActor):
    """Records the request id each event was applied under."""

    @on_event(USER_UPDATED)
    async def on_user_updated(self, tx, data: UserData, envelope: EventEnvelope) -> None:
        await tx.execute("INSERT INTO applied (event_id) VALUES (?)", current_request_id.get() or "-")

    @handles(AppliedIds)
    async def applied(self, cmd: AppliedIds) -> list[str]:
        return [row["event_id"] for row in await self.db.fetch_all("SELECT event_id FROM applied ORDER BY id")]


@pytest.mark.parametrize("transport", ["local", "kafka"])
async def test_the_request_id_of_a_write_follows_its_event_to_the_consumer(transport, kafka_broker, schema_dir):
    settings = load_settings({"ephemeral": True, "workers": 1, "outbox_poll_ms": 200,
                              "bus_url": kafka_broker.url if transport == "kafka" else "local"}, env={})
    suffix = uuid.uuid4().hex[:8]
    buses = [open_bus(settings) for _ in range(2)] if transport == "kafka" else [LocalBus()] * 2
    consumer = ActorSystem(f"ktrace{suffix}", settings, buses[1], TracingConsumer, schema_dir=schema_dir)
    producer = ActorSystem(f"ksource{suffix}", settings, buses[0], Producer, schema_dir=schema_dir)
    started = []
    try:
        for system, bus in ((consumer, buses[1]), (producer, buses[0])):
            bus.start()
            await system.migrate()
            await system.start()
            started.append((system, bus))
        token = current_request_id.set("trace-4711")  # as the HTTP middleware sets it
        try:
            await producer.ask(CreateAccount(name="dora"))
        finally:
            current_request_id.reset(token)
        # (the topic may hold other tests' events: this group reads it from the start)
        assert await eventually(lambda: contains(consumer.ask(AppliedIds()), "trace-4711"), timeout=20)
    finally:
        for system, bus in reversed(started):
            await system.stop()
            await asyncio.to_thread(bus.stop)
