"""The runner port: what hosts an actor system's actors, and what an actor may ask of its host.

An `Actor` is runtime-agnostic: one mailbox, one message at a time, async handlers. A runner
spawns it and feeds it its mail:

- `ThreadedRuntime` (actors/threaded.py): a pykka thread and an asyncio loop per actor, wall
  time. `dev`, `serve` and the threaded chaos harness run on it.
- `SimulatedRuntime` (actors/simulated.py): every actor on one thread and one loop, the next
  mailbox to run drawn from a seed, virtual time. The deterministic chaos runner runs on it.

Service code never sees which; docs/runners.md is the one-page contract.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from microcommerce.actors.timers import TimerScheduler

# reply(result, error): how an answer gets back to whoever awaits it (maybe on another thread).
ReplyFn = Callable[[Any, BaseException | None], None]


class ActorStopped(Exception):
    """The actor is not running (stopped, or never started): the message was not taken."""


class ActorRef(Protocol):
    name: str

    def tell(self, message: Any) -> None:
        """Queue a message; raises ActorStopped when the actor no longer takes mail."""

    def is_alive(self) -> bool: ...

    def mailbox_depth(self) -> int: ...


class Actor:
    """Base of every actor: the runtime calls `started`, then `receive` once per message (never
    two at a time), then `stopped`; mail left when it stops goes to `refuse`."""

    name = "actor"
    ref: ActorRef
    runtime: Runtime

    async def started(self) -> None:
        """First thing on the actor's own loop."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value answers an `ask`."""
        raise NotImplementedError

    async def stopped(self) -> None:
        """Last thing on the actor's own loop."""

    def refuse(self, message: Any) -> None:
        """A message the actor will never handle (it stopped first)."""


class Runtime(ABC):
    #: True when everything runs on one thread and loop: no blocking waits, no threads.
    deterministic = False

    @abstractmethod
    def spawn(self, actor: Actor) -> ActorRef:
        """Start `actor` (its `started` runs before any of its mail) and return its ref."""

    @abstractmethod
    async def ask(self, ref: ActorRef, message: Any, *, timeout: float) -> Any:
        """Send `message` and await what the actor's `receive` returns (or raises)."""

    @abstractmethod
    async def stop(self, ref: ActorRef, *, timeout: float) -> None:
        """Let the actor finish the message in hand, run `stopped`, refuse the rest."""

    @abstractmethod
    def reply_to(self, future: asyncio.Future[Any]) -> ReplyFn:
        """A reply function that settles `future` on its own loop, from wherever it is called."""

    @property
    @abstractmethod
    def timer_scheduler(self) -> TimerScheduler:
        """Where actors' timers are kept (a thread with the wall clock, or virtual time)."""

    @abstractmethod
    async def isolated(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run `work()` away from the caller's loop when the runtime has threads (migrations and
        read-only checks that open their own connections); inline when it has one thread."""


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete an awaited reply once (a late answer after a timeout is dropped)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
