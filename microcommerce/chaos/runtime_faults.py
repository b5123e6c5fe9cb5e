"""Faults in the actor runtime: a handler crashes (before or after its commit) or stalls.

The worker calls the injector around every command and event (`actors/faults.py`). A raise
there is what a bug in the handler would be: for a command the worker answers 500 and the
supervisor restarts it (after the commit, the caller is told it failed although the change
is in); for an event the worker retries it (the inbox makes the retry after a commit a no-op).
Command crashes take from the service's restart budget so faults alone rarely escalate it.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultPlan

MIN_STALL_MS, MAX_STALL_MS = 50, 500
MAX_STALL_S = MAX_STALL_MS / 1000

# Per message being handled (a worker handles each in its own task, in either runtime), so
# they stay right when one thread interleaves many workers.
_service: ContextVar[str | None] = ContextVar("chaos_service", default=None)
_crash_after: ContextVar[str | None] = ContextVar("chaos_crash_after", default=None)


def current_service() -> str | None:
    """The service whose worker is handling the current message (None elsewhere, e.g. the
    HTTP loop); the requester uses it to know who is calling."""
    return _service.get()


class ChaosCrash(RuntimeError):
    """An injected crash."""


class RuntimeFaults:
    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    async def on_command(self, service: str, command: Any, phase: str) -> None:
        await self._around(service, "command", type(command).__name__, phase)

    async def on_event(self, service: str, event_type: str, phase: str) -> None:
        await self._around(service, "event", event_type, phase)

    async def _around(self, service: str, kind: str, name: str, phase: str) -> None:
        if phase == "before":
            _service.set(service)
            _crash_after.set(None)
            stall_s = self._stall(service, name)
            if stall_s:
                await asyncio.sleep(stall_s)  # the worker's mailbox waits, as a stuck thread's would
            self._crash_before(service, kind, name)
        elif phase == "after":
            pending = _crash_after.get()
            _crash_after.set(None)
            if pending is not None and not self.plan.stopped:
                raise ChaosCrash(f"chaos: crash after {pending}")

    def _stall(self, service: str, name: str) -> float:
        stream = f"{service}/{name}"
        decision = self.plan.decide("slow", stream)
        if decision is None:
            return 0.0
        n, u = decision
        stall_ms = MIN_STALL_MS + int(u * (MAX_STALL_MS - MIN_STALL_MS))
        self.plan.record("slow", stream, n, stall_ms=stall_ms)
        return stall_ms / 1000.0

    def _crash_before(self, service: str, kind: str, name: str) -> None:
        stream = f"{service}/{name}"
        decision = self.plan.decide("crash", stream)
        if decision is None:
            return
        n, u = decision
        if kind == "command" and not self.plan.allow_restart(service):
            return  # the service had its share of restarts for now
        phase = "before" if u < 0.5 else "after"
        self.plan.record("crash", stream, n, phase=phase, kind=kind)
        what = f"{kind} {name} in {service}"
        if phase == "before":
            raise ChaosCrash(f"chaos: crash before {what}")
        _crash_after.set(what)
