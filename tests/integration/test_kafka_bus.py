"""KafkaBus against a real broker (Tansu): settlement, groups, commits, redelivery, outages, DLQ.

Every test uses fresh topic and group names on the session's broker. A group join takes about
3 s (short session timeouts), so tests start their members together where they can.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from microcommerce.config import load_settings
from microcommerce.contracts.events import EventEnvelope, encode_event, new_event
from microcommerce.contracts.user import USER_CREATED, UserData
from microcommerce.http.metrics import HttpMetrics
from microcommerce.kafka import KafkaBus, open_kafka_bus

JOIN_S = 20.0  # generous bound on a group join on a loaded machine; the usual is ~3 s


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {result!r})")
        time.sleep(0.02)


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def event(user_id: int) -> EventEnvelope:
    return new_event(USER_CREATED, "test-producer", UserData(
        id=user_id, name=f"u{user_id}", email=f"u{user_id}@example.com", role="user", accountStatus="active"))


def make_bus(kafka_broker, **overrides) -> KafkaBus:
    bus = open_kafka_bus(load_settings({"bus_url": kafka_broker.url, **overrides}, env={}))
    bus.start()
    return bus


class Recorder:
    """A consumer group's deliver: records events; settles as `answer(envelope)` says (None: hold)."""

    def __init__(self, answer: Callable[[EventEnvelope], bool | None] = lambda _e: True) -> None:
        self.answer = answer
        self.lock = threading.Lock()
        self.events: list[EventEnvelope] = []
        self.held: list[Callable[[bool], None]] = []

    def __call__(self, envelope: EventEnvelope, topic: str, key: str, done) -> None:
        with self.lock:
            self.events.append(envelope)
        verdict = self.answer(envelope)
        if verdict is None:
            self.held.append(done)
        elif done is not None:
            done(verdict)

    def ids(self) -> list[str]:
        with self.lock:
            return [e.eventId for e in self.events]


class Settlements:
    def __init__(self) -> None:
        self.results: list[bool] = []

    def callback(self) -> Callable[[bool], None]:
        return self.results.append


def read_topic(kafka_broker, topic: str, n: int, timeout: float = 10.0) -> list[Any]:
    """Every record of a topic from the start, without a group (no join to wait for)."""
    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap, enable_auto_commit=False)
    try:
        partitions = wait_for(lambda: consumer.partitions_for_topic(topic), what=f"{topic} exists")
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        assert len(records) >= n, f"{topic}: {len(records)} of {n} records"
        return records
    finally:
        consumer.close(autocommit=False)


def joined(bus: KafkaBus, group: str) -> bool:
    member = bus.consumer(group)
    return member is not None and bool(member.assigned)


# -- producing ----------------------------------------------------------------------------------


def test_a_publish_settles_true_once_the_broker_acknowledged_it(kafka_broker):
    topic = fresh("t-ack")
    bus = make_bus(kafka_broker)
    try:
        settled = Settlements()
        envelopes = [event(i) for i in range(5)]
        for i, envelope in enumerate(envelopes):
            bus.publish(topic, str(i), envelope, settled.callback())
        wait_for(lambda: len(settled.results) == 5, what="5 settlements")
        assert settled.results == [True] * 5
        records = read_topic(kafka_broker, topic, 5)
        by_id = {dict(r.headers)["eventId"].decode(): r for r in records}
        assert set(by_id) == {e.eventId for e in envelopes}
        record = by_id[envelopes[3].eventId]
        assert record.key == b"3"
        assert record.value == encode_event(envelopes[3])
        assert dict(record.headers)["eventType"] == USER_CREATED.encode()
        assert dict(record.headers)["producer"] == b"test-producer"
        assert bus.metrics()["kafka_published_total"] == 5
    finally:
        bus.stop()


# -- consuming ----------------------------------------------------------------------------------


