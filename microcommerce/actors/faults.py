"""The runtime's fault seam: what a fault injector (the chaos harness) may do to a service's
workers without any service knowing. Production runs with no injector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from microcommerce.storage import Database


class FaultInjector(Protocol):
    """Awaited by a worker around each message; may raise (a crash) or sleep (a stall).

    `phase` is "before" (nothing done yet) or "after" (the handler returned: its transaction
    committed, its reply not yet sent) — a crash there is a crash after the commit.
    """

    async def on_command(self, service: str, command: Any, phase: str) -> None: ...

    async def on_event(self, service: str, event_type: str, phase: str) -> None: ...


# Builds a service's database handle from its URL (chaos wraps the real adapter with fault points).
DatabaseFactory = Callable[[str, str], Database]  # (service, url) -> Database
