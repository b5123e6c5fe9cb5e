"""The simulated runtime: one message at a time per actor, seeded order, virtual time, timers,
stops, and a stall reported instead of a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from microcommerce import environment
from microcommerce.actors.messages import TimerFired
from microcommerce.actors.runtime import Actor, ActorStopped
from microcommerce.actors.simulated import SimulatedRuntime, SimulationStalled, VirtualTimeLoop
from microcommerce.actors.timers import Timers


def simulate(seed: int, body: Callable[[SimulatedRuntime], Coroutine[Any, Any, Any]]) -> tuple[Any, list]:
    """Run `body(runtime)` on a fresh virtual-time loop; returns its result and the trace."""
    loop = VirtualTimeLoop(stall_wait_s=0.05)
    trace: list = []
    runtime = SimulatedRuntime(seed, lambda kind, fields: trace.append((loop.time(), kind, fields)))
    try:
        with environment.installed(environment.SimulatedEnvironment(seed, loop.time)):
            return loop.run_until_complete(body(runtime)), trace
    finally:
        loop.close()


class Recorder(Actor):
    """Appends (name, message) to a shared log; pauses `pause_s` of virtual time mid-message."""

    def __init__(self, name: str, log: list, pause_s: float = 0.0) -> None:
        self.name = name
        self.log = log
        self.pause_s = pause_s
        self.inside = 0
        self.most_inside = 0
        self.stopped_with: list = []

    async def receive(self, message: Any) -> Any:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            self.log.append((self.name, message))
            return f"{self.name} got {message}"
        finally:
            self.inside -= 1

    def refuse(self, message: Any) -> None:
        self.stopped_with.append(message)


async def _drain(runtime: SimulatedRuntime, *refs) -> None:
    for ref in refs:
        await runtime.ask(ref, "sync", timeout=60)


def test_each_actor_takes_one_message_at_a_time_while_others_interleave():
    async def body(runtime: SimulatedRuntime):
        log: list = []
        slow, quick = Recorder("slow", log, pause_s=1.0), Recorder("quick", log)
        slow_ref, quick_ref = runtime.spawn(slow), runtime.spawn(quick)
        for n in range(3):
            slow_ref.tell(n)
            quick_ref.tell(n)
        await _drain(runtime, slow_ref, quick_ref)
        return log, slow.most_inside, asyncio.get_running_loop().time()

    (log, most_inside, now), _ = simulate(1, body)
    assert most_inside == 1
    assert [m for name, m in log if name == "slow"] == [0, 1, 2, "sync"]  # its own order kept
    assert log.index(("quick", 2)) < log.index(("slow", 1))  # quick ran while slow paused
    assert now == pytest.approx(4.0)  # four paused messages of 1 s each, in virtual time


def _order_of(seed: int) -> list:
    async def body(runtime: SimulatedRuntime):
        log: list = []
        refs = [runtime.spawn(Recorder(f"a{i}", log)) for i in range(8)]
        for ref in refs:
            ref.tell("go")
        await _drain(runtime, *refs)
        return [name for name, message in log if message == "go"]

    return simulate(seed, body)[0]


def test_the_seed_decides_which_mailbox_runs_next():
    assert _order_of(5) == _order_of(5)
    orders = {tuple(_order_of(seed)) for seed in range(1, 6)}
    assert len(orders) > 1  # different seeds, different interleavings
    assert all(sorted(order) == [f"a{i}" for i in range(8)] for order in orders)


def test_an_hour_of_virtual_time_passes_without_waiting_and_reads_the_environment():
    async def body(runtime: SimulatedRuntime):
        before = environment.now()
        await asyncio.sleep(3600)
        return environment.now() - before, environment.monotonic()

    (elapsed, monotonic), _ = simulate(1, body)
    assert elapsed == pytest.approx(3600)
    assert monotonic == pytest.approx(3600)


class TimerActor(Actor):
    name = "timed"

    def __init__(self) -> None:
        self.fired: list[tuple[float, str]] = []

    async def started(self) -> None:
        self.timers = Timers(self.ref, self.runtime.timer_scheduler)
        self.timers.start_periodic("tick", 10, "tick")
        self.timers.start_single("once", 25, "once")
        self.timers.start_single("never", 5, "never")
        self.timers.cancel("never")

    async def receive(self, message: Any) -> None:
        if isinstance(message, TimerFired) and self.timers.fired(message.name):
            self.fired.append((asyncio.get_running_loop().time(), message.name))


def test_timers_fire_in_virtual_time_and_cancelled_ones_never():
    async def body(runtime: SimulatedRuntime):
        actor = TimerActor()
        runtime.spawn(actor)
        await asyncio.sleep(35)
        actor.timers.cancel_all()
        await asyncio.sleep(100)
        return actor.fired

    fired, trace = simulate(1, body)
    assert fired == [(10, "tick"), (20, "tick"), (25, "once"), (30, "tick")]
    assert [fields["timer"] for _, kind, fields in trace if kind == "timer"] == ["tick", "tick", "once", "tick"]


def test_a_stop_finishes_the_message_in_hand_and_refuses_the_rest():
    async def body(runtime: SimulatedRuntime):
        log: list = []
        actor = Recorder("r", log, pause_s=1.0)
        ref = runtime.spawn(actor)
        ref.tell("first")
        stopping = asyncio.ensure_future(runtime.stop(ref, timeout=10))
        await asyncio.sleep(0)
        ref.tell("late")  # queued behind the stop
        await stopping
        with pytest.raises(ActorStopped):
            ref.tell("after")
        return log, actor.stopped_with, ref.is_alive()

    (log, refused, alive), _ = simulate(1, body)
    assert log == [("r", "first")]
    assert refused == ["late"]
    assert alive is False


def test_waiting_for_what_never_comes_is_reported_as_a_stall():
    async def body(runtime: SimulatedRuntime):
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationStalled, match="nothing runnable and no timer"):
        simulate(1, body)