def test_each_declared_group_gets_every_event_and_commits_only_what_was_settled(kafka_broker):
    topic, other = fresh("t-groups"), fresh("t-other")
    first, second = fresh("g-first"), fresh("g-second")
    bus = make_bus(kafka_broker)
    try:
        for group in (first, second):
            bus.declare(topic, group)
        bus.declare(other, first)
        a, b = Recorder(), Recorder()
        bus.subscribe(topic, first, a)
        assert bus.consumer(first) is None, "a declared group starts once all its topics are subscribed"
        bus.subscribe(other, first, a)
        bus.subscribe(topic, second, b)
        envelopes = [event(i) for i in range(12)]
        for i, envelope in enumerate(envelopes):
            bus.publish(topic, str(i % 5), envelope)
        extra = event(99)
        bus.publish(other, "x", extra)
        wait_for(lambda: len(a.ids()) == 13 and len(b.ids()) == 12, timeout=JOIN_S, what="both groups")
        assert set(b.ids()) == {e.eventId for e in envelopes}
        assert set(a.ids()) == {e.eventId for e in envelopes} | {extra.eventId}
        # Everything settled: the lag drains to zero once committed.
        wait_for(lambda: _lags(bus, second) and all(v == 0 for v in _lags(bus, second).values()),
                 timeout=10, what="lag 0")
        metrics = bus.metrics()
        assert metrics[f'kafka_consumed_total{{group="{second}"}}'] == 12
        text = HttpMetrics("cart").render(metrics)  # as /metrics shows it: the service label first
        assert f'kafka_consumer_lag{{service="cart",group="{second}",topic="{topic}",partition="0"}} 0' in text
        assert 'kafka_published_total{service="cart"} 13' in text
    finally:
        bus.stop()


def _lags(bus: KafkaBus, group: str) -> dict[str, float]:
    return {k: v for k, v in bus.metrics().items() if k.startswith(f'kafka_consumer_lag{{group="{group}"')}


def test_a_member_that_leaves_without_settling_hands_its_records_to_the_next(kafka_broker):
    topic, group = fresh("t-crash"), fresh("g-crash")
    envelopes = [event(i) for i in range(8)]
    producer_bus = make_bus(kafka_broker)
    for envelope in envelopes:
        producer_bus.publish(topic, "same-key", envelope)  # one partition: one order
    producer_bus.stop()

    first_bus = make_bus(kafka_broker)
    first = Recorder(answer=lambda e: True if e.eventId in {x.eventId for x in envelopes[:3]} else None)
    first_bus.declare(topic, group)
    first_bus.subscribe(topic, group, first)
    wait_for(lambda: len(first.ids()) == 8, timeout=JOIN_S, what="first member got all")
    first_bus.stop()  # commits the settled prefix (3), leaves the group; 5 never settled
    assert len(first.held) == 5

    second_bus = make_bus(kafka_broker)
    try:
        second = Recorder()
        second_bus.declare(topic, group)
        second_bus.subscribe(topic, group, second)
        wait_for(lambda: len(second.ids()) == 5, timeout=JOIN_S, what="second member got the rest")
        assert second.ids() == [e.eventId for e in envelopes[3:]]
    finally:
        second_bus.stop()


def test_a_refused_event_is_delivered_again_in_order(kafka_broker):
    topic, group = fresh("t-refuse"), fresh("g-refuse")
    envelopes = [event(i) for i in range(4)]
    refused_once: set[str] = set()

    def answer(envelope: EventEnvelope) -> bool:
        if envelope.eventId == envelopes[1].eventId and envelope.eventId not in refused_once:
            refused_once.add(envelope.eventId)
            return False
        return True

    bus = make_bus(kafka_broker)
    try:
        recorder = Recorder(answer)
        bus.declare(topic, group)
        bus.subscribe(topic, group, recorder)
        for envelope in envelopes:
            bus.publish(topic, "k", envelope)
        ids = [e.eventId for e in envelopes]
        wait_for(lambda: recorder.ids()[-3:] == ids[1:] and len(recorder.ids()) >= 6,
                 timeout=JOIN_S, what="redelivery from the refused event")
        seen = recorder.ids()
        # First pass 0,1,2,3 (1 refused; 2 and 3 may or may not have been handed over yet),
        # then everything from 1 again, in order; 0 is never repeated.
        assert seen[0] == ids[0] and seen.count(ids[0]) == 1
        assert seen[-3:] == ids[1:]
        assert seen.count(ids[1]) == 2
    finally:
        bus.stop()


