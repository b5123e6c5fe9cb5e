"""The in-process bus settles an event only when every declared consumer group applied it."""

from __future__ import annotations

from microcommerce.actors.bus import LocalBus
from microcommerce.contracts.events import USER_EVENTS, new_event
from microcommerce.contracts.user import USER_CREATED, UserData


def event(user_id: int = 1):
    return new_event(USER_CREATED, "test", UserData(id=user_id, name="A", email="a@example.com", role="user",
                                                    accountStatus="active"))


class Consumer:
    def __init__(self) -> None:
        self.received: list = []

    def __call__(self, envelope, topic, key, done) -> None:
        self.received.append((envelope, done))

    def settle(self, ok: bool = True) -> None:
        for _, done in self.received:
            done(ok)


def test_an_event_settles_only_after_every_declared_group_applied_it():
    bus, settled = LocalBus(), []
    cart, audit = Consumer(), Consumer()
    for group, consumer in (("cart", cart), ("audit", audit)):
        bus.declare(USER_EVENTS, group)
        bus.subscribe(USER_EVENTS, group, consumer)
    bus.publish(USER_EVENTS, "1", event(), settled.append)
    assert settled == []
    cart.settle()
    assert settled == []
    audit.settle()
    assert settled == [True]


def test_an_event_for_a_group_not_subscribed_yet_waits_for_it_in_order():
    bus, settled = LocalBus(), []
    bus.declare(USER_EVENTS, "cart")
    first, second = event(1), event(2)
    bus.publish(USER_EVENTS, "1", first, settled.append)
    bus.publish(USER_EVENTS, "2", second, settled.append)
    assert bus.waiting() == 2 and settled == []

    cart = Consumer()
    bus.subscribe(USER_EVENTS, "cart", cart)
    assert [envelope.eventId for envelope, _ in cart.received] == [first.eventId, second.eventId]
    assert bus.waiting() == 0
    cart.settle()
    assert settled == [True, True]


def test_a_group_that_cannot_take_the_event_sends_it_back_once():
    bus, settled = LocalBus(), []
    cart, audit = Consumer(), Consumer()
    for group, consumer in (("cart", cart), ("audit", audit)):
        bus.declare(USER_EVENTS, group)
        bus.subscribe(USER_EVENTS, group, consumer)
    bus.publish(USER_EVENTS, "1", event(), settled.append)
    cart.settle(ok=False)
    audit.settle()
    assert settled == [False]  # reported once: the outbox will send it again


def test_undeclared_subscribers_see_every_event_but_settle_nothing():
    bus, settled = LocalBus(), []
    spy = Consumer()
    bus.subscribe(USER_EVENTS, "spy", spy)
    bus.publish(USER_EVENTS, "1", event(), settled.append)
    assert settled == [True]  # nobody must apply it: settled at once
    assert spy.received[0][1] is None


def test_a_consumer_that_raises_counts_as_not_delivered():
    bus, settled = LocalBus(), []
    bus.declare(USER_EVENTS, "cart")

    def broken(envelope, topic, key, done) -> None:
        raise RuntimeError("mailbox gone")

    bus.subscribe(USER_EVENTS, "cart", broken)
    bus.publish(USER_EVENTS, "1", event(), settled.append)
    assert settled == [False]
