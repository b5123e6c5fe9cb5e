"""One Kafka consumer group member on its own thread (kafka-python blocks: never on an event loop).

The thread polls, hands each record to the group's `deliver` and commits, per partition, only
the offsets whose record and every earlier one were settled (`OffsetTracker`). Settlements
(`done(ok)`) come from worker threads; they are queued and applied by this thread, which alone
touches the KafkaConsumer. `done(False)` seeks the partition back to that record and pauses it
for a moment: nothing is skipped and a partition's order holds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

from microcommerce.actors.bus import DeliverFn
from microcommerce.actors.requests import current_request_id
from microcommerce.contracts.events import EventEnvelope, decode_event
from microcommerce.kafka.offsets import OffsetTracker

if TYPE_CHECKING:
    from microcommerce.kafka.bus import KafkaBus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerOptions:
    bootstrap: list[str]
    group_id: str
    auto_offset_reset: str  # "earliest" for service groups, "latest" for per-process observers
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_interval_ms: int
    fetch_max_wait_ms: int
    settles: bool  # False: an undeclared observer; its events count as done once handed over


class GroupConsumer(ConsumerRebalanceListener):
    MAX_IN_FLIGHT = 1000     # delivered, not yet settled: pause fetching above this
    RESUME_BELOW = 500
    RETRY_PAUSE_S = 1.0      # a refused record is delivered again after this pause
    POLL_MS = 100            # also the longest a settlement waits to be committed
    COMMIT_INTERVAL_S = 0.2
    COMMIT_TIMEOUT_MS = 2000
    LAG_REFRESH_S = 3.0
    CONNECT_RETRY_S = 1.0
    POSITIONS_KEPT = 5000    # event id → record, for dead letters of in-flight records

    def __init__(self, bus: KafkaBus, group: str, topics: dict[str, DeliverFn],
                 options: ConsumerOptions) -> None:
        self.bus = bus
        self.group = group
        self.options = options
        self._topics = dict(topics)
        self._topics_changed = False
        self._lock = threading.Lock()
        self._settlements: deque[tuple[TopicPartition, int, int, str, bool]] = deque()
        self._tracker = OffsetTracker()
        self._retry_at: dict[TopicPartition, float] = {}
        self._paused: set[TopicPartition] = set()
        self._backpressured = False
        self._positions: dict[str, tuple[int, int]] = {}
        self._consumer: KafkaConsumer | None = None
        self._stopping = threading.Event()
        self._commit_on_stop = True
        self._last_commit = 0.0
        self._last_lag = 0.0
        self.consumed = 0
        self.lag: dict[tuple[str, int], int] = {}
        self.in_flight = 0
        self.assigned: frozenset[TopicPartition] = frozenset()  # after the last poll
        self._thread = threading.Thread(target=self._run, name=f"kafka-{group}", daemon=True)

    # -- called from other threads -----------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def add_topic(self, topic: str, deliver: DeliverFn) -> None:
        with self._lock:
            self._topics[topic] = deliver
            self._topics_changed = True

    def stop(self, *, commit: bool = True, timeout: float = 10.0) -> None:
        """Commit what is settled (unless `commit` is False: a crash) and leave the group."""
        self._commit_on_stop = commit
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def position_of(self, event_id: str) -> tuple[int, int] | None:
        """(partition, offset) of an in-flight record by its event id, if this member has it."""
        return self._positions.get(event_id)

    # -- the consumer thread ------------------------------------------------------------------
    def _run(self) -> None:
        consumer = self._connect()
        if consumer is None:
            return
        self._consumer = consumer
        try:
            while not self._stopping.is_set():
                self._step(consumer)
        except Exception:  # noqa: BLE001 - must never die silently; the bus logs it
            log.exception("kafka consumer %s stopped on an error", self.group)
        finally:
            self._close(consumer)

    def _connect(self) -> KafkaConsumer | None:
        """Create the member; a broker that is down at start is waited for, not fatal."""
        opts = self.options
        while not self._stopping.is_set():
            try:
                self.bus.ensure_topics(list(self._topics))
                consumer = KafkaConsumer(
                    bootstrap_servers=opts.bootstrap, group_id=opts.group_id,
                    client_id=f"microcommerce-{self.group}", enable_auto_commit=False,
                    auto_offset_reset=opts.auto_offset_reset,
                    session_timeout_ms=opts.session_timeout_ms,
                    heartbeat_interval_ms=opts.heartbeat_interval_ms,
                    max_poll_interval_ms=opts.max_poll_interval_ms,
                    max_poll_records=500, bootstrap_timeout_ms=5000,
                    fetch_max_wait_ms=opts.fetch_max_wait_ms)
                with self._lock:
                    topics, self._topics_changed = sorted(self._topics), False
                consumer.subscribe(topics, listener=self)
                return consumer
            except Exception as exc:  # noqa: BLE001 - e.g. NoBrokersAvailable: try again
                log.warning("kafka consumer %s can not connect yet: %s", self.group, exc)
                self._stopping.wait(self.CONNECT_RETRY_S)
        return None

    def _step(self, consumer: KafkaConsumer) -> None:
        if self._topics_changed:
            with self._lock:
                topics, self._topics_changed = sorted(self._topics), False
            self.bus.ensure_topics(topics)
            consumer.subscribe(topics, listener=self)
        self._apply_settlements(consumer)
        self._apply_pauses(consumer)
        self._commit(consumer)
        try:
            batches = consumer.poll(timeout_ms=self.POLL_MS)
        except Exception as exc:  # noqa: BLE001 - a broker outage: keep polling
            log.warning("kafka consumer %s poll failed: %s", self.group, exc)
            self._stopping.wait(self.CONNECT_RETRY_S)
            return
        self.assigned = frozenset(consumer.assignment())
        for tp, records in batches.items():
            for record in records:
                self._handle(tp, record)
        self._refresh_lag(consumer)

    def _handle(self, tp: TopicPartition, record: Any) -> None:
        if tp in self._retry_at:
            return  # fetched before the partition was rewound: it comes again from the seek
        epoch = self._tracker.delivered(tp, record.offset)
        if epoch is None:
            return  # already in flight
        self.consumed += 1
        try:
            envelope = decode_event(record.value)
        except Exception as exc:  # noqa: BLE001 - any undecodable value is parked, not retried
            log.error("kafka consumer %s: undecodable record %s[%d]@%d parked to %s.dlq: %s",
                      self.group, tp.topic, tp.partition, record.offset, tp.topic, exc)
            self.bus.park_raw(record, self.group, f"undecodable: {exc}",
                              self._settler(tp, record.offset, epoch, ""))
            return
        key = record.key.decode("utf-8", "replace") if record.key is not None else ""
        done = self._settler(tp, record.offset, epoch, envelope.eventId)
        if len(self._positions) >= self.POSITIONS_KEPT:
            self._positions.pop(next(iter(self._positions)))
        self._positions[envelope.eventId] = (tp.partition, record.offset)
        token = current_request_id.set(_request_id(record))  # read by the consumer's deliver_event
        try:
            self._deliver(self._topics[tp.topic], envelope, tp.topic, key, done)
        finally:
            current_request_id.reset(token)

    def _deliver(self, deliver: DeliverFn, envelope: EventEnvelope, topic: str, key: str,
                 done: Callable[[bool], None]) -> None:
        try:
            if self.options.settles:
                deliver(envelope, topic, key, done)
            else:
                deliver(envelope, topic, key, None)
                done(True)
        except Exception:  # noqa: BLE001 - a consumer that raises gets the event again later
            log.exception("kafka consumer %s: delivery of %s failed", self.group, envelope.eventType)
            done(False)

    def _settler(self, tp: TopicPartition, offset: int, epoch: int, event_id: str) -> Callable[[bool], None]:
        def done(ok: bool = True) -> None:
            self._settlements.append((tp, offset, epoch, event_id, ok))

        return done

    def _apply_settlements(self, consumer: KafkaConsumer) -> None:
        while self._settlements:
            tp, offset, epoch, event_id, ok = self._settlements.popleft()
            if event_id and self._positions.get(event_id) == (tp.partition, offset):
                del self._positions[event_id]
            if ok:
                self._tracker.settle(tp, offset, epoch)
            elif self._tracker.rewind(tp, offset, epoch):
                try:
                    consumer.seek(tp, offset)
                except Exception as exc:  # noqa: BLE001 - no longer ours: its new owner redelivers
                    log.debug("kafka consumer %s: seek %s failed: %s", self.group, tp, exc)
                    continue
                log.info("kafka consumer %s: %s[%d]@%d refused; redelivering from there",
                         self.group, tp.topic, tp.partition, offset)
                self._retry_at[tp] = time.monotonic() + self.RETRY_PAUSE_S
        self.in_flight = self._tracker.in_flight()

    def _apply_pauses(self, consumer: KafkaConsumer) -> None:
        now = time.monotonic()
        for tp in [tp for tp, at in self._retry_at.items() if at <= now]:
            del self._retry_at[tp]
        in_flight = self.in_flight
        if in_flight >= self.MAX_IN_FLIGHT:
            self._backpressured = True
        elif in_flight < self.RESUME_BELOW:
            self._backpressured = False
        assigned = consumer.assignment()
        want = set(assigned) if self._backpressured else set(self._retry_at) & assigned
        pause, resume = want - self._paused, (self._paused - want) & assigned
        if pause:
            consumer.pause(*pause)
        if resume:
            consumer.resume(*resume)
        self._paused = want

    def _commit(self, consumer: KafkaConsumer, *, force: bool = False,
                only: set[TopicPartition] | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self.COMMIT_INTERVAL_S:
            return
        offsets = self._tracker.to_commit()
        if only is not None:
            offsets = {tp: at for tp, at in offsets.items() if tp in only}
        if not offsets:
            return
        self._last_commit = now
        try:
            consumer.commit({tp: OffsetAndMetadata(at, "", -1) for tp, at in offsets.items()},
                            timeout_ms=self.COMMIT_TIMEOUT_MS)
        except Exception as exc:  # noqa: BLE001 - an outage or a rebalance: commit again later
            log.warning("kafka consumer %s: commit failed: %s", self.group, exc)
            return
        for tp, at in offsets.items():
            self._tracker.committed(tp, at)

    def _refresh_lag(self, consumer: KafkaConsumer) -> None:
        """Records not yet committed per partition: the high watermark minus the commit point."""
        now = time.monotonic()
        if now - self._last_lag < self.LAG_REFRESH_S:
            return
        self._last_lag = now
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            point = self._tracker.commit_point(tp)
            if point is None:
                try:
                    point = consumer.position(tp, timeout_ms=50)
                except Exception:  # noqa: BLE001 - unknown yet: reported on a later refresh
                    point = None
            if high is not None and point is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - point)
        self.lag = lag

    def _close(self, consumer: KafkaConsumer) -> None:
        try:
            if self._commit_on_stop:
                self._apply_settlements(consumer)
                self._commit(consumer, force=True)
            consumer.close(autocommit=False, timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - leaving is best effort; the session ends anyway
            log.warning("kafka consumer %s: close failed: %s", self.group, exc)

    # -- rebalance listener (called inside poll, on this thread) ----------------------------
    def on_partitions_revoked(self, revoked: Any) -> None:
        consumer = self._consumer
        if consumer is not None and revoked:
            self._apply_settlements(consumer)
            self._commit(consumer, force=True, only=set(revoked))
        for tp in revoked:
            self._tracker.forget(tp)
            self._retry_at.pop(tp, None)
            self._paused.discard(tp)

    def on_partitions_assigned(self, assigned: Any) -> None:
        for tp in assigned:
            self._tracker.forget(tp)
            self._retry_at.pop(tp, None)
        self._paused = {tp for tp in self._paused if tp not in assigned}


def _request_id(record: Any) -> str | None:
    for name, value in record.headers or ():
        if name == "x-request-id":
            return value.decode("ascii", "replace")
    return None
