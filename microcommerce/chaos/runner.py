"""One chaos run: an all-in-one node wired through the fault plan, the workload for `duration`
seconds with faults on, then faults off, healing (outboxes drained, mailboxes empty, no pending
payment), a final read of every service's data, and the checkers."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from microcommerce import environment
from microcommerce.actors.runtime import Runtime
from microcommerce.chaos import checkers
from microcommerce.chaos.faults import FaultPlan, chaos_wiring
from microcommerce.chaos.faulty_clients import FaultyTransport
from microcommerce.chaos.history import History
from microcommerce.chaos.runtime_faults import MAX_STALL_S
from microcommerce.chaos.transport import HttpTransport, InProcessTransport, Transport
from microcommerce.chaos.workload import Admin, Client, Shopper, World, run_process
from microcommerce.config import Settings, load_settings
from microcommerce.node import Node
from microcommerce.ports import free_ports
from microcommerce.services import implemented_services
from microcommerce.services.payment.providers import ledger_for
from microcommerce.storage import drop_database, open_database

ADMIN_EMAIL = "admin@chaos.test"
ADMIN_PASSWORD = "chaos-admin-password"
HEAL_TIMEOUT_S = 30.0
# Longer than the longest injected stall, so a handler that was asleep when the looks began
# has woken and committed before the system is called quiet.
QUIET_S = 2 * MAX_STALL_S
# Every table a checker reads, per service (the messaging tables are read from every service).
TABLES = {
    "user": ["users"], "cart": ["cart_users", "carts", "cart_items"],
    "order": ["orders", "order_items", "users"], "payment": ["payments", "order_guards"],
    "inventory": ["stock", "reservations"], "product": ["products"], "search": ["search_products"],
    "notification": ["users", "notifications"], "audit": ["audit_logs"],
}
MESSAGING_TABLES = ["outbox", "dead_letters", "inbox"]
_RUN_NUMBERS = itertools.count(1)
THREADED_THINK_S = 0.03
SIMULATED_THINK_S = 4.0
# Reservation TTLs: a few shopper steps, so orders left unpaid lapse while the run goes on.
THREADED_RESERVATION_TTL_S = 2
SIMULATED_RESERVATION_TTL_S = 5
SIMULATED_PROGRESS_S = 10.0  # a progress line per 10 simulated seconds: a run is minutes long


# The ranges of a run's settings (the CLI and --replay refuse anything outside them).
MAX_DURATION_S = 7 * 24 * 3600.0  # a week of workload: longer soaks are several runs
MAX_SHOPPERS = 1000
MAX_THINK_S = 3600.0


@dataclass
class RunConfig:
    seed: int
    duration: float = 10.0
    shoppers: int = 8
    families: tuple[str, ...] = ()
    swarm: bool = False
    db_url: str | None = None
    products: int = 5
    stock: int = 4
    deterministic: bool = False  # the simulated runtime: one thread, seeded order, virtual time
    think_s: float | None = None  # a client's longest pause between two steps (None: the default)

    @property
    def think(self) -> float:
        # Threads: as fast as the platform answers. Simulated time is free, so shoppers there
        # pause like people do and a run covers minutes of shopping instead of a burst.
        if self.think_s is not None:
            return self.think_s
        return SIMULATED_THINK_S if self.deterministic else THREADED_THINK_S

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "duration": self.duration, "shoppers": self.shoppers,
                "faults": list(self.families), "swarm": self.swarm, "db": self.db_url,
                "deterministic": self.deterministic, "think": self.think}


@dataclass
class RunResult:
    valid: bool | str
    seed: int
    faults: dict[str, int]
    ops: dict[str, int]
    checkers: dict[str, dict[str, Any]]
    healed: bool
    history: History = field(repr=False)
    plan: Any = field(repr=False)
    config: RunConfig | None = field(default=None, repr=False)
    trace: Any = field(default=None, repr=False)  # the deterministic runner's trace
    kept_databases: list[str] = field(default_factory=list)  # --db runs that were not valid

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "seed": self.seed, "faults": self.faults, "ops": self.ops,
                "checkers": {name: {"valid": c["valid"], "counterexample": c["counterexample"]}
                             for name, c in self.checkers.items()}, "healed": self.healed,
                **({"config": self.config.as_json()} if self.config is not None else {})}


def chaos_settings(config: RunConfig) -> Settings:
    """Fast and isolated: memory (or fresh MySQL databases), cheap bcrypt, short timeouts."""
    services = implemented_services()
    # Unique per run in this process (names of in-memory databases and the provider's books),
    # and drawn from no random source, so a simulated run's draws don't depend on it.
    run_id = f"{os.getpid()}x{next(_RUN_NUMBERS)}"
    flags: dict[str, Any] = {
        "password_hash_cost": 4, "access_log": False, "rate_limit_max": 1_000_000, "log_level": "error",
        "jwt_secret": "chaos-harness-jwt-secret-0123456789", "internal_token": "chaos-internal-token-01234567",
        "bootstrap_admin_email": ADMIN_EMAIL, "bootstrap_admin_password": ADMIN_PASSWORD,
        # The provider's slow answer comes after the payment request's timeout: charged, caller unsure.
        "request_timeout_ms": 1500, "timeouts_ms": {"payment": 1000}, "provider_slow_delay_ms": 1500,
        "outbox_poll_ms": 100, "payment_reconcile_interval_ms": 1000, "reservation_sweep_interval_ms": 1000,
        "max_pending_orders_per_user": 1000, "workers": 2,
        "provider_ledger_url": f"sqlite://memory/chaos-providers-{run_id}",
    }
    # Reservations lapse within a run, so expiry races payments, cancellations and shipping
    # (with the default 15 minutes no short run would ever see a reservation expire).
    flags["reservation_ttl_s"] = THREADED_RESERVATION_TTL_S
    if config.deterministic:
        # Simulated time is free but each poll is real work: the relays wake on every commit
        # anyway, so their safety-net poll (redeliveries, redrives) can be a calm second.
        flags["outbox_poll_ms"] = 1000
        flags["reservation_ttl_s"] = SIMULATED_RESERVATION_TTL_S
    else:  # the simulation opens no sockets
        flags["ports"] = dict(zip(services, free_ports(len(services)), strict=True))
    if config.db_url:
        # A fresh database per service and run: the checkers must see only this run's data.
        flags["database_url"] = config.db_url.replace("{service}", f"{{service}}_chaos_{run_id}")
    else:
        flags["database_url"] = f"sqlite://memory/{{service}}-chaos-{run_id}"
    return load_settings(flags, env={})


async def _settled(node: Node) -> bool:
    for hosted in node.services.values():
        system = hosted.system
        if system is None:
            continue
        if system.outbox.unpublished or system.outbox.in_flight or any(system.mailbox_depths()):
            return False
    return True


async def heal(node: Node, timeout: float = HEAL_TIMEOUT_S) -> bool:
    """Wait until every outbox is settled, every mailbox empty, no payment pending and no order
    waiting on its reservation, and it stays so for QUIET_S (the relay's view is as of its last
    poll, and a stalled handler leaves its mailbox empty until it wakes and commits); False on
    timeout. A pending order is work still to come: its reservation lapses on a timer, after
    the shoppers stopped, and cancels it."""
    deadline = environment.monotonic() + timeout
    quiet_since: float | None = None
    while environment.monotonic() < deadline:
        if await _settled(node) and not await _pending_payments(node) and not await orders_in_flight(node):
            now = environment.monotonic()
            quiet_since = now if quiet_since is None else quiet_since
            if now - quiet_since >= QUIET_S:
                return True
        else:
            quiet_since = None
        await asyncio.sleep(0.1)
    return False


async def orders_in_flight(node: Node) -> int:
    return await _count(node, "order", "SELECT COUNT(*) AS n FROM orders WHERE status IN ('reserving', 'pending')")


async def _pending_payments(node: Node) -> int:
    return await _count(node, "payment", "SELECT COUNT(*) AS n FROM payments WHERE status = 'pending'")


async def _count(node: Node, service: str, sql: str) -> int:
    rows = await _read(node, node.system(service).database_url, [sql])
    return int(rows[0][0]["n"])


async def read_at_one_moment(url: str, queries: list[str]) -> list[list[dict[str, Any]]]:
    """Read-only SQL on a database, in one transaction: the tables are read as of one moment,
    so a handler that commits between two of the reads (work a timed-out client left running)
    is seen whole or not at all."""
    db = open_database(url)
    await db.connect()
    try:
        async with db.transaction() as tx:
            return [await tx.fetch_all(sql) for sql in queries]
    finally:
        await db.close()


async def _read(node: Node, url: str, queries: list[str]) -> list[list[dict[str, Any]]]:
    """Read a service's database past any fault wrapper (on a private loop/thread when the
    runtime has threads)."""
    return await node.runtime.isolated(partial(read_at_one_moment, url, queries))


async def final_read(node: Node, healed: bool) -> checkers.Snapshot:
    snapshot: checkers.Snapshot = {"healed": healed,
                                   "notification_channels": list(node.settings.notification_channels)}
    for service, tables in TABLES.items():
        names = tables + MESSAGING_TABLES
        results = await _read(node, node.system(service).database_url, [f"SELECT * FROM {t}" for t in names])
        snapshot[service] = dict(zip(names, results, strict=True))
    ledger = ledger_for(node.settings)
    snapshot["provider"] = {"charges": [msgspec.structs.asdict(c) for c in ledger.charges()],
                            "refunds": [msgspec.structs.asdict(r) for r in ledger.refunds()]}
    return snapshot


async def _setup_catalogue(client: Client, world: World, config: RunConfig) -> None:
    """Admin login, one category, a few products with scarce stock (retried through faults)."""
    outcome, _, body = await client.call("login", "POST", "/auth/login", write=False,
                                         body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                                         args={"email": ADMIN_EMAIL})
    if outcome != "ok":
        raise HarnessError(f"admin login failed: {body}")
    client.token = body["token"]
    outcome, _, body = await client.call("create_category", "POST", "/categories", body={"name": "Chaos"})
    if outcome != "ok":
        raise HarnessError(f"could not create the catalogue: {body}")
    for n in range(config.products):
        outcome, _, product = await client.call(
            "create_product", "POST", "/products",
            body={"categoryId": body["id"], "name": f"Chaos gadget {n}", "price": 5 + n,
                  "stockQuantity": config.stock})
        if outcome != "ok":
            raise HarnessError(f"could not create the catalogue: {product}")
        world.products.append(product["id"])


class HarnessError(Exception):
    """The harness itself could not run (not a verdict on the system)."""


async def run_chaos(config: RunConfig, *, progress: Callable[[str], None] | None = print,
                    plan: FaultPlan | None = None, runtime: Runtime | None = None,
                    trace: Any = None) -> RunResult:
    """One run on the threaded runtime (real threads and sockets on ephemeral ports), or, with a
    simulated `runtime` (see chaos/simulation.py), on one thread in virtual time."""
    plan = plan or FaultPlan(config.seed, config.families, swarm=config.swarm)
    if trace is not None:
        plan.on_record(trace.fault)
    settings = chaos_settings(config)
    simulated = runtime is not None and runtime.deterministic
    wiring = chaos_wiring(plan, later=_virtual_later if simulated else None)
    node = Node(settings, implemented_services(), bus=wiring.bus, requester=wiring.requester,
                faults=wiring.faults, database_factory=wiring.database_factory, serve_http=True,
                listen=not simulated, runtime=runtime)
    history = History()
    world = World()
    workload_rng = plan.rng("workload")
    seeds = [workload_rng.getrandbits(64) for _ in range(config.shoppers + 2)]
    plan.hold()  # the platform starts and the catalogue is set up without faults
    await node.start()
    session: aiohttp.ClientSession | None = None
    if simulated:
        transport: Transport = InProcessTransport(node.services["gateway"].app)
    else:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        transport = HttpTransport(session, settings.url_of("gateway"))
    ticker: asyncio.Task[None] | None = None
    try:
        setup = Client(transport, history, "setup", random.Random(seeds[0]))
        await _setup_catalogue(setup, world, config)
        admin_client = Client(FaultyTransport(transport, plan, "admin"), history, "admin", random.Random(seeds[1]))
        admin_client.token = setup.token
        shoppers = [Shopper(Client(FaultyTransport(transport, plan, f"shopper-{i}"), history, f"shopper-{i}",
                                   random.Random(seeds[i + 2])), world, plan, i) for i in range(config.shoppers)]
        plan.begin()
        clock = _Clock(simulated)
        stop_at = environment.monotonic() + config.duration
        if progress is not None and simulated and trace is not None:
            # No task or timer of its own: it would take a place in the schedule it reports on.
            trace.every(SIMULATED_PROGRESS_S, lambda: progress(_progress_line(history, plan, clock)))
        elif progress is not None:
            ticker = asyncio.create_task(_tick(progress, history, plan, clock))

        async def shop(shopper: Shopper) -> None:
            await shopper.start()
            await run_process(shopper, stop_at, config.think)

        await asyncio.gather(run_process(Admin(admin_client, world), stop_at, config.think),
                             *(shop(s) for s in shoppers))
        plan.stop()
        if ticker is not None:
            ticker.cancel()
        if progress is not None:
            progress(f"[{clock}] faults stopped; healing (up to {HEAL_TIMEOUT_S:g}s)")
        healed = await heal(node)
        snapshot = await final_read(node, healed)
        results = checkers.run_checkers(history.completions(), snapshot)
        result = RunResult(valid=checkers.overall(results), seed=config.seed, faults=plan.counts(),
                           ops=history.counts(), checkers=results, healed=healed, history=history, plan=plan,
                           config=config, trace=trace)
    finally:
        if ticker is not None:
            ticker.cancel()
        plan.stop()
        if session is not None:
            await session.close()
        await node.stop()
    if config.db_url:
        urls = [hosted.system.database_url for hosted in node.services.values() if hosted.system is not None]
        result.kept_databases = await _drop_databases_of_a_valid_run(urls, result.valid is True)
    return result


async def _drop_databases_of_a_valid_run(urls: list[str], valid: bool) -> list[str]:
    """A run's fresh MySQL databases are dropped once it is valid, and kept for a look when it
    is not (the names are returned)."""
    if not valid:
        return [url.rsplit("/", 1)[-1] for url in urls]
    for url in urls:
        await drop_database(url)
    return []


def _virtual_later(seconds: float, fn: Callable[[], None]) -> object:
    return asyncio.get_running_loop().call_later(seconds, fn)


class _Clock:
    """Run time for progress lines: wall seconds, or simulated seconds and the wall time they took."""

    def __init__(self, simulated: bool) -> None:
        self.simulated = simulated
        self.wall0 = time.perf_counter()
        self.run0 = environment.monotonic()

    def __str__(self) -> str:
        wall = time.perf_counter() - self.wall0
        if self.simulated:
            return f"sim {environment.monotonic() - self.run0:6.1f}s, wall {wall:5.1f}s"
        return f"{wall:5.1f}s"


async def _tick(progress: Callable[[str], None], history: History, plan: FaultPlan, clock: _Clock) -> None:
    while True:
        await asyncio.sleep(1.0)
        progress(_progress_line(history, plan, clock))


def _progress_line(history: History, plan: FaultPlan, clock: _Clock) -> str:
    ops = " ".join(f"{k}={v}" for k, v in history.counts().items())
    faults = ", ".join(f"{k}={v}" for k, v in sorted(plan.counts().items())) or "none"
    return f"[{clock}] ops {ops} | faults {faults}"


def write_outputs(result: RunResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
    result.history.write(out / "history.jsonl")
    result.plan.write_faults(out / "faults.jsonl")
    if result.trace is not None:
        result.trace.write(out / "trace.jsonl")
