"""Timers deliver messages to their owning actor and stop with it; KeyRouter pins keys to routees."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pykka
import pytest

from microcommerce.actors.messages import TimerFired
from microcommerce.actors.router import KeyRouter
from microcommerce.actors.threaded import ThreadedRef
from microcommerce.actors.timers import ThreadTimerScheduler, Timers

WAIT_S = 5.0


class Sentinel:
    """A timer message that tells the test everything due before it has been delivered."""


class TimerOwner(pykka.ThreadingActor):
    """Owns timers and counts the messages they deliver, as a SupervisedActor does."""

    def __init__(self, scheduler: ThreadTimerScheduler) -> None:
        super().__init__()
        self.timers = Timers(ThreadedRef("owner", self.actor_ref), scheduler)
        self.received: Counter[str] = Counter()
        self.messages: list[object] = []
        self.thread_ids: set[int] = set()
        self.sentinel = threading.Event()

    def on_receive(self, message: object) -> None:
        if isinstance(message, TimerFired) and self.timers.fired(message.name):
            self.received[message.name] += 1
            self.messages.append(message.message)
            self.thread_ids.add(threading.get_ident())
            if isinstance(message.message, Sentinel):
                self.sentinel.set()

    # Called through the proxy, so they run on the actor's own thread like real handlers.
    def start_single(self, name: str, delay_s: float, message: object) -> None:
        self.timers.start_single(name, delay_s, message)

    def start_periodic(self, name: str, interval_s: float, message: object) -> None:
        self.timers.start_periodic(name, interval_s, message)

    def cancel(self, name: str) -> None:
        self.timers.cancel(name)

    def count(self, name: str) -> int:
        return self.received[name]

    def active(self) -> list[str]:
        return self.timers.active

    def delivered(self) -> list[object]:
        return list(self.messages)

    def threads(self) -> set[int]:
        return set(self.thread_ids)

    def own_thread(self) -> int:
        return threading.get_ident()

    def wait_sentinel(self) -> threading.Event:
        return self.sentinel


@pytest.fixture
def scheduler():
    sched = ThreadTimerScheduler()
    yield sched
    sched.stop()


@pytest.fixture
def owner(scheduler):
    ref = TimerOwner.start(scheduler)
    yield ref.proxy()
    if ref.is_alive():
        ref.stop(timeout=WAIT_S)


def wait_until(check, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def settle(owner) -> None:
    """Start a sentinel timer later than anything else and wait until it arrives."""
    sentinel = owner.wait_sentinel().get(timeout=WAIT_S)
    sentinel.clear()
    owner.start_single("sentinel", 0.15, Sentinel()).get(timeout=WAIT_S)
    assert sentinel.wait(WAIT_S), "sentinel timer never fired"


def test_single_timer_fires_once_with_its_message(owner):
    owner.start_single("once", 0.01, "ping").get()
    wait_until(lambda: owner.count("once").get() == 1)
    settle(owner)
    assert owner.count("once").get() == 1
    assert owner.delivered().get()[0] == "ping"
    assert "once" not in owner.active().get()


def test_timer_message_runs_on_the_owning_actors_thread(owner):
    owner.start_periodic("tick", 0.01, "tick").get()
    wait_until(lambda: owner.count("tick").get() >= 3)
    # Delivered through the mailbox, never run on the scheduler's thread: handlers need no locks.
    assert owner.threads().get() == {owner.own_thread().get()}


def test_periodic_timer_keeps_firing_until_cancelled(owner):
    owner.start_periodic("tick", 0.01, "tick").get()
    wait_until(lambda: owner.count("tick").get() >= 3)
    owner.cancel("tick").get()
    after_cancel = owner.count("tick").get()
    settle(owner)  # every tick that was due before the sentinel has been delivered or dropped
    assert owner.count("tick").get() == after_cancel
    assert owner.active().get() == []


def test_cancelled_single_timer_never_fires(owner):
    owner.start_single("later", 0.05, "late").get()
    owner.cancel("later").get()
    settle(owner)
    assert owner.count("later").get() == 0


def test_starting_a_timer_again_replaces_it(owner):
    owner.start_single("job", 0.05, "first").get()
    owner.start_single("job", 0.05, "second").get()
    settle(owner)
    assert owner.count("job").get() == 1
    assert "first" not in owner.delivered().get()


def test_timers_stop_when_their_actor_stops(scheduler):
    ref = TimerOwner.start(scheduler)
    proxy = ref.proxy()
    proxy.start_periodic("tick", 0.01, "tick").get()
    wait_until(lambda: proxy.count("tick").get() >= 1)
    ref.stop(timeout=WAIT_S)
    # The scheduler finds the owner dead on its next tick and drops the periodic timer for good.
    wait_until(lambda: not scheduler._heap)  # noqa: SLF001 - white-box: nothing left scheduled


def test_many_timers_share_one_scheduler_thread(scheduler):
    refs = [TimerOwner.start(scheduler) for _ in range(3)]
    try:
        for i, ref in enumerate(refs):
            ref.proxy().start_single(f"t{i}", 0.01, i).get()
        for i, ref in enumerate(refs):
            wait_until(lambda ref=ref, i=i: ref.proxy().count(f"t{i}").get() == 1)
        timer_threads = [t for t in threading.enumerate() if t.name == "timers"]
        assert scheduler._thread in timer_threads  # noqa: SLF001
    finally:
        for ref in refs:
            ref.stop(timeout=WAIT_S)


# -- KeyRouter ----------------------------------------------------------------------------


def test_same_key_always_reaches_the_same_routee():
    router = KeyRouter(["w0", "w1", "w2", "w3"])
    for key in ("alice@example.com", "order-17", 42, 7, "x"):
        first = router.route(key)
        assert all(router.route(key) == first for _ in range(20))


def test_an_int_key_and_its_text_form_reach_the_same_routee():
    # Commands carry int ids, events carry the same id as text: one aggregate, one worker.
    router = KeyRouter(["w0", "w1", "w2"])
    assert all(router.route(k) == router.route(str(k)) for k in range(50))
    assert {router.route(k) for k in range(50)} == {"w0", "w1", "w2"}


def test_string_keys_use_every_routee():
    router = KeyRouter(["w0", "w1", "w2", "w3"])
    assert {router.route(f"user-{i}") for i in range(200)} == {"w0", "w1", "w2", "w3"}


def test_a_string_key_and_its_int_routing_are_stable_across_routers():
    # Another process (or a restarted system) must route the same key to the same index.
    a = KeyRouter(list(range(4)))
    b = KeyRouter(list(range(4)))
    assert [a.route(f"k{i}") for i in range(50)] == [b.route(f"k{i}") for i in range(50)]


def test_no_key_spreads_round_robin():
    router = KeyRouter(["w0", "w1", "w2"])
    picks = [router.route(None) for _ in range(9)]
    assert Counter(picks) == {"w0": 3, "w1": 3, "w2": 3}
    assert picks[:3] == ["w0", "w1", "w2"]


def test_router_needs_a_routee():
    with pytest.raises(ValueError):
        KeyRouter([])
