"""`KafkaBus`: the event bus port on Kafka (kafka-python), for per-service deployments.

A publish is settled when the broker acknowledged the write (idempotent producer, acks=all):
from then on the event is durable and each consumer group reads it at its own pace. Each
consumer group is one `GroupConsumer` thread; see docs/kafka.md for the whole mapping.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from microcommerce.actors.bus import DeliverFn, DoneFn, EventBus
from microcommerce.actors.requests import current_request_id
from microcommerce.config import Settings
from microcommerce.contracts.events import EventEnvelope, encode_event, known_event_types
from microcommerce.kafka.consumer import ConsumerOptions, GroupConsumer

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


def bootstrap_servers(bus_url: str) -> list[str]:
    """`kafka://a:9092,b:9092` → ["a:9092", "b:9092"]."""
    if not bus_url.startswith("kafka://"):
        raise ValueError(f"not a kafka:// bus URL: {bus_url!r}")
    return [part for part in bus_url.removeprefix("kafka://").split(",") if part]


class KafkaBus(EventBus):
    durable = True

    FLUSH_TIMEOUT_S = 10.0
    SEND_BLOCK_MS = 2000      # a full buffer or unknown topic blocks a publish at most this long
    REOPEN_AFTER_S = 1.0      # a producer that could not be created is tried again after this

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bootstrap = bootstrap_servers(settings.bus_url)
        self.prefix = settings.kafka_group_prefix
        self._lock = threading.Lock()
        self._declared: dict[str, set[str]] = {}           # group → every topic it must read
        self._subscribed: dict[str, dict[str, DeliverFn]] = {}
        self._consumers: dict[str, GroupConsumer] = {}
        self._topics_ok: set[str] = set()
        self._producer: KafkaProducer | None = None
        self._producer_failed_at = 0.0
        self._started = False
        self._stopped = False
        self._instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.published = 0
        self.publish_errors = 0
        self.dead_lettered = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create every known topic (and its .dlq) and the producer; a broker that is down now
        is not fatal: topics and producer are retried when first needed."""
        self._started = True
        self.ensure_topics(sorted({t.topic for t in known_event_types().values()}))
        self._open_producer()

    def stop(self, *, commit: bool = True) -> None:
        """Wait (bounded) for unacknowledged sends, commit settled offsets and leave the groups.

        `commit=False` leaves as a crash would (tests): the next member re-reads the uncommitted.
        """
        self._stopped = True
        with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
            producer, self._producer = self._producer, None
        for consumer in consumers:
            consumer.stop(commit=commit)
        if producer is not None:
            try:
                producer.flush(timeout=self.FLUSH_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - unacknowledged rows stay in the outbox
                log.warning("kafka producer flush failed: %s", exc)
            try:
                producer.close(timeout=2)
            except Exception as exc:  # noqa: BLE001
                log.warning("kafka producer close failed: %s", exc)

    # -- topics ------------------------------------------------------------------------------
    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create missing topics and their dead-letter topics (partitions/replication from settings)."""
        wanted = set()
        for topic in topics:
            wanted.add(topic)
            if not topic.endswith(DLQ_SUFFIX):
                wanted.add(topic + DLQ_SUFFIX)
        missing = sorted(wanted - self._topics_ok)
        if not missing:
            return
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="microcommerce-admin",
                                     bootstrap_timeout_ms=5000, request_timeout_ms=5000)
        except Exception as exc:  # noqa: BLE001 - broker down: the next caller tries again
            log.warning("kafka: can not create topics %s yet: %s", ", ".join(missing), exc)
            return
        try:
            result = admin.create_topics(
                [NewTopic(t, self.settings.kafka_partitions, self.settings.kafka_replication_factor)
                 for t in missing], raise_errors=False)
            for entry in result.get("topics", []) if isinstance(result, dict) else []:
                if entry["error_code"] in (0, TOPIC_EXISTS):
                    self._topics_ok.add(entry["name"])
                else:
                    log.warning("kafka: topic %s not created: %s", entry["name"], entry["error_message"])
        except Exception as exc:  # noqa: BLE001
            log.warning("kafka: creating topics %s failed: %s", ", ".join(missing), exc)
        finally:
            admin.close()

    # -- producing ---------------------------------------------------------------------------
    def _open_producer(self) -> KafkaProducer | None:
        with self._lock:
            if self._producer is not None or self._stopped:
                return self._producer
            if time.monotonic() - self._producer_failed_at < self.REOPEN_AFTER_S:
                return None
            try:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=f"microcommerce-{self._instance}",
                    enable_idempotence=True, acks="all", linger_ms=5,
                    max_block_ms=self.SEND_BLOCK_MS, bootstrap_timeout_ms=5000)
            except Exception as exc:  # noqa: BLE001 - broker down: publishes settle False for now
                self._producer_failed_at = time.monotonic()
                log.warning("kafka producer can not connect yet: %s", exc)
            return self._producer

    def publish(self, topic: str, key: str, envelope: EventEnvelope,
                on_settled: DoneFn | None = None) -> None:
        if topic not in self._topics_ok:
            self.ensure_topics([topic])
        headers = [("eventType", envelope.eventType.encode()), ("eventId", envelope.eventId.encode()),
                   ("producer", envelope.producer.encode())]
        request_id = current_request_id.get()
        if request_id:
            headers.append(("x-request-id", request_id.encode()))
        self._send(topic, key.encode(), encode_event(envelope), headers, on_settled, counts=True)

    def _send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]],
              on_settled: DoneFn | None, *, counts: bool = False) -> None:
        """Hand a record to the producer; `on_settled` runs on the producer's thread once the
        broker answered (kafka-python retries in-flight sends through an outage)."""
        producer = self._producer or self._open_producer()
        if producer is None:
            self._settle(on_settled, False, counts)
            return
        try:
            future = producer.send(topic, value=value, key=key, headers=headers)
        except Exception as exc:  # noqa: BLE001 - buffer full past max_block_ms, closed, …
            log.warning("kafka: send to %s failed: %s", topic, exc)
            self._settle(on_settled, False, counts)
            return
        future.add_callback(lambda _md: self._settle(on_settled, True, counts))
        future.add_errback(lambda exc: self._failed(topic, exc, on_settled, counts))

    def _failed(self, topic: str, exc: Any, on_settled: DoneFn | None, counts: bool) -> None:
        log.warning("kafka: write to %s not acknowledged: %s", topic, exc)
        self._settle(on_settled, False, counts)

    def _settle(self, on_settled: DoneFn | None, ok: bool, counts: bool) -> None:
        if counts:
            if ok:
                self.published += 1
            else:
                self.publish_errors += 1
        if on_settled is not None:
            try:
                on_settled(ok)
            except Exception:  # noqa: BLE001 - a callback must not break the producer's thread
                log.exception("kafka: settlement callback failed")

    # -- dead letters ------------------------------------------------------------------------
    def dead_letter(self, topic: str, key: str, envelope: EventEnvelope, *,
                    consumer: str, error: str, attempts: int) -> None:
        """Copy a parked event to `<topic>.dlq` with why, who and where it came from."""
        headers = [("eventType", envelope.eventType.encode()), ("eventId", envelope.eventId.encode()),
                   ("producer", envelope.producer.encode()), ("error", error[:2000].encode()),
                   ("consumer", consumer.encode()), ("attempts", str(attempts).encode()),
                   ("original-topic", topic.encode())]
        member = self._consumers.get(consumer)
        position = member.position_of(envelope.eventId) if member is not None else None
        if position is not None:
            headers += [("original-partition", str(position[0]).encode()),
                        ("original-offset", str(position[1]).encode())]
        self._dlq_send(topic, key.encode(), encode_event(envelope), headers, None)

    def park_raw(self, record: Any, consumer: str, error: str, done: DoneFn) -> None:
        """A record no consumer can read (not an event): onto `<topic>.dlq`; `done` on the ack."""
        headers = [*(record.headers or []), ("error", error[:2000].encode()), ("consumer", consumer.encode()),
                   ("attempts", b"0"), ("original-topic", record.topic.encode()),
                   ("original-partition", str(record.partition).encode()),
                   ("original-offset", str(record.offset).encode())]
        self._dlq_send(record.topic, record.key, record.value or b"", headers, done)

    def _dlq_send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]],
                  done: DoneFn | None) -> None:
        def settled(ok: bool) -> None:
            if ok:
                self.dead_lettered += 1
            if done is not None:
                done(ok)

        self.ensure_topics([topic])
        self._send(topic + DLQ_SUFFIX, key, value, headers, settled)

    # -- consuming ---------------------------------------------------------------------------
    def declare(self, topic: str, group: str) -> None:
        with self._lock:
            self._declared.setdefault(group, set()).add(topic)
        if self._started:
            self.ensure_topics([topic])

    def subscribe(self, topic: str, group: str, deliver: DeliverFn) -> None:
        """A declared group's member starts once it subscribed to all its declared topics (one
        join, no rebalance churn); an undeclared group (a per-process observer) starts at once."""
        with self._lock:
            if self._stopped:
                return
            running = self._consumers.get(group)
            if running is not None:
                running.add_topic(topic, deliver)
                return
            topics = self._subscribed.setdefault(group, {})
            topics[topic] = deliver
            declared = self._declared.get(group)
            if declared is not None and not declared <= topics.keys():
                return  # wait for the group's other topics
            consumer = GroupConsumer(self, group, topics, self._options(group, declared is not None))
            self._consumers[group] = consumer
            del self._subscribed[group]
        consumer.start()

    def _options(self, group: str, declared: bool) -> ConsumerOptions:
        s = self.settings
        group_id = f"{self.prefix}{group}" if declared else f"{self.prefix}{group}.{self._instance}"
        return ConsumerOptions(
            bootstrap=self.bootstrap, group_id=group_id,
            auto_offset_reset="earliest" if declared else "latest",
            session_timeout_ms=s.kafka_session_timeout_ms, heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
            max_poll_interval_ms=s.kafka_max_poll_interval_ms,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms, settles=declared)

    def consumer(self, group: str) -> GroupConsumer | None:
        """The running member of a group in this process (tests, metrics)."""
        return self._consumers.get(group)

    # -- observability -----------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {
            "kafka_published_total": self.published,
            "kafka_publish_errors_total": self.publish_errors,
            "kafka_dead_lettered_total": self.dead_lettered,
        }
        for group, member in sorted(self._consumers.items()):
            out[f'kafka_consumed_total{{group="{group}"}}'] = member.consumed
            out[f'kafka_consumer_in_flight{{group="{group}"}}'] = member.in_flight
            for (topic, partition), lag in sorted(member.lag.items()):
                out[f'kafka_consumer_lag{{group="{group}",topic="{topic}",partition="{partition}"}}'] = lag
        return out
