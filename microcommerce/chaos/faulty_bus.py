"""Faults on the event bus: deliveries dropped, duplicated, delayed or reordered.

`FaultyBus` wraps the real in-process bus and sits between it and each consumer group, so
`LocalBus`'s settlement stays the truth: an outbox row is settled only once every declared
group applied its event.

- drop: the delivery to one group is withheld and reported not settled (`done(False)`), so the
  outbox relay sends the row again after its retry pause — what Kafka does after a consumer
  crashed before committing its offset. The other groups get the repeat too; inboxes dedupe.
- dup: the group gets the event twice (the second copy settles nothing); its inbox dedupes.
- delay: the delivery waits 0-300 ms on a timer. Later events of the same key wait behind it
  (a Kafka partition stalls as a whole), so only events of different keys overtake it.
- reorder: the delivery is held until the next one of the same topic and group with another
  key has gone (or 500 ms passed): order across keys changes, order within a key does not.

Observers (undeclared subscribers: tests, the harness) see every event as published. After
`plan.stop()` everything held is released in order and deliveries pass straight through.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from microcommerce.actors.bus import DeliverFn, DoneFn, EventBus
from microcommerce.contracts.events import EventEnvelope

if TYPE_CHECKING:
    from .faults import FaultPlan

log = logging.getLogger(__name__)

BUS_FAMILIES = ("drop", "delay", "reorder", "dup")  # precedence when several fire at once
MAX_DELAY_MS = 300
REORDER_HOLD_S = 0.5

Stream = tuple[str, str, str]  # topic, group, key
# later(seconds, fn): run fn after a while (a thread timer, or the simulation's virtual clock)
Later = Callable[[float, Callable[[], None]], object]


def thread_timer(seconds: float, fn: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(seconds, fn)
    timer.daemon = True
    timer.start()
    return timer


@dataclass(eq=False)
class _Hold:
    """Deliveries of one stream waiting behind a delayed or reordered one, in order."""

    items: deque[tuple[DeliverFn, EventEnvelope, DoneFn | None]] = field(default_factory=deque)


class FaultyBus(EventBus):
    def __init__(self, inner: EventBus, plan: FaultPlan, later: Later = thread_timer) -> None:
        self.inner = inner
        self.plan = plan
        self._later = later
        self.durable = inner.durable
        # Deliveries are tells into mailboxes (microseconds): doing them under one lock is what
        # keeps a released hold and a new delivery of the same key in order.
        self._lock = threading.RLock()
        self._held: dict[Stream, _Hold] = {}
        # (topic, group) -> holds waiting for the next delivery of another key there
        self._reordered: dict[tuple[str, str], list[tuple[Stream, _Hold]]] = {}
        plan.on_stop(self.release_all)

    def __getattr__(self, name: str) -> Any:  # LocalBus extras: subscriptions(), waiting(), published
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- the port, passed through -----------------------------------------------------------
    def publish(self, topic: str, key: str, envelope: EventEnvelope, on_settled: DoneFn | None = None) -> None:
        self.inner.publish(topic, key, envelope, on_settled)

    def declare(self, topic: str, group: str) -> None:
        self.inner.declare(topic, group)

    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        self.inner.subscribe(topic, group, partial(self._deliver, group, deliver))

    def dead_letter(self, topic: str, key: str, envelope: EventEnvelope, *, consumer: str, error: str,
                    attempts: int) -> None:
        self.inner.dead_letter(topic, key, envelope, consumer=consumer, error=error, attempts=attempts)

    def metrics(self) -> dict[str, float]:
        return self.inner.metrics()

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.release_all()
        self.inner.stop()

    def held(self) -> int:
        """Deliveries held back right now (delayed or reordered)."""
        with self._lock:
            return sum(len(hold.items) for hold in self._held.values())

    # -- fault points -------------------------------------------------------------------------
    def _deliver(self, group: str, deliver: DeliverFn, envelope: EventEnvelope, topic: str, key: str,
                 done: DoneFn | None) -> None:
        if done is None:  # an observer: it settles nothing and sees the truth
            deliver(envelope, topic, key, done)
            return
        stream = (topic, group, key)
        with self._lock:
            hold = self._held.get(stream)
            if hold is not None:  # an earlier event of this key is held: keep the key's order
                hold.items.append((deliver, envelope, done))
                return
            fault = self._choose(stream)
            if fault is None:
                deliver(envelope, topic, key, done)
            else:
                family, n, u = fault
                self._inject(family, n, u, stream, deliver, envelope, done)
            self._release_reordered(topic, group, stream)

    def _choose(self, stream: Stream) -> tuple[str, int, float] | None:
        target = "/".join(stream)
        # Every family counts the delivery, fired or not: the n-th delivery's fate per family
        # never depends on what another family decided.
        fired = [(family, decision) for family in BUS_FAMILIES
                 if (decision := self.plan.decide(family, target)) is not None]
        if not fired:
            return None
        family, (n, u) = fired[0]
        return family, n, u

    def _inject(self, family: str, n: int, u: float, stream: Stream, deliver: DeliverFn,
                envelope: EventEnvelope, done: DoneFn) -> None:
        topic, group, key = stream
        target = "/".join(stream)
        if family == "drop":
            self.plan.record("drop", target, n)
            done(False)  # not applied: the outbox sends it again
        elif family == "dup":
            self.plan.record("dup", target, n)
            deliver(envelope, topic, key, done)
            deliver(envelope, topic, key, None)
        elif family == "delay":
            delay_ms = int(u * MAX_DELAY_MS)
            self.plan.record("delay", target, n, delay_ms=delay_ms)
            self._hold(stream, deliver, envelope, done, delay_ms / 1000.0)
        elif family == "reorder":
            self.plan.record("reorder", target, n)
            hold = self._hold(stream, deliver, envelope, done, REORDER_HOLD_S)
            self._reordered.setdefault((topic, group), []).append((stream, hold))

    def _hold(self, stream: Stream, deliver: DeliverFn, envelope: EventEnvelope, done: DoneFn,
              seconds: float) -> _Hold:
        hold = self._held[stream] = _Hold()
        hold.items.append((deliver, envelope, done))
        self._later(seconds, partial(self._release, stream, hold))
        return hold

    def _release_reordered(self, topic: str, group: str, delivered: Stream) -> None:
        """A delivery went out on (topic, group): the holds of other keys waiting for it go too."""
        waiting = self._reordered.pop((topic, group), None)
        if not waiting:
            return
        keep = [(stream, hold) for stream, hold in waiting if stream == delivered]
        if keep:
            self._reordered[(topic, group)] = keep
        for stream, hold in waiting:
            if stream != delivered:
                self._release_locked(stream, hold)

    def _release(self, stream: Stream, hold: _Hold) -> None:
        with self._lock:
            self._release_locked(stream, hold)

    def _release_locked(self, stream: Stream, hold: _Hold | None) -> None:
        """Deliver what a hold kept, in order (`hold`: only if it is still the stream's hold)."""
        current = self._held.get(stream)
        if current is None or (hold is not None and current is not hold):
            return
        del self._held[stream]
        topic, _, key = stream
        for deliver, envelope, done in current.items:
            try:
                deliver(envelope, topic, key, done)
            except Exception:  # noqa: BLE001 - as LocalBus: a failed delivery goes back to its sender
                log.exception("delayed delivery of %s failed", envelope.eventType)
                if done is not None:
                    done(False)

    def release_all(self) -> None:
        """Hand over everything held back (the faults stopped)."""
        with self._lock:
            for stream in sorted(self._held):
                self._release_locked(stream, None)
            self._reordered.clear()
