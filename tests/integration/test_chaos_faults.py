"""Every fault family through the real ports, on real actor systems: nothing committed is lost
or applied twice, supervisors restart crashed workers, partitions and timeouts heal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mc_testkit import eventually, schema_dir_with

from microcommerce.actors.bus import LocalBus
from microcommerce.actors.requests import LocalRequester
from microcommerce.actors.service import ServiceActor, handles, on_event
from microcommerce.actors.system import ActorSystem
from microcommerce.chaos.faults import FaultPlan, chaos_wiring
from microcommerce.chaos.faulty_bus import FaultyBus
from microcommerce.chaos.faulty_requests import FaultyRequester
from microcommerce.config import load_settings
from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import USER_EVENTS, EventEnvelope
from microcommerce.contracts.user import USER_CREATED, UserData
from microcommerce.errors import InternalError, ServiceError, ServiceUnavailable, UpstreamTimeout

SCHEMA = """CREATE TABLE applied (
    id {{pk}},
    event_id VARCHAR(64) NOT NULL,
    user_id INTEGER NOT NULL
);
CREATE TABLE accounts (
    id {{pk}},
    name VARCHAR(200) NOT NULL UNIQUE
);
"""


class CreateAccount(Command, frozen=True):
    name: str


class Accounts(Command, frozen=True):
    pass


class Applied(Command, frozen=True):
    pass


class Pending(Command, frozen=True):
    pass


class Bump(Command, frozen=True):
    pass


class CallInventory(Command, frozen=True):
    pass


class ProducerActor(ServiceActor):
    @handles(CreateAccount)
    async def create(self, cmd: CreateAccount) -> int:
        async with self.db.transaction() as tx:
            if await tx.fetch_one("SELECT id FROM accounts WHERE name = ?", cmd.name):
                return 0  # a retry after a crash that came after the commit
            result = await tx.execute("INSERT INTO accounts (name) VALUES (?)", cmd.name)
            user_id = result.lastrowid
            await self.emit(tx, USER_CREATED, user_id, UserData(id=user_id, name=cmd.name, role="user",
                                                                email=f"u{user_id}@example.com",
                                                                accountStatus="active"))
        return user_id

    @handles(Accounts)
    async def accounts(self, cmd: Accounts) -> list[int]:
        return [row["id"] for row in await self.db.fetch_all("SELECT id FROM accounts ORDER BY id")]

    @handles(Pending)
    async def pending(self, cmd: Pending) -> int:
        row = await self.db.fetch_one("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
        return int(row["n"])


class ConsumerActor(ServiceActor):
    @on_event(USER_CREATED)
    async def on_user_created(self, tx, data: UserData, envelope: EventEnvelope) -> None:
        await tx.execute("INSERT INTO applied (event_id, user_id) VALUES (?, ?)", envelope.eventId, data.id)

    @handles(Applied)
    async def applied(self, cmd: Applied) -> list[int]:
        return [row["user_id"] for row in await self.db.fetch_all("SELECT user_id FROM applied ORDER BY id")]


class InventoryActor(ServiceActor):
    bumps = 0

    @handles(Bump)
    async def bump(self, cmd: Bump) -> int:
        type(self).bumps += 1
        return type(self).bumps


class OrderActor(ServiceActor):
    @handles(CallInventory)
    async def call(self, cmd: CallInventory) -> int:
        return await self.request("inventory", Bump(), timeout=0.3)


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    return schema_dir_with(tmp_path, SCHEMA)


@pytest.fixture
async def start_system(schema_dir):
    """`await start_system(name, ActorClass, bus, plan=None, requester=None, **settings)`."""
    started: list[ActorSystem] = []

    async def start(name, logic, bus, *, plan: FaultPlan | None = None, requester=None, **overrides):
        flags = {"ephemeral": True, "workers": 2, "outbox_poll_ms": 100, **overrides}
        wiring = chaos_wiring(plan) if plan is not None else None
        system = ActorSystem(name, load_settings(flags, env={}), bus, logic, schema_dir=schema_dir,
                             requester=requester,
                             faults=wiring.faults if wiring else None,
                             database_factory=wiring.database_factory if wiring else None)
        await system.migrate()
        await system.start()
        started.append(system)
        return system

    yield start
    for system in reversed(started):
        await system.stop()


async def create_accounts(producer: ActorSystem, names: list[str]) -> None:
    """Like a client: retry what failed (a crash may come after the commit: the handler then
    finds its account and does nothing)."""
    for name in names:
        for _ in range(50):
            try:
                await producer.ask(CreateAccount(name=name))
                break
            except (InternalError, ServiceUnavailable):
                await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{name} never got created")


async def converged(producer: ActorSystem, consumers: list[ActorSystem]) -> bool:
    """Every account's event applied once by every consumer, every outbox row settled."""
    try:
        accounts = await producer.ask(Accounts())
        for consumer in consumers:
            if sorted(await consumer.ask(Applied())) != accounts:
                return False
        return await producer.ask(Pending()) == 0
    except ServiceError:  # a read that met a fault: look again
        return False


