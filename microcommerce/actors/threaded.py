"""The threaded runner: each actor is a pykka thread with its own asyncio loop, on wall time.

An actor's async handler runs to completion on its own loop before the next message is taken,
so the actor contract (one message at a time) holds, and a handler that waits (a request to
another service, MySQL, a restart backoff) blocks only its own thread.
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pykka

from microcommerce.actors.runtime import Actor, ActorRef, ActorStopped, ReplyFn, Runtime, settle
from microcommerce.actors.timers import SCHEDULER, TimerScheduler


class ThreadedRef:
    """An `ActorRef` over a pykka ref."""

    __slots__ = ("name", "_ref")

    def __init__(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        self.name = name
        self._ref = ref

    def tell(self, message: Any) -> None:
        try:
            self._ref.tell(message)
        except pykka.ActorDeadError:
            raise ActorStopped(self.name) from None

    def is_alive(self) -> bool:
        return self._ref.is_alive()

    def mailbox_depth(self) -> int:
        return self._ref.actor_inbox.qsize()

    def ask_pykka(self, message: Any) -> pykka.Future[Any]:
        try:
            return self._ref.ask(message, block=False)
        except pykka.ActorDeadError:
            raise ActorStopped(self.name) from None

    def stop_blocking(self, timeout: float) -> None:
        try:
            self._ref.stop(block=True, timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            pass


class _Host(pykka.ThreadingActor):
    # Daemon threads: a wedged handler must not keep the process alive after shutdown.
    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # pykka's default queue.Queue pays a Python-level Condition on every put/get; the C
        # SimpleQueue has the same put/get/empty/get_nowait/qsize and waits without the GIL.
        return queue.SimpleQueue()

    def __init__(self, actor: Actor, runtime: Runtime) -> None:
        super().__init__()  # pykka makes `actor_ref` here, before the thread runs `started`
        self.actor = actor
        actor.ref = ThreadedRef(actor.name, self.actor_ref)
        actor.runtime = runtime
        self.loop: asyncio.AbstractEventLoop | None = None

    def on_start(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        # This thread only ever runs this loop: install its async-generator hooks for good, as
        # run_forever would, so `run`'s fast path tracks and finalizes them the same way.
        sys.set_asyncgen_hooks(firstiter=self.loop._asyncgen_firstiter_hook,  # noqa: SLF001
                               finalizer=self.loop._asyncgen_finalizer_hook)  # noqa: SLF001
        self.run(self.actor.started())

    def on_stop(self) -> None:
        try:
            self.run(self.actor.stopped())
        finally:
            while not self.actor_inbox.empty():
                self.actor.refuse(self.actor_inbox.get_nowait().message)
            if self.loop is not None:
                self.loop.close()

    def on_receive(self, message: Any) -> Any:
        return self.run(self.actor.receive(message))

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


class ThreadedRuntime(Runtime):
    def spawn(self, actor: Actor) -> ActorRef:
        _Host.start(actor, self)
        return actor.ref

    async def ask(self, ref: ActorRef, message: Any, *, timeout: float) -> Any:
        # Asks here are rare (supervision, start-up): the caller's thread waits, as pykka's would.
        assert isinstance(ref, ThreadedRef)
        return ref.ask_pykka(message).get(timeout=timeout)

    async def stop(self, ref: ActorRef, *, timeout: float) -> None:
        assert isinstance(ref, ThreadedRef)
        await asyncio.to_thread(ref.stop_blocking, timeout)

    def reply_to(self, future: asyncio.Future[Any]) -> ReplyFn:
        replies = _replies_for(future.get_loop())

        def reply(result: Any, error: BaseException | None) -> None:
            replies.put(future, result, error)

        return reply

    @property
    def timer_scheduler(self) -> TimerScheduler:
        return SCHEDULER

    async def isolated(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return await asyncio.to_thread(asyncio.run, work())


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


class _ReplyInbox:
    """Replies bound for one event loop, settled on that loop in arrival order.

    Worker threads append; only the first reply of a batch wakes the loop (call_soon_threadsafe
    writes its self-pipe, a syscall that also hands the GIL around); replies that arrive before
    the loop drains ride along. Under load that is one wake-up for many replies.
    """

    __slots__ = ("loop", "_items", "_lock", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def put(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        with self._lock:
            self._items.append((future, result, error))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed; fail like a direct call_soon_threadsafe
            with self._lock:
                self._scheduled = False
                self._items.clear()
            raise

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        for future, result, error in items:
            settle(future, result, error)


_loop_local = threading.local()


def _replies_for(loop: asyncio.AbstractEventLoop) -> _ReplyInbox:
    """The reply inbox of `loop`; asks run on their loop's thread, so a thread-local finds it."""
    replies = getattr(_loop_local, "replies", None)
    if replies is None or replies.loop is not loop:
        replies = _loop_local.replies = _ReplyInbox(loop)
    return replies
