"""Pykka actors that run service code: each with its own thread, asyncio loop and DB pool.

`SupervisedActor` owns the boot/teardown cycle and reports crashes to the supervisor;
`Worker` runs a ServiceActor's command and event handlers; `OutboxRelay` publishes
committed outbox rows to the bus.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import pykka

from microcommerce.actors import outbox
from microcommerce.actors.messages import Ask, ChildFailed, Deliver, Flush, Restart, TimerFired
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


class SupervisedActor(pykka.ThreadingActor):
    # Daemon threads: a wedged handler must not keep the process alive after shutdown.
    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # pykka's default queue.Queue pays a Python-level Condition on every put/get; the C
        # SimpleQueue has the same put/get/empty/get_nowait/qsize and waits without the GIL.
        return queue.SimpleQueue()

    def __init__(self, system: ActorSystem, child_id: str) -> None:
        super().__init__()
        self.system = system
        self.child_id = child_id
        self.loop: asyncio.AbstractEventLoop | None = None
        self.db: Database | None = None
        self.gave_up = False
        self.timers = Timers(self.actor_ref)

    # -- lifecycle -------------------------------------------------------------------
    def on_start(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        # This thread only ever runs this loop: install its async-generator hooks for good, as
        # run_forever would, so `run`'s fast path tracks and finalizes them the same way.
        sys.set_asyncgen_hooks(firstiter=self.loop._asyncgen_firstiter_hook,  # noqa: SLF001
                               finalizer=self.loop._asyncgen_finalizer_hook)  # noqa: SLF001
        self._boot_supervised()

    def on_stop(self) -> None:
        self._teardown()
        self._refuse_pending()
        if self.loop is not None:
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine to completion on this actor's loop.

        Most handlers never wait on I/O (SQLite runs inline) so the task finishes by running
        the callbacks that are already ready; that skips run_until_complete's selector polls,
        whose syscalls hand the GIL to other threads. Anything that does wait (a request to
        another service, MySQL, a timer) continues on the real loop, as before.
        """
        loop = self.loop
        assert loop is not None
        task = loop.create_task(coro)
        if _run_ready(loop, task):
            return task.result()
        return loop.run_until_complete(task)

    def boot(self) -> None:
        self.db = self.system.open_database()
        self.run(self.db.connect())

    def teardown(self) -> None:
        """Subclass hook before the database closes."""

    def _teardown(self) -> None:
        self.timers.cancel_all()
        try:
            self.teardown()
        finally:
            if self.db is not None:
                db, self.db = self.db, None
                try:
                    self.run(db.close())
                except Exception:  # noqa: BLE001 - closing a broken pool must not mask the crash
                    log.debug("closing database of %s failed", self.child_id, exc_info=True)

    def _boot_supervised(self) -> None:
        try:
            self.boot()
        except Exception as exc:  # noqa: BLE001 - e.g. database down at start: supervise
            log.error("%s failed to start: %s", self.child_id, exc)
            self.crashed(exc)

    def crashed(self, exc: BaseException) -> None:
        """A supervision event: ask the supervisor, then restart (after backoff) or give up."""
        try:
            directive = self.system.supervisor.ask(ChildFailed(self.child_id, repr(exc)), timeout=5)
        except Exception:  # noqa: BLE001 - no supervisor (shutting down): stop quietly
            directive = None
        if directive is None or directive.action == "escalate":
            self.gave_up = True
            self._teardown()
            self.actor_ref.tell(pykka.messages._ActorStop())  # noqa: SLF001
            return
        time.sleep(directive.delay_s)
        self._restart()

    def _restart(self) -> None:
        self._teardown()
        try:
            self.boot()
        except Exception as exc:  # noqa: BLE001
            log.error("%s failed to restart: %s", self.child_id, exc)
            self.crashed(exc)

    def _refuse_pending(self) -> None:
        """Answer asks still queued when the actor stops, so no caller hangs (pykka drops tells)."""
        while not self.actor_inbox.empty():
            message = self.actor_inbox.get_nowait().message
            self.system.dead_letters.record(self.system.name, "stopped", message)
            if isinstance(message, Ask) and message.reply is not None:
                message.reply(None, ServiceUnavailable(f"{self.system.name} service is stopping"))

    # -- messages --------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        if self.gave_up:
            self.system.dead_letters.record(self.system.name, "escalated", message)
            if isinstance(message, Ask) and message.reply is not None:
                message.reply(None, ServiceUnavailable(f"{self.system.name} service is unavailable"))
            return None
        if isinstance(message, TimerFired):
            if self.timers.fired(message.name):
                self.receive(message.message, None)
        elif isinstance(message, Restart):
            self._restart()
        else:
            self.receive(message, None)
        return None

    def receive(self, message: Any, _unused: Any) -> None:
        raise NotImplementedError


