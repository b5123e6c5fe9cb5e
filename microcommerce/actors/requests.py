"""The request port: ask another service a command and await its typed reply.

Adapters: `LocalRequester` (services of this process, through their actor systems); an HTTP
adapter for services in other processes. Both sit behind one circuit breaker per target, so
every adapter fails fast the same way.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from contextvars import ContextVar
from typing import Any, Protocol

from microcommerce.actors.breaker import CircuitBreaker
from microcommerce.errors import ServiceError, ServiceUnavailable, UpstreamTimeout

# The id of the HTTP request that caused the current work. The HTTP edge sets it, `ActorSystem.ask`
# carries it on the `Ask`, the worker sets it around the handler, and a remote adapter sends it on:
# one id follows a call from service to service (logs, audit).
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Stamps each log record with the request being served (`-` outside of any)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True


class Endpoint(Protocol):
    """Something that answers commands: an in-process ActorSystem or a remote HTTP client."""

    async def ask(self, command: Any, *, timeout: float | None = None) -> Any: ...


class Requester(ABC):
    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._breakers_lock = threading.Lock()

    async def request(self, service: str, command: Any, *, timeout: float) -> Any:
        """Ask a service and await its reply; raises a ServiceError on failure or timeout.

        A service that keeps timing out or being unavailable trips its circuit breaker: callers
        then get 503 at once instead of each waiting out the timeout. A business answer
        (404, 409, ...) counts as the service being healthy.
        """
        breaker = self.breaker(service)
        breaker.before_call()
        try:
            reply = await self._send(service, command, timeout=timeout)
        except (ServiceUnavailable, UpstreamTimeout):
            breaker.failed()
            raise
        except ServiceError:
            breaker.succeeded()
            raise
        breaker.succeeded()
        return reply

    def breaker(self, service: str) -> CircuitBreaker:
        with self._breakers_lock:
            breaker = self._breakers.get(service)
            if breaker is None:
                breaker = self._breakers[service] = CircuitBreaker(service)
            return breaker

    @abstractmethod
    def register_endpoint(self, service: str, endpoint: Endpoint) -> None:
        """Make a service of this process reachable (its actor system registers itself)."""

    @abstractmethod
    async def _send(self, service: str, command: Any, *, timeout: float) -> Any:
        """The adapter's transport for one request (actor ask, HTTP call, ...)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (called on the loop that used them)."""

    async def close_all(self) -> None:
        """Release every connection, whichever loop opened it (the node calls this at stop)."""
        await self.close()


class LocalRequester(Requester):
    """Services of this process, asked through their actor systems."""

    def __init__(self) -> None:
        super().__init__()
        self._endpoints: dict[str, Endpoint] = {}

    def register_endpoint(self, service: str, endpoint: Endpoint) -> None:
        self._endpoints[service] = endpoint

    def is_local(self, service: str) -> bool:
        return service in self._endpoints

    async def _send(self, service: str, command: Any, *, timeout: float) -> Any:
        endpoint = self._endpoints.get(service)
        if endpoint is None:
            return await self._send_elsewhere(service, command, timeout=timeout)
        return await endpoint.ask(command, timeout=timeout)

    async def _send_elsewhere(self, service: str, command: Any, *, timeout: float) -> Any:
        """A service that is not in this process: here, unavailable; adapters reach it."""
        raise ServiceUnavailable(f"{service} service is not available")
