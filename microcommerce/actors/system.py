"""One service's actor system: supervisor, keyed workers, outbox relay, event subscriptions.

Ten of these live in one process in dev mode; each keeps its own actors (no shared registry),
its own database and its own dead-letter counts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microcommerce.actors.bus import DoneFn, EventBus
from microcommerce.actors.deadletters import DeadLetters
from microcommerce.actors.faults import DatabaseFactory, FaultInjector
from microcommerce.actors.messages import Ask, Deliver, Flush, Poll, StartChildren
from microcommerce.actors.requests import LocalRequester, Requester, current_request_id
from microcommerce.actors.router import KeyRouter
from microcommerce.actors.runtime import ActorRef, ActorStopped, Runtime
from microcommerce.actors.service import ServiceActor
from microcommerce.actors.supervisor import ChildSpec, RestartPolicy, Supervisor
from microcommerce.actors.threaded import ThreadedRuntime
from microcommerce.actors.worker import OutboxRelay, Ping, Worker
from microcommerce.config import Settings
from microcommerce.contracts.events import EventEnvelope
from microcommerce.errors import Overloaded, ServiceError, ServiceUnavailable, UpstreamTimeout
from microcommerce.storage import Database, migrate, open_database

log = logging.getLogger(__name__)
MESSAGING_SCHEMA = Path(__file__).parent / "schema"


class ActorSystem:
    def __init__(
        self,
        name: str,
        settings: Settings,
        bus: EventBus,
        logic_cls: type[ServiceActor],
        schema_dir: Path | None,
        *,
        workers: int | None = None,
        policy: RestartPolicy | None = None,
        dead_letters: DeadLetters | None = None,
        requester: Requester | None = None,
        faults: FaultInjector | None = None,
        database_factory: DatabaseFactory | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.name = name
        self.runtime = runtime or ThreadedRuntime()
        self.settings = settings
        self.bus = bus
        self.requester = requester or LocalRequester()
        self.faults = faults
        self._database_factory = database_factory
        self.logic_cls = logic_cls
        self.schema_dir = schema_dir
        self.worker_count = workers or settings.workers
        self.mailbox_size = settings.mailbox_size
        self.policy = policy or RestartPolicy(
            max_restarts=settings.supervisor_max_restarts, window_s=settings.supervisor_window_s
        )
        self.dead_letters = dead_letters or DeadLetters()
        self.database_url = settings.database_url_of(name)
        self.flush_requested = threading.Event()
        self.outbox = OutboxStats()
        self.escalation: str | None = None
        self.supervisor: ActorRef | None = None
        self._supervisor_actor: Supervisor | None = None
        self.router: KeyRouter[ActorRef] | None = None
        self.relay: ActorRef | None = None
        self._anchor: Database | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def open_database(self) -> Database:
        if self._database_factory is not None:
            return self._database_factory(self.name, self.database_url)
        return open_database(self.database_url)

    async def migrate(self) -> list[str]:
        """Apply the messaging tables and this service's migrations (on a private loop/thread
        when the runtime has threads)."""

        async def run() -> list[str]:
            db = self.open_database()
            await db.connect()
            try:
                applied = await migrate(db, MESSAGING_SCHEMA, table="messaging_migrations")
                if self.schema_dir is not None:
                    applied += await migrate(db, self.schema_dir)
                return applied
            finally:
                if db.dialect == "sqlite":
                    self._anchor = db  # an in-memory database lives while one connection is open
                else:
                    await db.close()

        return await self.runtime.isolated(run)

    async def start(self) -> None:
        """Start supervisor, workers and relay, then subscribe to the events the logic handles."""
        spawn = self.runtime.spawn
        self._supervisor_actor = Supervisor(self.name, self.policy, self._escalated)
        self.supervisor = spawn(self._supervisor_actor)
        workers = [
            ChildSpec(f"{self.name}-worker-{i}", lambda i=i: spawn(Worker(self, i, self.logic_cls)))
            for i in range(self.worker_count)
        ]
        relay = ChildSpec(f"{self.name}-outbox-relay", lambda: spawn(OutboxRelay(self)))
        refs = await self.runtime.ask(self.supervisor, StartChildren([*workers, relay]), timeout=30)
        self.router = KeyRouter([refs[spec.id] for spec in workers])
        self.relay = refs[relay.id]
        for topic in self.logic_cls.consumed_topics():
            self.bus.declare(topic, self.name)  # idempotent; the node declares every group first
            self.bus.subscribe(topic, self.name, self.deliver_event)
        self.requester.register_endpoint(self.name, self)

    async def stop(self, timeout: float = 5.0) -> None:
        """Let workers drain their mailboxes and stop the relay, in the order the bus wants.

        In-process, the relay stops first: delivering to consumers that are stopping would only
        be refused, and unsent rows wait in the outbox for the next start. On a durable bus the
        workers drain first, then the relay sends what they committed and waits for the acks.
        """
        relay = [self.relay] if self.relay else []
        workers = list(self.router.routees) if self.router else []
        refs = workers + relay if self.bus.durable else relay + workers
        for ref in refs:
            await self.runtime.stop(ref, timeout=timeout)
        if self.supervisor is not None:
            await self.runtime.stop(self.supervisor, timeout=timeout)
        if self._anchor is not None:
            anchor = self._anchor
            self._anchor = None
            await self.runtime.isolated(anchor.close)

    def _escalated(self, reason: str | None) -> None:
        """The supervisor gave up (a reason) or restarted the whole service (None)."""
        self.escalation = reason

    # -- messaging -----------------------------------------------------------------------
    async def ask(self, command: Any, *, timeout: float | None = None) -> Any:
        """Send a command to the worker for its key and await the reply without blocking the loop."""
        if self.router is None:
            raise ServiceUnavailable(f"{self.name} service is not started")
        ref = self.router.route(getattr(command, "routing_key", None))
        if ref.mailbox_depth() >= self.mailbox_size:
            self.dead_letters.record(self.name, "mailbox-full", command)
            raise Overloaded(f"{self.name} service is overloaded, retry shortly")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        try:
            ref.tell(Ask(command, self.runtime.reply_to(future), current_request_id.get()))
        except ActorStopped:
            self.dead_letters.record(self.name, "stopped", command)
            raise ServiceUnavailable(f"{self.name} service is unavailable") from None
        wait = timeout if timeout is not None else self.settings.timeout_of(self.name)
        timer = loop.call_later(wait, _expire, future, f"{self.name} service did not answer in {wait:g}s")
        try:
            return await future
        finally:
            timer.cancel()

    def deliver_event(self, envelope: EventEnvelope, topic: str, key: str, done: DoneFn | None = None) -> None:
        """Bus callback: route an event to the worker owning its key (events bypass the bound).

        An event this system cannot take goes back to its sender (`done(False)`), never dropped.
        """
        if self.router is None:
            self.dead_letters.record(self.name, "not-started", envelope)
            if done is not None:
                done(False)
            return
        try:
            # A bus hands the event's request id over in `current_request_id` (see relay, Kafka).
            self.router.route(key).tell(Deliver(envelope, topic, key, done, current_request_id.get()))
        except ActorStopped:
            self.dead_letters.record(self.name, "stopped", envelope)
            if done is not None:
                done(False)


    def request_flush(self) -> None:
        """Wake the relay; coalesced so a burst of commits costs one outbox scan."""
        if self.relay is not None and not self.flush_requested.is_set():
            self.flush_requested.set()
            try:
                self.relay.tell(Flush())
            except ActorStopped:
                pass

    def request_redrive(self) -> None:
        """Wake the relay to hand requested dead letters to this service's consumers."""
        if self.relay is not None:
            try:
                self.relay.tell(Poll())
            except ActorStopped:
                pass

    # -- observability -------------------------------------------------------------------
    async def health(self) -> dict[str, Any]:
        checks: dict[str, Any] = {"supervisor": self.escalation or "ok"}
        try:
            checks["db"] = "ok" if await self.ask(Ping(), timeout=2.0) else "down"
        except ServiceError as err:
            checks["db"] = err.message
        alive = sum(ref.is_alive() for ref in self.router.routees) if self.router else 0
        checks["workers"] = f"{alive}/{self.worker_count}"
        healthy = checks["db"] == "ok" and self.escalation is None and alive == self.worker_count
        return {"status": "up" if healthy else "down", "checks": checks}

    def mailbox_depths(self) -> list[int]:
        return [ref.mailbox_depth() for ref in self.router.routees] if self.router else []

    def restarts_total(self) -> int:
        # An int the supervisor's own thread writes: reading it needs no round trip.
        return self._supervisor_actor.restarts_total if self._supervisor_actor is not None else 0


@dataclass(slots=True)
class OutboxStats:
    """What the relay last saw, for /metrics (written by the relay's thread, read anywhere)."""

    unpublished: int = 0  # rows not yet settled (as of the relay's last look; capped by its window)
    in_flight: int = 0  # handed to the bus, not yet settled
    published: int = 0  # rows settled and marked since start


def _expire(future: asyncio.Future[Any], message: str) -> None:
    if not future.done():
        future.set_exception(UpstreamTimeout(message))
