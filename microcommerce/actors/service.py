"""The base every service's actor logic derives from: typed handlers, events, requests, timers.

One instance lives inside each worker (an actor with its own mailbox and database handle, hosted
by the threaded or the deterministic runner: see actors/runtime.py).
Handlers run one message at a time, so they need no locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import msgspec

from microcommerce import environment
from microcommerce.actors import inbox, outbox
from microcommerce.actors.timers import Timers
from microcommerce.config import Settings
from microcommerce.contracts.events import EventEnvelope, event_type
from microcommerce.errors import InternalError
from microcommerce.storage import Database, Executor, TransientError

if TYPE_CHECKING:
    from microcommerce.actors.bus import EventBus
    from microcommerce.actors.requests import Requester

Handler = Callable[..., Awaitable[Any]]
T = TypeVar("T")


def handles(command_type: type) -> Callable[[Handler], Handler]:
    """Mark `async def handler(self, command)` as the handler of a command type (stackable)."""

    def mark(fn: Handler) -> Handler:
        fn.__handles__ = (*getattr(fn, "__handles__", ()), command_type)  # type: ignore[attr-defined]
        return fn

    return mark


def on_event(*event_names: str) -> Callable[[Handler], Handler]:
    """Mark `async def handler(self, tx, data, envelope)`; runs in a transaction after inbox dedup."""

    def mark(fn: Handler) -> Handler:
        fn.__events__ = event_names  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(slots=True)
class WorkerContext:
    service: str
    worker_index: int
    settings: Settings
    db: Database
    bus: EventBus
    requester: Requester
    timers: Timers
    request_flush: Callable[[], None]
    outbox_dirty: bool = field(default=False)


class ServiceActor:
    command_handlers: ClassVar[dict[type, str]] = {}
    event_handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        commands: dict[type, str] = {}
        events: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for command_type in getattr(member, "__handles__", ()):
                    commands[command_type] = name
                for event_name in getattr(member, "__events__", ()):
                    events[event_name] = name
        cls.command_handlers = commands
        cls.event_handlers = events

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.settings = ctx.settings
        self.timers = ctx.timers
        self.log = logging.getLogger(f"microcommerce.{ctx.service}")

    async def on_start(self) -> None:
        """Runs in the worker's loop after its database is connected (and after each restart)."""

    async def on_stop(self) -> None:
        """Runs before the worker's database is closed."""

    async def dispatch(self, command: Any) -> Any:
        name = self.command_handlers.get(type(command))
        if name is None:
            raise InternalError(f"{self.ctx.service} has no handler for {type(command).__name__}")
        return await getattr(self, name)(command)

    async def apply_event(self, envelope: EventEnvelope) -> bool:
        """Apply one event exactly once: inbox claim and effects commit together."""
        name = self.event_handlers.get(envelope.eventType)
        if name is None:
            return False
        async with self.db.transaction() as tx:
            if not await inbox.claim(tx, self.ctx.service, envelope.eventId):
                return False
            await getattr(self, name)(tx, envelope.data, envelope)
        return True

    async def emit(self, tx: Executor, event_name: str, key: object, data: msgspec.Struct) -> EventEnvelope:
        """Write an event to the outbox inside `tx`; the relay publishes it after commit."""
        envelope = await outbox.append(tx, f"{self.ctx.service}-service", event_name, key, data)
        self.ctx.outbox_dirty = True
        return envelope

    async def rerun_on_race(self, unit: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
        """Run one transaction's worth of work, again if it lost a race (deadlock) and was rolled
        back. For handlers that opt out of whole reruns (`retry_transient = False`) because of an
        outside effect between their transactions: each transaction alone is safe to rerun."""
        for attempt in range(1, attempts + 1):
            try:
                return await unit()
            except TransientError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(environment.rng().uniform(0.002, 0.01) * attempt)
        raise AssertionError("unreachable")

    async def request(self, service: str, command: Any, *, timeout: float | None = None) -> Any:
        """Ask another service; never call this inside an open transaction."""
        wait = timeout if timeout is not None else self.settings.timeout_of(service)
        return await self.ctx.requester.request(service, command, timeout=wait)

    @classmethod
    def handled_event_types(cls) -> set[str]:
        return set(cls.event_handlers)

    @classmethod
    def consumed_topics(cls) -> list[str]:
        """The topics whose events this service's consumer group must apply."""
        return sorted({event_type(name).topic for name in cls.event_handlers})