async def test_bus_faults_lose_nothing_and_apply_each_event_once(start_system):
    plan = FaultPlan(21, ["drop", "dup", "delay", "reorder"],
                     rates={"drop": 0.15, "dup": 0.15, "delay": 0.15, "reorder": 0.15})
    bus = FaultyBus(LocalBus(), plan)
    bus.declare(USER_EVENTS, "consumer-a")
    bus.declare(USER_EVENTS, "consumer-b")
    consumers = [await start_system(name, ConsumerActor, bus) for name in ("consumer-a", "consumer-b")]
    producer = await start_system("producer", ProducerActor, bus)
    await create_accounts(producer, [f"user-{i}" for i in range(40)])
    await eventually(lambda: _all_families_fired(plan, ("drop", "dup", "delay", "reorder")))
    plan.stop()
    await eventually(lambda: converged(producer, consumers), timeout=10)
    assert len(await producer.ask(Accounts())) == 40
    assert bus.held() == 0


async def test_storage_faults_still_apply_everything_exactly_once(start_system):
    plan = FaultPlan(22, ["db"], rates={"db": 0.25})
    bus = LocalBus()
    bus.declare(USER_EVENTS, "consumer")
    consumer = await start_system("consumer", ConsumerActor, bus, plan=plan)
    producer = await start_system("producer", ProducerActor, bus, plan=plan)
    await create_accounts(producer, [f"user-{i}" for i in range(40)])
    await eventually(lambda: converged(producer, [consumer]), timeout=10)  # faults still on
    points = {fault.params["point"] for fault in plan.injected()}
    assert {"begin", "mid", "commit"} <= points
    assert {fault.params["error"] for fault in plan.injected()} == {"TransientError", "DatabaseUnavailable"}
    assert len(await producer.ask(Accounts())) == 40


async def test_crashes_are_restarted_by_the_supervisor_and_lose_nothing(start_system):
    plan = FaultPlan(23, ["crash", "slow"], rates={"crash": 0.2, "slow": 0.05})
    bus = LocalBus()
    bus.declare(USER_EVENTS, "consumer")
    consumer = await start_system("consumer", ConsumerActor, bus, plan=plan)
    producer = await start_system("producer", ProducerActor, bus, plan=plan)
    await create_accounts(producer, [f"user-{i}" for i in range(40)])
    await eventually(lambda: converged(producer, [consumer]), timeout=10)
    assert len(await producer.ask(Accounts())) == 40
    phases = {(f.params["kind"], f.params["phase"]) for f in plan.injected() if f.family == "crash"}
    assert {("command", "before"), ("command", "after"), ("event", "before"), ("event", "after")} <= phases
    assert producer.restarts_total() > 0
    assert producer.escalation is None and consumer.escalation is None
    assert plan.counts()["slow"] > 0


async def test_a_partition_cuts_a_pair_of_services_then_heals(start_system):
    clock = [0.0]
    plan = FaultPlan(24, ["partition"], rates={"partition": 1.0}, clock=lambda: clock[0])
    requester = FaultyRequester(LocalRequester(), plan)
    bus = LocalBus()
    await start_system("inventory", InventoryActor, bus, requester=requester)
    order = await start_system("order", OrderActor, bus, plan=plan, requester=requester)
    windows = [w for w in plan.partition_schedule(300) if set(w.pair) == {"order", "inventory"}]
    for mode, expected in (("fail", ServiceUnavailable), ("hang", UpstreamTimeout)):
        window = next(w for w in windows if w.mode == mode)
        clock[0] = (window.start_s + window.end_s) / 2
        with pytest.raises(expected, match="partition"):
            await order.ask(CallInventory())
        clock[0] = window.end_s + 1e-6
        if plan.partition("order", "inventory") is None:
            assert await order.ask(CallInventory()) > 0  # healed
    assert plan.counts()["partition"] == 2
    plan.stop()
    assert await order.ask(CallInventory()) > 0


async def test_a_timeout_loses_the_answer_after_the_work_or_the_request_itself(start_system):
    plan = FaultPlan(20, ["timeout"], rates={"timeout": 1.0})
    requester = FaultyRequester(LocalRequester(), plan)
    bus = LocalBus()
    InventoryActor.bumps = 0
    await start_system("inventory", InventoryActor, bus, requester=requester)
    order = await start_system("order", OrderActor, bus, plan=plan, requester=requester)
    for _ in range(4):  # a fifth in a row would find the circuit open
        with pytest.raises(UpstreamTimeout):
            await order.ask(CallInventory())
    modes = [f.params["mode"] for f in plan.injected()]
    assert len(modes) == 4 and {f.target for f in plan.injected()} == {"order->inventory/Bump"}
    assert set(modes) == {"answer-lost", "lost"}  # seed 20 draws both within 4 requests
    assert InventoryActor.bumps == modes.count("answer-lost")  # done, though the caller cannot know
    plan.stop()
    assert await order.ask(CallInventory()) == InventoryActor.bumps


async def _all_families_fired(plan: FaultPlan, families) -> bool:
    counts = plan.counts()
    return all(counts[family] > 0 for family in families)
