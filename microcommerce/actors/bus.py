"""The event bus port: publish/subscribe by topic and consumer group, with settlement.

Adapters: `LocalBus` here (in-process: dev, tests, chaos); a Kafka adapter for per-service
deployments. Requests between services are the other port (`actors/requests.py`).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable

from microcommerce.contracts.events import EventEnvelope

log = logging.getLogger(__name__)

# done(True): the consumer durably applied the event (or parked it as a dead letter);
# done(False): it could not take it now (stopped, escalated): deliver it again later.
DoneFn = Callable[[bool], None]
# deliver(envelope, topic, key, done): hand an event to a consumer, which calls done once settled.
DeliverFn = Callable[[EventEnvelope, str, str, DoneFn | None], None]


class EventBus(ABC):
    #: True when published events survive this process (Kafka): then shutdown flushes the outbox.
    durable: bool = False

    @abstractmethod
    def publish(self, topic: str, key: str, envelope: EventEnvelope,
                on_settled: DoneFn | None = None) -> None:
        """Hand an event to the transport; may be called from any thread.

        `on_settled(True)` once the event can no longer be lost (local bus: every declared
        consumer group applied it; a broker: it acknowledged the write); `on_settled(False)`
        when it could not be delivered now, so the outbox must send it again later.
        """

    def declare(self, topic: str, group: str) -> None:  # noqa: B027 - brokers need no declaration
        """Announce a consumer group that must apply every event of `topic`, before any is sent."""

    @abstractmethod
    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        """Each event of `topic` reaches one `deliver` per consumer group."""

    def dead_letter(self, topic: str, key: str, envelope: EventEnvelope, *,  # noqa: B027 - optional hook
                    consumer: str, error: str, attempts: int) -> None:
        """A consumer parked this event in its database; a broker adapter also copies it to
        `<topic>.dlq` so the broker's own tools see it."""

    def metrics(self) -> dict[str, float]:
        """Transport gauges and counters for /metrics (e.g. consumer lag), name → value."""
        return {}

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect the transport."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Disconnect; pending deliveries may be lost (the outbox keeps what matters)."""


class LocalBus(EventBus):
    """In-process adapter: publish hands the event straight to each group's consumer actor.

    Nothing here is durable, so an event is settled only when every declared group has applied
    it; until then its outbox row stays unpublished and survives a crash. An event for a
    declared group that has not subscribed yet waits here for it (services start one by one).
    Undeclared subscribers (tests, per-process observers) get every event but settle nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, DeliverFn]] = {}
        self._declared: dict[str, set[str]] = {}
        self._waiting: dict[tuple[str, str], list[tuple[str, EventEnvelope, DoneFn | None]]] = {}
        self.published = 0

    def declare(self, topic: str, group: str) -> None:
        with self._lock:
            self._declared.setdefault(topic, set()).add(group)

    def publish(self, topic: str, key: str, envelope: EventEnvelope,
                on_settled: DoneFn | None = None) -> None:
        with self._lock:
            self.published += 1
            subscribed = dict(self._groups.get(topic, {}))
            declared = self._declared.get(topic, set())
            settlement = _Settlement(declared, on_settled)
            for group in declared - subscribed.keys():
                self._waiting.setdefault((topic, group), []).append((key, envelope, settlement.done_for(group)))
        for group, deliver in subscribed.items():
            done = settlement.done_for(group) if group in declared else None
            _deliver(deliver, group, envelope, topic, key, done)
        settlement.check()

    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        with self._lock:
            self._groups.setdefault(topic, {})[group] = deliver
            # Hand over what waited, under the lock so a concurrent publish can't overtake it.
            for key, envelope, done in self._waiting.pop((topic, group), []):
                _deliver(deliver, group, envelope, topic, key, done)

    def subscriptions(self) -> dict[str, list[str]]:
        return {topic: sorted(groups) for topic, groups in self._groups.items()}

    def waiting(self) -> int:
        """Events held for declared groups that have not subscribed yet."""
        with self._lock:
            return sum(len(items) for items in self._waiting.values())


def _deliver(deliver: DeliverFn, group: str, envelope: EventEnvelope, topic: str, key: str,
             done: DoneFn | None) -> None:
    try:
        deliver(envelope, topic, key, done)
    except Exception:  # noqa: BLE001 - one bad consumer must not stop the others
        log.exception("delivery of %s to %s failed", envelope.eventType, group)
        if done is not None:
            done(False)


class _Settlement:
    """Counts the declared groups that still owe an answer for one event; reports once."""

    __slots__ = ("_owed", "_failed", "_on_settled", "_lock", "_reported")

    def __init__(self, groups: set[str], on_settled: DoneFn | None) -> None:
        self._owed = set(groups)
        self._failed = False
        self._on_settled = on_settled
        self._lock = threading.Lock()
        self._reported = False

    def done_for(self, group: str) -> DoneFn:
        def done(applied: bool = True) -> None:
            with self._lock:
                self._owed.discard(group)
                self._failed = self._failed or not applied
            self.check()

        return done

    def check(self) -> None:
        with self._lock:
            if self._reported or (self._owed and not self._failed):
                return
            self._reported = True
            ok = not self._failed
        if self._on_settled is not None:
            self._on_settled(ok)
