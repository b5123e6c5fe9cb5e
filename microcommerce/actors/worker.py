"""The actors that run service code, each with its own mailbox and database handle.

`SupervisedActor` owns the boot/teardown cycle and reports crashes to the supervisor;
`Worker` runs a ServiceActor's command and event handlers; `OutboxRelay` publishes
committed outbox rows to the bus. They are runtime-agnostic (actors/runtime.py): every wait is
an await, so the threaded runtime blocks only the actor's own thread and the simulated one
moves on to another actor.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from microcommerce import environment
from microcommerce.actors import dlq, outbox
from microcommerce.actors.messages import (
    Ask,
    ChildFailed,
    Deliver,
    Flush,
    GoDown,
    Poll,
    Restart,
    TimerFired,
)
from microcommerce.actors.requests import current_request_id
from microcommerce.actors.runtime import Actor
from microcommerce.actors.service import ServiceActor, WorkerContext
from microcommerce.actors.timers import Timers
from microcommerce.contracts import registry  # noqa: F401 - every event type known before decoding
from microcommerce.contracts.events import decode_event
from microcommerce.errors import InternalError, ServiceError, ServiceUnavailable
from microcommerce.storage import Database, DatabaseUnavailable, TransientError

if TYPE_CHECKING:
    from microcommerce.actors.system import ActorSystem

log = logging.getLogger(__name__)
TRANSIENT_ATTEMPTS = 3


class Ping:
    """Readiness probe answered by the worker itself: is its database reachable?"""


class SupervisedActor(Actor):
    def __init__(self, system: ActorSystem, child_id: str) -> None:
        self.system = system
        self.child_id = self.name = child_id
        self.db: Database | None = None
        self.gave_up = False
        self.timers: Timers | None = None

    # -- lifecycle -------------------------------------------------------------------
    async def started(self) -> None:
        self.timers = Timers(self.ref, self.runtime.timer_scheduler)
        await self._boot_supervised()

    async def stopped(self) -> None:
        await self._teardown()

    def refuse(self, message: Any) -> None:
        """Answer work queued when the actor stops, so no caller hangs."""
        self.system.dead_letters.record(self.system.name, "stopped", message)
        _refuse(message, f"{self.system.name} service is stopping")

    async def boot(self) -> None:
        self.db = self.system.open_database()
        await self.db.connect()

    async def teardown(self) -> None:
        """Subclass hook before the database closes."""

    async def _teardown(self) -> None:
        assert self.timers is not None
        self.timers.cancel_all()
        try:
            await self.teardown()
        finally:
            if self.db is not None:
                db, self.db = self.db, None
                try:
                    await db.close()
                except Exception:  # noqa: BLE001 - closing a broken pool must not mask the crash
                    log.debug("closing database of %s failed", self.child_id, exc_info=True)

    async def _boot_supervised(self) -> None:
        try:
            await self.boot()
        except Exception as exc:  # noqa: BLE001 - e.g. database down at start: supervise
            log.error("%s failed to start: %s", self.child_id, exc)
            await self.crashed(exc)

    async def crashed(self, exc: BaseException) -> None:
        """A supervision event: ask the supervisor, then restart (after backoff) or go down.

        A child that is told to escalate stays alive but down: it refuses work (503, events
        back to their sender) until its supervisor restarts the whole service.
        """
        supervisor = self.system.supervisor
        try:
            assert supervisor is not None
            directive = await self.runtime.ask(supervisor, ChildFailed(self.child_id, repr(exc)), timeout=5)
        except Exception:  # noqa: BLE001 - no supervisor (shutting down): go down quietly
            directive = None
        if directive is None or directive.action == "escalate":
            self.gave_up = True
            await self._teardown()
            return
        await asyncio.sleep(directive.delay_s)  # this actor's mail waits, as its thread would
        await self._restart()

    async def _restart(self) -> None:
        await self._teardown()
        self.gave_up = False
        try:
            await self.boot()
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed to restart: %s", self.child_id, exc)
            await self.crashed(exc)

    # -- messages --------------------------------------------------------------------
    async def receive(self, message: Any) -> Any:
        if isinstance(message, Restart):
            await self._restart()
        elif isinstance(message, GoDown):
            self.gave_up = True
            await self._teardown()
        elif self.gave_up:
            self.system.dead_letters.record(self.system.name, "escalated", message)
            _refuse(message, f"{self.system.name} service is unavailable")
        elif isinstance(message, TimerFired):
            assert self.timers is not None
            if self.timers.fired(message.name):
                await self.handle(message.message)
        else:
            await self.handle(message)
        return None

    async def handle(self, message: Any) -> None:
        raise NotImplementedError


class Worker(SupervisedActor):
    def __init__(self, system: ActorSystem, index: int, logic_cls: type[ServiceActor]) -> None:
        super().__init__(system, f"{system.name}-worker-{index}")
        self.index = index
        self.logic_cls = logic_cls
        self.logic: ServiceActor | None = None

    async def boot(self) -> None:
        await super().boot()
        assert self.db is not None and self.timers is not None
        ctx = WorkerContext(
            service=self.system.name,
            worker_index=self.index,
            settings=self.system.settings,
            db=self.db,
            bus=self.system.bus,
            requester=self.system.requester,
            timers=self.timers,
            request_flush=self.system.request_flush,
        )
        self.logic = self.logic_cls(ctx)
        await self.logic.on_start()

    async def teardown(self) -> None:
        if self.logic is not None:
            logic, self.logic = self.logic, None
            await logic.on_stop()
        await self.system.requester.close()  # connections opened on this loop die with it

    async def handle(self, message: Any) -> None:
        if isinstance(message, Ask):
            await self._handle_ask(message)
        elif isinstance(message, Deliver):
            await self._handle_event(message)
        else:
            await self._handle_ask(Ask(message, None))  # a timer's message: a command nobody waits for

    async def _handle_ask(self, ask: Ask) -> None:
        assert self.logic is not None
        request_id = current_request_id.set(ask.request_id)  # the handler's requests send it on
        try:
            if isinstance(ask.command, Ping):
                result: Any = await self.db.ping() if self.db else False
            elif isinstance(ask.command, dlq.DeadLetterCommand):
                assert self.db is not None
                result = await ask.command.run(self.db)
                if isinstance(ask.command, dlq.RequestRedrive) and result:
                    self.system.request_redrive()
            else:
                result = await self._dispatch(ask.command)
        except ServiceError as err:
            _reply(ask, None, err)
        except Exception as exc:  # noqa: BLE001 - a crash: answer the caller, then supervise
            log.exception("%s crashed handling %s", self.child_id, type(ask.command).__name__)
            _reply(ask, None, InternalError("Internal server error"))
            await self.crashed(exc)
        else:
            _reply(ask, result, None)
        finally:
            current_request_id.reset(request_id)
            self._after_message()

    async def _dispatch(self, command: Any) -> Any:
        """Run a command; a transaction that lost a race (deadlock) was rolled back, so run the
        whole handler again, unless the command says its side effects must not repeat."""
        assert self.logic is not None
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                faults = self.system.faults
                if faults is None:
                    return await self.logic.dispatch(command)
                await faults.on_command(self.system.name, command, "before")
                result = await self.logic.dispatch(command)
                await faults.on_command(self.system.name, command, "after")
                return result
            except TransientError as exc:
                if attempt == TRANSIENT_ATTEMPTS or not getattr(command, "retry_transient", True):
                    log.warning("%s gave up on %s: %s", self.child_id, type(command).__name__, exc)
                    raise ServiceUnavailable(f"{self.system.name} service is busy, retry shortly",
                                             retry_after_s=1) from None
                await asyncio.sleep(environment.rng().uniform(0.002, 0.01) * attempt)
        raise AssertionError("unreachable")

    async def _handle_event(self, delivery: Deliver) -> None:
        settled = False
        token = current_request_id.set(delivery.request_id)  # its effects carry the cause's id
        try:
            settled = await self._apply_or_park(delivery)
        finally:
            current_request_id.reset(token)
            self._after_message()
            if delivery.done is not None:
                delivery.done(settled)

    async def _apply_or_park(self, delivery: Deliver) -> bool:
        """Apply an event with bounded retries, else park it as a dead letter.

        True once the event is durably handled (applied, or parked); False when this worker
        could not take it (down, database unreachable): the sender delivers it again later.
        """
        max_attempts = self.system.settings.event_max_attempts
        envelope = delivery.envelope
        error = ""
        for attempt in range(1, max_attempts + 1):
            if self.gave_up or self.logic is None:
                self.system.dead_letters.record(self.system.name, "escalated", envelope)
                return False
            try:
                faults = self.system.faults
                if faults is not None:
                    await faults.on_event(self.system.name, envelope.eventType, "before")
                await self.logic.apply_event(envelope)
                if faults is not None:
                    await faults.on_event(self.system.name, envelope.eventType, "after")
                return True
            except DatabaseUnavailable as exc:
                await self.crashed(exc)  # reconnect through a restart, then try again
                if attempt == max_attempts:
                    return False  # an outage is not the event's fault: never park for it
            except TransientError:
                # A lost race (deadlock) was rolled back: not the event's fault either.
                if attempt == max_attempts:
                    return False  # sent again later; never parked for it
                await asyncio.sleep(environment.rng().uniform(0.002, 0.01) * attempt)
            except Exception as exc:  # noqa: BLE001 - retried, then parked
                log.exception("%s failed on %s (attempt %d/%d)", self.child_id,
                              envelope.eventType, attempt, max_attempts)
                error = f"{type(exc).__name__}: {exc}"
                if attempt < max_attempts:
                    await asyncio.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))
        return await self._park(delivery, error, max_attempts)

    async def _park(self, delivery: Deliver, error: str, attempts: int) -> bool:
        envelope = delivery.envelope
        letter = dlq.ParkedEvent(
            consumer=self.system.name, topic=delivery.topic, event_key=delivery.key,
            envelope=envelope, error=error[:2000], attempts=attempts)
        try:
            letter_id = await dlq.park(self.db, letter)
        except Exception:  # noqa: BLE001 - not parked: leave it with the sender, try again later
            log.exception("%s could not park %s %s", self.child_id, envelope.eventType, envelope.eventId)
            return False
        self.system.dead_letters.record(self.system.name, "event-failed", envelope)
        self.system.bus.dead_letter(delivery.topic, delivery.key, envelope, consumer=self.system.name,
                                    error=error, attempts=attempts)
        log.error("%s parked %s %s (topic %s, key %s) as dead letter %d after %d attempts: %s; "
                  "see `microcommerce dlq list`", self.child_id, envelope.eventType, envelope.eventId,
                  delivery.topic, delivery.key, letter_id, attempts, error)
        return True

    def _after_message(self) -> None:
        if self.logic is not None and self.logic.ctx.outbox_dirty:
            self.logic.ctx.outbox_dirty = False
            self.system.request_flush()


class OutboxRelay(SupervisedActor):
    """Publishes committed outbox rows in id order; a row is marked published only once the bus
    settles it (every consumer group applied it, or a broker acknowledged it).

    Rows in flight are tracked in memory; a crash forgets them, and the next start sends every
    unmarked row again (consumers' inboxes make the repeat harmless). The relay also hands
    dead letters an operator asked to redrive back to this service's own consumers.
    """

    MAX_IN_FLIGHT = 2000  # back-pressure: stop reading the outbox while consumers catch up
    RETRY_AFTER_S = 1.0  # a row the bus could not deliver is sent again after this pause

    def __init__(self, system: ActorSystem) -> None:
        super().__init__(system, f"{system.name}-outbox-relay")
        self.published = 0
        # Settlements arrive on consumers' threads; deque appends and pops are thread-safe.
        self._settled: deque[tuple[int, bool]] = deque()
        self._redriven: deque[tuple[int, bool]] = deque()
        self._in_flight: set[int] = set()
        self._retry: dict[int, float] = {}
        self._redriving: set[int] = set()

    async def boot(self) -> None:
        await super().boot()
        self._in_flight.clear()
        self._retry.clear()
        self._redriving.clear()  # after a restart everything unmarked goes out again
        poll_s = self.system.settings.outbox_poll_ms / 1000.0
        assert self.timers is not None
        self.timers.start_periodic("poll", poll_s, Poll())
        await self.flush()  # rows left by a crash or a stop go out now
        await self.redrive()

    STOP_FLUSH_S = 5.0  # how long a stop waits for the broker to acknowledge the last rows

    async def teardown(self) -> None:
        if not (self.system.bus.durable and self.db is not None and not self.gave_up):
            return
        try:
            await self.flush()
            deadline = environment.monotonic() + self.STOP_FLUSH_S
            while self._in_flight and environment.monotonic() < deadline:
                await asyncio.sleep(0.02)
                await self._record_settled()
        except Exception as exc:  # noqa: BLE001 - unsent rows stay in the outbox for the next start
            log.warning("%s could not flush the outbox at stop: %s", self.child_id, exc)

    async def handle(self, message: Any) -> None:
        try:
            if isinstance(message, Flush):
                await self.flush()
            elif isinstance(message, Poll):
                await self.flush()
                await self.redrive()
        except Exception as exc:  # noqa: BLE001
            log.error("%s could not publish: %s", self.child_id, exc)
            await self.crashed(exc)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def flush(self) -> None:
        assert self.db is not None
        self.system.flush_requested.clear()
        await self._record_settled()
        await self._send_retries()
        # No cursor: on MySQL ids are taken at insert but rows commit in any order, so a row
        # below the newest one sent may appear later. Rows already in flight are skipped.
        while len(self._in_flight) < self.MAX_IN_FLIGHT:
            ids = await outbox.pending_ids(self.db, len(self._in_flight) + len(self._retry) + 200)
            self.system.outbox.unpublished = len(ids)
            fresh = [i for i in ids if i not in self._in_flight and i not in self._retry]
            fresh = fresh[:self.MAX_IN_FLIGHT - len(self._in_flight)]
            if not fresh:
                break
            for row in await outbox.unpublished(self.db, fresh):
                self._send(row)
        await self._record_settled()  # what settled while we sent (a topic nobody must apply settles at once)
        self.system.outbox.in_flight = len(self._in_flight)

    def _send(self, row: outbox.OutboxRow) -> None:
        self._in_flight.add(row.id)
        token = current_request_id.set(row.request_id)  # travels with the event (a Kafka header)
        try:
            self.system.bus.publish(row.topic, row.event_key, decode_event(row.payload),
                                    partial(self._on_settled, row.id))
        finally:
            current_request_id.reset(token)

    def _on_settled(self, row_id: int, ok: bool) -> None:
        self._settled.append((row_id, ok))
        self.system.request_flush()

    async def _record_settled(self) -> None:
        done: list[int] = []
        while self._settled:
            row_id, ok = self._settled.popleft()
            self._in_flight.discard(row_id)
            if ok:
                done.append(row_id)
            else:
                self._retry[row_id] = environment.monotonic() + self.RETRY_AFTER_S
        for start in range(0, len(done), 500):
            chunk = done[start:start + 500]
            await outbox.mark_published(self.db, chunk)
            self.published += len(chunk)
            self.system.outbox.published += len(chunk)

    async def _send_retries(self) -> None:
        now = environment.monotonic()
        due = [row_id for row_id, at in self._retry.items() if at <= now]
        if not due:
            return
        for row_id in due:
            del self._retry[row_id]
        for row in await outbox.unpublished(self.db, due):
            self._send(row)

    # -- dead letters an operator asked to redrive ----------------------------------------
    async def redrive(self) -> None:
        """Deliver requested dead letters to this service's consumers (the inbox applies each once)."""
        assert self.db is not None
        while self._redriven:
            letter_id, ok = self._redriven.popleft()
            self._redriving.discard(letter_id)
            if ok:
                await dlq.mark_redriven(self.db, letter_id)
        for letter in await dlq.requested(self.db):
            if letter.id in self._redriving:
                continue
            self._redriving.add(letter.id)
            log.info("%s redrives dead letter %d (%s %s)", self.child_id, letter.id,
                     letter.eventType, letter.eventId)
            self.system.deliver_event(decode_event(letter.payload), letter.topic, letter.eventKey,
                                      partial(self._on_redriven, letter.id))

    def _on_redriven(self, letter_id: int, ok: bool) -> None:
        self._redriven.append((letter_id, ok))
        self.system.request_redrive()


def _reply(ask: Ask, result: Any, error: BaseException | None) -> None:
    if ask.reply is not None:
        ask.reply(result, error)


def _refuse(message: Any, reason: str) -> None:
    """Answer work a down or stopping actor will not do: callers get 503, events go back."""
    if isinstance(message, Ask) and message.reply is not None:
        message.reply(None, ServiceUnavailable(reason))
    elif isinstance(message, Deliver) and message.done is not None:
        message.done(False)
