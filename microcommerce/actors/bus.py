"""The bus port: events (publish/subscribe by topic and consumer group) and requests between services.

Adapters: `LocalBus` here (in-process, dev and tests); a Kafka adapter for events plus an HTTP
client for requests; a fault-injecting wrapper for the chaos harness. Services only see `Bus`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from microcommerce.actors.breaker import CircuitBreaker
from microcommerce.contracts.events import EventEnvelope
from microcommerce.errors import ServiceError, ServiceUnavailable, UpstreamTimeout

log = logging.getLogger(__name__)

# deliver(envelope, topic, key, done): hand an event to a consumer; call done() once handled.
DeliverFn = Callable[[EventEnvelope, str, str, Callable[[], None] | None], None]


class Endpoint(Protocol):
    """Something that answers commands: an in-process ActorSystem or a remote HTTP client."""

    async def ask(self, command: Any, *, timeout: float | None = None) -> Any: ...


class Bus(ABC):
    #: True when published events survive this process (Kafka): then shutdown flushes the outbox.
    durable: bool = False

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}
        self._breakers_lock = threading.Lock()

    @abstractmethod
    def publish(self, topic: str, key: str, envelope: EventEnvelope) -> None:
        """Hand an event to the transport; may be called from any thread."""

    @abstractmethod
    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        """Each event of `topic` reaches one `deliver` per consumer group."""

    @abstractmethod
    def register_endpoint(self, service: str, endpoint: Endpoint) -> None:
        """Make a service reachable by `request` (in-process services register themselves)."""

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
    async def _send(self, service: str, command: Any, *, timeout: float) -> Any:
        """The adapter's transport for one request (actor ask, HTTP call, ...)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect the transport."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Disconnect; pending deliveries may be lost (the outbox keeps what matters)."""


class LocalBus(Bus):
    """In-process adapter: publish hands the event straight to each group's consumer actor."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, DeliverFn]] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self.published = 0

    def publish(self, topic: str, key: str, envelope: EventEnvelope) -> None:
        self.published += 1
        for group, deliver in list(self._groups.get(topic, {}).items()):
            try:
                deliver(envelope, topic, key, None)
            except Exception:  # noqa: BLE001 - one bad consumer must not stop the others
                log.exception("delivery of %s to %s failed", envelope.eventType, group)

    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        with self._lock:
            self._groups.setdefault(topic, {})[group] = deliver

    def register_endpoint(self, service: str, endpoint: Endpoint) -> None:
        self._endpoints[service] = endpoint

    async def _send(self, service: str, command: Any, *, timeout: float) -> Any:
        endpoint = self._endpoints.get(service)
        if endpoint is None:
            raise ServiceUnavailable(f"{service} service is not available")
        return await endpoint.ask(command, timeout=timeout)

    def subscriptions(self) -> dict[str, list[str]]:
        return {topic: sorted(groups) for topic, groups in self._groups.items()}
