"""The deterministic runner: every actor on one thread and one asyncio loop, in virtual time.

- Each actor keeps its own mailbox and handles one message at a time (the actor contract of
  the threaded runtime), but which runnable mailbox goes next is drawn from a seeded generator.
  A handler that awaits another service yields, and another actor runs meanwhile.
- `VirtualTimeLoop` never sleeps: when nothing is runnable, its clock jumps to the next timer,
  so a 15-minute reservation TTL expires as soon as everything before it has run.
- Every delivery and every timer that fires is reported to `trace` with the virtual time.

Given the same seed and the same program, a run is the same sequence of steps: that is what
makes a failing chaos seed a complete, replayable bug report. The environment seam
(`microcommerce/environment.py`) supplies the matching clock, randomness and ids.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import selectors
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from microcommerce.actors.messages import Ask, Deliver, TimerFired
from microcommerce.actors.runtime import Actor, ActorRef, ActorStopped, ReplyFn, Runtime, settle
from microcommerce.actors.timers import TimerEntry, TimerScheduler

log = logging.getLogger(__name__)

# trace(kind, fields): one step of the run, in order (the runner adds the virtual time).
TraceFn = Callable[[str, dict[str, Any]], None]
STALL_WAIT_S = 10.0  # wall time to wait for a stray thread before calling the run stalled
GC_EVERY_STEPS = 20_000  # see `deterministic_gc`


@contextmanager
def deterministic_gc() -> Iterator[None]:
    """Collect garbage only where the schedule says so.

    Python's collector runs when allocation counts cross a threshold, and those counts carry
    over from whatever ran before in the process; finalizers it runs can shift which task
    becomes ready first. So during a run automatic collection is off, everything older than
    the run is frozen out of reach, and the runtime collects every `GC_EVERY_STEPS` steps.
    """
    gc.collect()
    gc.freeze()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


class SimulationStalled(RuntimeError):
    """Nothing can run and no timer is due: something waits for what will never happen."""


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls real descriptors without waiting; instead of waiting, moves the clock forward."""

    def __init__(self, stall_wait_s: float) -> None:
        super().__init__()
        self.now = 0.0
        self.stall_wait_s = stall_wait_s

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # Only a thread (none should exist here) could still wake the loop.
            events = super().select(self.stall_wait_s)
            if not events:
                raise SimulationStalled("simulation stalled: nothing runnable and no timer pending")
            return events
        self.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is virtual and advances only when nothing is runnable."""

    def __init__(self, stall_wait_s: float = STALL_WAIT_S) -> None:
        self._virtual = _VirtualSelector(stall_wait_s)
        super().__init__(self._virtual)

    def time(self) -> float:
        return self._virtual.now


@dataclass(slots=True)
class _Start:
    pass


@dataclass(slots=True)
class _Stop:
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Asked:
    message: Any
    answer: asyncio.Future[Any]


class SimulatedRef:
    __slots__ = ("name", "actor", "mailbox", "alive", "busy", "_runtime")

    def __init__(self, name: str, actor: Actor, runtime: SimulatedRuntime) -> None:
        self.name = name
        self.actor = actor
        self.mailbox: deque[Any] = deque()
        self.alive = True
        self.busy = False
        self._runtime = runtime

    def tell(self, message: Any) -> None:
        if not self.alive:
            raise ActorStopped(self.name)
        self.mailbox.append(message)
        self._runtime._wake(self)  # noqa: SLF001 - the ref and its runtime are one unit

    def is_alive(self) -> bool:
        return self.alive

    def mailbox_depth(self) -> int:
        return len(self.mailbox)


class SimulatedRuntime(Runtime):
    deterministic = True

    def __init__(self, seed: int, trace: TraceFn | None = None) -> None:
        self._rng = random.Random(f"scheduler-{seed}")
        self._trace = trace
        self._runnable: dict[str, SimulatedRef] = {}
        self._step_pending = False
        self._timers = _VirtualTimers(self)
        self.steps = 0

    # -- the port ----------------------------------------------------------------------------
    def spawn(self, actor: Actor) -> ActorRef:
        ref = SimulatedRef(actor.name, actor, self)
        actor.ref = ref
        actor.runtime = self
        ref.tell(_Start())
        return ref

    async def ask(self, ref: ActorRef, message: Any, *, timeout: float) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        ref.tell(_Asked(message, answer))
        return await asyncio.wait_for(answer, timeout)

    async def stop(self, ref: ActorRef, *, timeout: float) -> None:
        assert isinstance(ref, SimulatedRef)
        if not ref.alive:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ref.tell(_Stop(done))
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            log.warning("%s did not stop in %gs", ref.name, timeout)

    def reply_to(self, future: asyncio.Future[Any]) -> ReplyFn:
        return partial(settle, future)

    @property
    def timer_scheduler(self) -> TimerScheduler:
        return self._timers

    async def isolated(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return await work()

    # -- the scheduler -----------------------------------------------------------------------
    def trace(self, kind: str, fields: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace(kind, fields)

    def _wake(self, ref: SimulatedRef) -> None:
        if ref.busy or ref.name in self._runnable:
            return
        self._runnable[ref.name] = ref
        if not self._step_pending:
            self._step_pending = True
            asyncio.get_running_loop().call_soon(self._step)

    def _step(self) -> None:
        """Pick one runnable actor by the seed and let it handle its next message."""
        self._step_pending = False
        if not self._runnable:
            return
        names = list(self._runnable)
        ref = self._runnable.pop(names[self._rng.randrange(len(names))])
        ref.busy = True
        self.steps += 1
        if self.steps % GC_EVERY_STEPS == 0:
            gc.collect()  # at a step the seed decides, not when allocations say (deterministic_gc)
        asyncio.get_running_loop().create_task(self._handle_next(ref))
        if self._runnable:
            self._step_pending = True
            asyncio.get_running_loop().call_soon(self._step)

    async def _handle_next(self, ref: SimulatedRef) -> None:
        message = ref.mailbox.popleft()
        actor = ref.actor
        if self._trace is not None:  # describing every message costs; only a traced run wants it
            self._trace("deliver", {"to": ref.name, "message": describe(message)})
        try:
            if isinstance(message, _Start):
                await actor.started()
            elif isinstance(message, _Stop):
                await self._stop_now(ref, message)
            elif isinstance(message, _Asked):
                try:
                    result = await actor.receive(message.message)
                except Exception as exc:  # noqa: BLE001 - the asker gets it, as with pykka
                    settle(message.answer, None, exc)
                else:
                    settle(message.answer, result, None)
            else:
                await actor.receive(message)
        except Exception:  # noqa: BLE001 - an actor that raises out of a tell stops (pykka's rule)
            log.exception("%s failed on %s; stopping it", ref.name, describe(message))
            await self._stop_now(ref, None)
        finally:
            ref.busy = False
            if ref.mailbox and ref.alive:
                self._wake(ref)

    async def _stop_now(self, ref: SimulatedRef, stop: _Stop | None) -> None:
        try:
            await ref.actor.stopped()
        finally:
            ref.alive = False
            while ref.mailbox:
                pending = ref.mailbox.popleft()
                if isinstance(pending, _Stop | _Asked):
                    future = pending.done if isinstance(pending, _Stop) else pending.answer
                    settle(future, None, None if isinstance(pending, _Stop) else ActorStopped(ref.name))
                else:
                    ref.actor.refuse(pending)
            if stop is not None:
                settle(stop.done, None, None)


class _VirtualTimers(TimerScheduler):
    """Actors' timers on the loop's virtual clock."""

    def __init__(self, runtime: SimulatedRuntime) -> None:
        self._runtime = runtime
        self._seq = 0

    def schedule(self, name: str, target: ActorRef, message: Any, delay: float,
                 interval: float | None = None) -> TimerEntry:
        loop = asyncio.get_running_loop()
        self._seq += 1
        entry = TimerEntry(loop.time() + delay, self._seq, name, target, message, interval)
        loop.call_later(delay, self._fire, entry)
        return entry

    def _fire(self, entry: TimerEntry) -> None:
        if entry.cancelled:
            return
        self._runtime.trace("timer", {"to": entry.target.name, "timer": entry.name})
        try:
            entry.target.tell(TimerFired(entry.name, entry.message))
        except ActorStopped:
            entry.cancelled = True
            return
        if entry.interval is not None:
            asyncio.get_running_loop().call_later(entry.interval, self._fire, entry)


def describe(message: Any) -> str:
    """A short, stable description of a message for the trace (no addresses, no timings)."""
    if isinstance(message, _Asked):
        return f"ask {describe(message.message)}"
    if isinstance(message, Ask):
        key = getattr(message.command, "routing_key", None)
        name = type(message.command).__name__
        return f"{name} key={key}" if key is not None else name
    if isinstance(message, Deliver):
        return f"{message.envelope.eventType} {message.envelope.eventId} ({message.topic})"
    if isinstance(message, TimerFired):
        return f"timer {message.name}: {describe(message.message)}"
    if isinstance(message, _Start):
        return "start"
    if isinstance(message, _Stop):
        return "stop"
    return type(message).__name__
