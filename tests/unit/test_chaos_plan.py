"""The fault plan: one seed, a pure schedule, swarm picks, rates, and the fault-injecting bus."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from microcommerce.actors.bus import LocalBus
from microcommerce.chaos.faults import FAMILIES, FaultPlan, swarm_pick
from microcommerce.chaos.faulty_bus import FaultyBus
from microcommerce.contracts.events import USER_EVENTS, new_event
from microcommerce.contracts.user import USER_CREATED, UserData

STREAMS = [f"orders/inventory/{k}" for k in range(20)]


def drive(plan: FaultPlan, streams: list[str], rounds: int = 50) -> None:
    for _ in range(rounds):
        for stream in streams:
            for family in ("drop", "dup", "db"):
                decision = plan.decide(family, stream)
                if decision is not None:
                    plan.record(family, stream, decision[0], u=round(decision[1], 6))


def taken(plan: FaultPlan) -> list[tuple]:
    return [(f.family, f.target, f.n, f.params) for f in plan.injected()]


def test_the_same_seed_gives_the_same_faults_even_from_threads_in_another_order(tmp_path: Path):
    first = FaultPlan(42, ["drop", "dup", "db"], rates={"drop": 0.1, "dup": 0.1, "db": 0.1}, clock=lambda: 0.0)
    drive(first, STREAMS)
    second = FaultPlan(42, ["drop", "dup", "db"], rates={"drop": 0.1, "dup": 0.1, "db": 0.1}, clock=lambda: 0.0)
    # Two threads, each owning half the streams, visiting them in reverse order.
    threads = [threading.Thread(target=drive, args=(second, list(reversed(half))))
               for half in (STREAMS[::2], STREAMS[1::2])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken(first) == taken(second)
    assert len(taken(first)) > 100
    first.write_faults(tmp_path / "a.jsonl")
    second.write_faults(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert first.counts()["drop"] == sum(1 for f in first.injected() if f.family == "drop")


def test_another_seed_gives_other_faults():
    plans = [FaultPlan(seed, ["drop"], rates={"drop": 0.1}) for seed in (1, 2)]
    for plan in plans:
        drive(plan, STREAMS)
    assert taken(plans[0]) != taken(plans[1])


def test_rates_are_respected_roughly():
    plan = FaultPlan(7, ["drop", "crash"])
    fired = {"drop": 0, "crash": 0}
    for n in range(20_000):
        for family in fired:
            fired[family] += plan.decide(family, f"s{n % 13}") is not None
    assert 0.04 < fired["drop"] / 20_000 < 0.06
    assert 0.013 < fired["crash"] / 20_000 < 0.027


def test_a_family_that_is_off_or_stopped_never_fires():
    plan = FaultPlan(3, ["drop"], rates={"drop": 1.0})
    assert plan.decide("dup", "x") is None
    assert plan.decide("drop", "x") is not None
    plan.stop()
    assert plan.decide("drop", "x") is None
    assert plan.provider_token("stripe", "tok_visa") == "tok_visa"


def test_subsystem_streams_are_independent():
    plan, other = FaultPlan(9, []), FaultPlan(9, [])
    plan.rng("inventory").random()  # extra draws in one subsystem...
    plan.rng("inventory").random()
    assert [plan.rng("workload").random() for _ in range(5)] == [other.rng("workload").random() for _ in range(5)]
    assert plan.rng("workload") is plan.rng("workload")
    assert FaultPlan(10, []).rng("workload").random() != FaultPlan(9, []).rng("workload").random()


def test_swarm_lets_the_seed_pick_families_and_rates():
    picks = {seed: FaultPlan(seed, FAMILIES, swarm=True) for seed in range(30)}
    for seed, plan in picks.items():
        again = FaultPlan(seed, FAMILIES, swarm=True)
        assert (plan.families, plan.rates) == (again.families, again.rates)
        assert plan.families  # at least one family on
        assert set(plan.rates) == plan.families
    assert len({plan.families for plan in picks.values()}) > 10
    sizes = [len(plan.families) for plan in picks.values()]
    assert 3 < sum(sizes) / len(sizes) < 7  # each family on about half the time
    only = swarm_pick(5, ["crash"])
    assert only[0] == ("crash",)  # the pick stays within the families asked for


def test_unknown_families_are_refused():
    with pytest.raises(ValueError, match="flood"):
        FaultPlan(1, ["drop", "flood"])


def test_partition_windows_are_a_pure_function_of_the_seed():
    clock = [0.0]
    plan = FaultPlan(11, ["partition"], clock=lambda: clock[0])
    windows = plan.partition_schedule(60)
    assert windows == FaultPlan(11, ["partition"]).partition_schedule(60)
    assert windows != FaultPlan(12, ["partition"]).partition_schedule(60)
    assert len(windows) > 5
    assert all(0.5 <= w.end_s - w.start_s <= 2.0 for w in windows)
    window = windows[0]
    caller, callee = window.pair
    clock[0] = (window.start_s + window.end_s) / 2
    assert plan.partition(caller, callee) == window
    assert plan.partition(callee, caller) == window  # both directions
    clock[0] = window.end_s + 1e-6
    assert plan.partition(caller, callee) in (None, windows[1])  # healed (unless the next began)


def test_provider_faults_hand_out_the_slow_token():
    plan = FaultPlan(4, ["provider"], rates={"provider": 1.0})
    assert plan.provider_token("stripe", "tok_visa") == "tok_visa_slow"
    assert plan.provider_token("paymob", "paymob_success") == "paymob_success_slow"
    assert plan.counts()["provider"] == 2


# -- the faulty bus, with plain consumers ---------------------------------------------------------


class Group:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []  # (key, event id)
        self.lock = threading.Lock()

    def __call__(self, envelope, topic, key, done) -> None:
        with self.lock:
            self.seen.append((key, envelope.eventId))
        if done is not None:
            done(True)


def publish_all(bus, n: int, keys: int = 5) -> tuple[list, list[bool]]:
    settled: list[bool] = []
    events = []
    for i in range(n):
        envelope = new_event(USER_CREATED, "test", UserData(id=i, name="a", email=f"u{i}@x.io", role="user",
                                                            accountStatus="active"))
        events.append((str(i % keys), envelope.eventId))
        bus.publish(USER_EVENTS, str(i % keys), envelope, settled.append)
    return events, settled


def test_held_deliveries_keep_each_keys_order_and_are_released_at_stop():
    plan = FaultPlan(5, ["delay", "reorder"], rates={"delay": 0.3, "reorder": 0.3})
    bus = FaultyBus(LocalBus(), plan)
    group, observer = Group(), Group()
    bus.declare(USER_EVENTS, "consumer")
    bus.subscribe(USER_EVENTS, "consumer", group)
    bus.subscribe(USER_EVENTS, "observer", observer)
    events, settled = publish_all(bus, 200, keys=40)
    assert observer.seen == events  # observers see the truth, at once
    plan.stop()  # releases every hold now
    assert bus.held() == 0
    assert sorted(group.seen) == sorted(events)
    for key in map(str, range(40)):
        assert [e for k, e in group.seen if k == key] == [e for k, e in events if k == key]
    assert group.seen != events  # ... but keys overtook each other
    assert settled == [True] * 200
    assert plan.counts()["delay"] > 0 and plan.counts()["reorder"] > 0


def test_a_dropped_delivery_is_reported_unsettled_and_a_duplicate_settles_once():
    plan = FaultPlan(6, ["drop", "dup"], rates={"drop": 0.2, "dup": 0.2})
    bus = FaultyBus(LocalBus(), plan)
    group = Group()
    bus.declare(USER_EVENTS, "consumer")
    bus.subscribe(USER_EVENTS, "consumer", group)
    events, settled = publish_all(bus, 100)
    counts = plan.counts()
    assert counts["drop"] > 5 and counts["dup"] > 5
    assert settled.count(False) == counts["drop"]  # the outbox will send those again
    assert len(settled) == 100  # each event settled exactly once (a duplicate settles nothing)
    assert len(group.seen) == 100 - counts["drop"] + counts["dup"]


def test_a_held_plan_injects_nothing_until_it_begins():
    plan = FaultPlan(3, ["crash"], rates={"crash": 1.0})
    plan.hold()
    assert plan.decide("crash", "user/Signup") is None
    plan.begin()
    assert plan.decide("crash", "user/Signup") is not None