class Worker(SupervisedActor):
    def __init__(self, system: ActorSystem, index: int, logic_cls: type[ServiceActor]) -> None:
        super().__init__(system, f"{system.name}-worker-{index}")
        self.index = index
        self.logic_cls = logic_cls
        self.logic: ServiceActor | None = None

    def boot(self) -> None:
        super().boot()
        assert self.db is not None
        ctx = WorkerContext(
            service=self.system.name,
            worker_index=self.index,
            settings=self.system.settings,
            db=self.db,
            bus=self.system.bus,
            timers=self.timers,
            request_flush=self.system.request_flush,
        )
        self.logic = self.logic_cls(ctx)
        self.run(self.logic.on_start())

    def teardown(self) -> None:
        if self.logic is not None:
            logic, self.logic = self.logic, None
            self.run(logic.on_stop())

    def receive(self, message: Any, _unused: Any) -> None:
        if isinstance(message, Ask):
            self._handle_ask(message)
        elif isinstance(message, Deliver):
            self._handle_event(message)
        else:
            self._handle_ask(Ask(message, None))  # a timer's message: a command nobody waits for

    def _handle_ask(self, ask: Ask) -> None:
        assert self.logic is not None
        try:
            if isinstance(ask.command, Ping):
                result: Any = self.run(self.db.ping()) if self.db else False
            else:
                result = self._dispatch(ask.command)
        except ServiceError as err:
            _reply(ask, None, err)
        except Exception as exc:  # noqa: BLE001 - a crash: answer the caller, then supervise
            log.exception("%s crashed handling %s", self.child_id, type(ask.command).__name__)
            _reply(ask, None, InternalError("Internal server error"))
            self.crashed(exc)
        else:
            _reply(ask, result, None)
        finally:
            self._after_message()

    def _dispatch(self, command: Any) -> Any:
        """Run a command; a transaction that lost a race (deadlock) was rolled back, so run the
        whole handler again, unless the command says its side effects must not repeat."""
        assert self.logic is not None
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                return self.run(self.logic.dispatch(command))
            except TransientError as exc:
                if attempt == TRANSIENT_ATTEMPTS or not getattr(command, "retry_transient", True):
                    log.warning("%s gave up on %s: %s", self.child_id, type(command).__name__, exc)
                    raise ServiceUnavailable(f"{self.system.name} service is busy, retry shortly",
                                             retry_after_s=1) from None
                time.sleep(random.uniform(0.002, 0.01) * attempt)
        raise AssertionError("unreachable")

    def _handle_event(self, delivery: Deliver) -> None:
        max_attempts = self.system.settings.event_max_attempts
        envelope = delivery.envelope
        try:
            for attempt in range(1, max_attempts + 1):
                if self.gave_up or self.logic is None:
                    self.system.dead_letters.record(self.system.name, "escalated", envelope)
                    return
                try:
                    self.run(self.logic.apply_event(envelope))
                    return
                except DatabaseUnavailable as exc:
                    self.crashed(exc)  # reconnect through a restart, then try again
                except Exception:  # noqa: BLE001 - retried, then dead-lettered
                    log.exception("%s failed on %s (attempt %d/%d)", self.child_id,
                                  envelope.eventType, attempt, max_attempts)
                    time.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))
            # Bounded retries are spent: park the event on the dead-letter topic, move on.
            self.system.dead_letters.record(self.system.name, "event-failed", envelope)
            self.system.bus.publish(f"{delivery.topic}.dlq", delivery.key, envelope)
        finally:
            self._after_message()
            if delivery.done is not None:
                delivery.done()

    def _after_message(self) -> None:
        if self.logic is not None and self.logic.ctx.outbox_dirty:
            self.logic.ctx.outbox_dirty = False
            self.system.request_flush()


class OutboxRelay(SupervisedActor):
    """Publishes committed outbox rows in id order and marks them published (at-least-once)."""

    def __init__(self, system: ActorSystem) -> None:
        super().__init__(system, f"{system.name}-outbox-relay")
        self.published = 0

    def boot(self) -> None:
        super().boot()
        poll_s = self.system.settings.outbox_poll_ms / 1000.0
        self.timers.start_periodic("poll", poll_s, Flush())
        self.flush()  # rows left by a crash between commit and publish go out now

    def teardown(self) -> None:
        if self.system.bus.durable and self.db is not None:
            self.flush()

    def receive(self, message: Any, _unused: Any) -> None:
        if isinstance(message, Flush):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001
                log.error("%s could not publish: %s", self.child_id, exc)
                self.crashed(exc)

    def flush(self) -> None:
        assert self.db is not None
        self.system.flush_requested.clear()
        while True:
            rows = self.run(outbox.pending(self.db))
            if not rows:
                return
            for row in rows:
                self.system.bus.publish(row.topic, row.event_key, decode_event(row.payload))
            self.run(outbox.mark_published(self.db, [row.id for row in rows]))
            self.published += len(rows)


def _run_ready(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> bool:
    """Run the loop's ready callbacks (as its next pass would, minus the selector poll) until
    `task` is done or nothing is runnable without waiting; True when the task is done."""
    ready = loop._ready  # type: ignore[attr-defined]  # noqa: SLF001 - asyncio's run queue
    asyncio.events._set_running_loop(loop)  # noqa: SLF001 - get_running_loop() works inside
    try:
        while ready and not task.done():
            handle = ready.popleft()
            if not handle._cancelled:  # noqa: SLF001 - skipped exactly as _run_once does
                handle._run()  # noqa: SLF001
    finally:
        asyncio.events._set_running_loop(None)  # noqa: SLF001
    return task.done()


def _reply(ask: Ask, result: Any, error: BaseException | None) -> None:
    if ask.reply is not None:
        ask.reply(result, error)
