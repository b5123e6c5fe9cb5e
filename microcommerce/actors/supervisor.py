"""Supervision in the Erlang/OTP sense: child specs, one_for_one / one_for_all, restart intensity.

A failing child asks its supervisor what to do (`ChildFailed` → `Directive`). Within the
intensity (at most `max_restarts` in `window_s`) the answer is restart after an exponential
backoff; beyond it the supervisor escalates: its children go down (they refuse work with 503
and hand events back to their sender), the owner reports the service down on `/health`, and
after a backoff of its own (doubling per escalation that follows soon after the last, up to
`service_backoff_max_s`) the whole service restarts: every child, with a fresh intensity.
A service therefore never stays down while its process lives.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from microcommerce import environment
from microcommerce.actors.messages import (
    ChildFailed,
    Directive,
    GoDown,
    Restart,
    RestartService,
    StartChildren,
    TimerFired,
)
from microcommerce.actors.runtime import Actor, ActorRef, ActorStopped
from microcommerce.actors.timers import Timers

log = logging.getLogger(__name__)

ONE_FOR_ONE = "one_for_one"
ONE_FOR_ALL = "one_for_all"


@dataclass(slots=True)
class ChildSpec:
    """How to start one child; `start` returns a running actor's ref."""

    id: str
    start: Callable[[], ActorRef]


@dataclass(slots=True)
class RestartPolicy:
    strategy: str = ONE_FOR_ONE
    max_restarts: int = 5
    window_s: float = 10.0
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    service_backoff_base_s: float = 1.0
    service_backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.strategy not in (ONE_FOR_ONE, ONE_FOR_ALL):
            raise ValueError(f"unknown supervision strategy {self.strategy!r}")


class RestartIntensity:
    """Sliding window of restart times; `allow()` records one restart or refuses it."""

    def __init__(self, max_restarts: int, window_s: float,
                 clock: Callable[[], float] = environment.monotonic):
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        now = self._clock()
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True

    @property
    def recent(self) -> int:
        return len(self._times)


class Supervisor(Actor):
    """The supervisor of one service's children, itself an actor: failures are serialized."""

    def __init__(self, name: str, policy: RestartPolicy,
                 on_escalate: Callable[[str | None], None]) -> None:
        self.name = f"{name}-supervisor"
        self.service = name
        self.policy = policy
        self.intensity = RestartIntensity(policy.max_restarts, policy.window_s)
        self.children: dict[str, ActorRef] = {}
        self.restarts_total = 0
        self.service_restarts = 0
        self.escalated: str | None = None
        self._on_escalate = on_escalate
        self._escalations_in_a_row = 0
        self._last_service_restart = float("-inf")
        self._timers: Timers | None = None

    async def started(self) -> None:
        self._timers = Timers(self.ref, self.runtime.timer_scheduler)

    async def stopped(self) -> None:
        if self._timers is not None:
            self._timers.cancel_all()

    async def receive(self, message: object) -> Directive | dict[str, ActorRef] | None:
        if isinstance(message, StartChildren):
            for spec in message.specs:
                self.children[spec.id] = spec.start()
            return dict(self.children)
        if isinstance(message, ChildFailed):
            return self._child_failed(message)
        if isinstance(message, TimerFired) and self._timers is not None and self._timers.fired(message.name):
            self._restart_service()
        return None

    def _child_failed(self, failure: ChildFailed) -> Directive:
        if self.escalated or not self.intensity.allow():
            if not self.escalated:
                self._escalate(failure)
            return Directive("escalate")
        self.restarts_total += 1
        attempt = self.intensity.recent
        delay = min(self.policy.backoff_base_s * 2 ** (attempt - 1), self.policy.backoff_max_s)
        log.warning("supervisor %s restarts %s in %.2fs after: %s", self.service, failure.child_id,
                    delay, failure.error)
        if self.policy.strategy == ONE_FOR_ALL:
            for child_id, ref in self.children.items():
                if child_id != failure.child_id and ref.is_alive():
                    _tell(ref, Restart(f"sibling {failure.child_id} failed"))
        return Directive("restart", delay)

    def _escalate(self, failure: ChildFailed) -> None:
        # Escalations soon after the last service restart back off further; a calm spell resets.
        calm_s = max(self.policy.window_s, self.policy.service_backoff_max_s) * 2
        if environment.monotonic() - self._last_service_restart > calm_s:
            self._escalations_in_a_row = 0
        self._escalations_in_a_row += 1
        delay = min(self.policy.service_backoff_base_s * 2 ** (self._escalations_in_a_row - 1),
                    self.policy.service_backoff_max_s)
        self.escalated = (
            f"{failure.child_id} failed more than {self.policy.max_restarts} times "
            f"in {self.policy.window_s:g}s (last: {failure.error}); service restart in {delay:g}s"
        )
        log.error("supervisor %s escalates: %s", self.service, self.escalated)
        self._on_escalate(self.escalated)
        for child_id, ref in self.children.items():
            if child_id != failure.child_id and ref.is_alive():
                _tell(ref, GoDown(self.escalated))
        assert self._timers is not None
        self._timers.start_single("restart-service", delay, RestartService())

    def _restart_service(self) -> None:
        self.intensity = RestartIntensity(self.policy.max_restarts, self.policy.window_s)
        self.escalated = None
        self.service_restarts += 1
        self._last_service_restart = environment.monotonic()
        log.warning("supervisor %s restarts the whole service (restart %d)", self.service,
                    self.service_restarts)
        for ref in self.children.values():
            if ref.is_alive():
                _tell(ref, Restart("service restart after escalation"))
        self._on_escalate(None)


def _tell(ref: ActorRef, message: object) -> None:
    try:
        ref.tell(message)
    except ActorStopped:
        pass
