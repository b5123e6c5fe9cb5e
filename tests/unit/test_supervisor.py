"""Supervision rules: restart intensity (sliding window), backoff, escalation, one_for_all."""

from __future__ import annotations

import asyncio
import threading

import pytest

from microcommerce.actors.messages import ChildFailed, Directive, Restart, StartChildren
from microcommerce.actors.runtime import Actor
from microcommerce.actors.supervisor import (
    ONE_FOR_ALL,
    ChildSpec,
    RestartIntensity,
    RestartPolicy,
    Supervisor,
)
from microcommerce.actors.threaded import ThreadedRuntime


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- RestartIntensity ---------------------------------------------------------------------


def test_intensity_allows_up_to_max_restarts_within_the_window():
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=3, window_s=10.0, clock=clock)
    assert [intensity.allow() for _ in range(3)] == [True, True, True]
    assert intensity.allow() is False
    assert intensity.recent == 3


def test_intensity_forgets_restarts_older_than_the_window():
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=2, window_s=10.0, clock=clock)
    assert intensity.allow()
    clock.now += 6
    assert intensity.allow()
    assert not intensity.allow()  # two within 10 s already
    clock.now += 4.5  # the first restart is now 10.5 s old: out of the window
    assert intensity.allow()
    assert intensity.recent == 2
    assert not intensity.allow()


def test_intensity_window_slides_rather_than_resetting():
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=2, window_s=10.0, clock=clock)
    intensity.allow()  # t=0
    clock.now += 9
    intensity.allow()  # t=9
    clock.now += 2  # t=11: only the t=0 restart has left the window
    assert intensity.allow()
    assert not intensity.allow()


def test_a_refused_restart_is_not_recorded():
    clock = FakeClock()
    intensity = RestartIntensity(max_restarts=1, window_s=5.0, clock=clock)
    assert intensity.allow()
    for _ in range(5):
        clock.now += 1
        assert not intensity.allow()
    clock.now += 0.5  # 5.5 s after the only recorded restart
    assert intensity.allow()


def test_policy_rejects_an_unknown_strategy():
    with pytest.raises(ValueError, match="unknown supervision strategy"):
        RestartPolicy(strategy="rest_for_one")


# -- Supervisor actor ---------------------------------------------------------------------


class Recorder(Actor):
    """A child that only records the messages it receives."""

    def __init__(self, log: list[object], got_one: threading.Event) -> None:
        self.log = log
        self.got_one = got_one

    async def receive(self, message: object) -> None:
        self.log.append(message)
        self.got_one.set()


class Supervised:
    """A supervisor on the threaded runtime, asked from the test's thread."""

    def __init__(self, actor: Supervisor, runtime: ThreadedRuntime) -> None:
        self.actor = actor
        self.ref = runtime.spawn(actor)

    def ask(self, message: object, timeout: float) -> object:
        return self.ref.ask_pykka(message).get(timeout=timeout)


@pytest.fixture
def supervised():
    """Start a supervisor with two recorder children; stop everything afterwards."""
    runtime = ThreadedRuntime()
    started = []

    def start(policy: RestartPolicy):
        escalations: list[str] = []
        logs = {"a": [], "b": []}
        events = {"a": threading.Event(), "b": threading.Event()}
        sup = Supervised(Supervisor("test", policy, escalations.append), runtime)
        started.append(sup.ref)
        specs = [ChildSpec(cid, lambda cid=cid: runtime.spawn(Recorder(logs[cid], events[cid])))
                 for cid in logs]
        started.extend(sup.ask(StartChildren(specs), timeout=5).values())
        return sup, logs, events, escalations

    yield start
    for ref in reversed(started):
        asyncio.run(runtime.stop(ref, timeout=5))


def test_one_for_one_restarts_only_the_failed_child_with_growing_backoff(supervised):
    sup, logs, _, escalations = supervised(RestartPolicy(max_restarts=5, window_s=60, backoff_base_s=0.1,
                                                         backoff_max_s=0.3))
    delays = [sup.ask(ChildFailed("a", "boom"), timeout=5) for _ in range(3)]
    assert [d.action for d in delays] == ["restart"] * 3
    assert [d.delay_s for d in delays] == pytest.approx([0.1, 0.2, 0.3])  # doubled, then capped
    assert sup.actor.restarts_total == 3
    assert logs["b"] == []  # the sibling is left alone
    assert escalations == []


def test_supervisor_escalates_past_the_intensity_and_keeps_refusing(supervised):
    sup, _, _, escalations = supervised(RestartPolicy(max_restarts=2, window_s=60))
    answers = [sup.ask(ChildFailed("a", f"boom {i}"), timeout=5) for i in range(4)]
    assert [a.action for a in answers] == ["restart", "restart", "escalate", "escalate"]
    assert len(escalations) == 1  # the owner hears it once
    assert "a failed more than 2 times" in escalations[0]
    assert "boom 2" in escalations[0]
    assert sup.actor.escalated == escalations[0]
    assert sup.actor.restarts_total == 2


def test_one_for_all_tells_every_sibling_to_restart(supervised):
    sup, logs, events, _ = supervised(RestartPolicy(strategy=ONE_FOR_ALL))
    directive = sup.ask(ChildFailed("a", "boom"), timeout=5)
    assert isinstance(directive, Directive) and directive.action == "restart"
    assert events["b"].wait(5)
    assert len(logs["b"]) == 1 and isinstance(logs["b"][0], Restart)
    assert "a failed" in logs["b"][0].reason
    assert logs["a"] == []  # the failed child restarts itself by the directive