def test_two_members_of_a_group_share_its_partitions(kafka_broker):
    topic, group = fresh("t-share"), fresh("g-share")
    buses = [make_bus(kafka_broker), make_bus(kafka_broker)]
    recorders = [Recorder(), Recorder()]
    try:
        for bus, recorder in zip(buses, recorders, strict=True):
            bus.declare(topic, group)
            bus.subscribe(topic, group, recorder)
        wait_for(lambda: all(joined(bus, group) for bus in buses)
                 and sum(len(bus.consumer(group).assigned) for bus in buses) == 4,
                 timeout=JOIN_S, what="both members assigned")
        envelopes = [event(i) for i in range(40)]
        for i, envelope in enumerate(envelopes):
            buses[0].publish(topic, f"key-{i}", envelope)
        wait_for(lambda: sum(len(r.ids()) for r in recorders) >= 40, timeout=10, what="40 deliveries")
        first, second = set(recorders[0].ids()), set(recorders[1].ids())
        assert first | second == {e.eventId for e in envelopes}
        assert not first & second, "no record goes to both members"
        assert first and second, "both members got partitions"
    finally:
        for bus in buses:
            bus.stop()


def test_a_broker_outage_delays_settlement_and_delivery_but_loses_nothing(kafka_broker):
    topic, group = fresh("t-outage"), fresh("g-outage")
    bus = make_bus(kafka_broker)
    try:
        recorder = Recorder()
        bus.declare(topic, group)
        bus.subscribe(topic, group, recorder)
        settled = Settlements()
        bus.publish(topic, "a", event(1), settled.callback())
        wait_for(lambda: len(recorder.ids()) == 1, timeout=JOIN_S, what="first event")
        kafka_broker.pause()
        try:
            envelopes = [event(i) for i in range(2, 7)]
            started = time.monotonic()
            for i, envelope in enumerate(envelopes):
                bus.publish(topic, f"k{i}", envelope, settled.callback())
            assert time.monotonic() - started < 1.0, "publish must not block on a dead broker"
            time.sleep(3)  # the outage itself
            assert settled.results == [True], "nothing can be acknowledged while the broker is down"
        finally:
            kafka_broker.resume()
        wait_for(lambda: len(settled.results) == 6, timeout=30, what="settlements after the outage")
        assert settled.results == [True] * 6
        wait_for(lambda: set(recorder.ids()) >= {e.eventId for e in envelopes}, timeout=30,
                 what="delivery after the outage")
    finally:
        bus.stop()


def test_dead_letters_and_undecodable_records_go_to_the_dlq_topic(kafka_broker):
    topic, group = fresh("t-dlq"), fresh("g-dlq")
    poison, after = event(1), event(2)
    bus = make_bus(kafka_broker)
    try:
        def answer(envelope: EventEnvelope) -> bool:
            if envelope.eventId == poison.eventId:  # as a worker parks it, before settling
                bus.dead_letter(topic, "k", envelope, consumer=group, error="boom", attempts=5)
            return True

        recorder = Recorder(answer)
        bus.declare(topic, group)
        bus.subscribe(topic, group, recorder)
        raw = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        raw.send(topic, key=b"k", value=b"not an event").get(timeout=10)
        raw.close()
        bus.publish(topic, "k", poison)
        bus.publish(topic, "k", after)
        wait_for(lambda: recorder.ids() == [poison.eventId, after.eventId], timeout=JOIN_S,
                 what="events behind the undecodable record")
        parked = read_topic(kafka_broker, f"{topic}.dlq", 2)
        garbage = next(r for r in parked if r.value == b"not an event")
        headers = dict(garbage.headers)
        assert headers["consumer"] == group.encode()
        assert headers["original-topic"] == topic.encode()
        assert headers["original-offset"] == b"0"
        assert headers["error"].startswith(b"undecodable")
        letter = next(r for r in parked if r.value != b"not an event")
        headers = dict(letter.headers)
        assert letter.value == encode_event(poison) and letter.key == b"k"
        assert (headers["error"], headers["consumer"], headers["attempts"]) == (b"boom", group.encode(), b"5")
        assert headers["eventId"] == poison.eventId.encode()
        assert headers["original-topic"] == topic.encode()
        assert headers["original-offset"] == b"1", "mapped from the event id to the delivered record"
        wait_for(lambda: bus.metrics()["kafka_dead_lettered_total"] == 2, what="dlq counter")
    finally:
        bus.stop()
