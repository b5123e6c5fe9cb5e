"""Timers owned by an actor: single-shot and periodic, delivered as messages, cancelled with it.

The runtime owns the scheduler: in the threaded runtime one scheduler thread per process serves
every timer (idle timers cost no threads); the simulated runtime fires them in virtual time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from microcommerce.actors.messages import TimerFired
from microcommerce.actors.runtime import ActorRef, ActorStopped


@dataclass(order=True, slots=True)
class TimerEntry:
    """One scheduled timer; a scheduler skips it once `cancelled` is set."""

    due: float
    seq: int
    name: str = field(compare=False)
    target: ActorRef = field(compare=False)
    message: Any = field(compare=False)
    interval: float | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


class TimerScheduler:
    """Where timers wait; `schedule` returns an entry that cancels by `entry.cancelled = True`."""

    def schedule(self, name: str, target: ActorRef, message: Any, delay: float,
                 interval: float | None = None) -> TimerEntry:
        raise NotImplementedError


class ThreadTimerScheduler(TimerScheduler):
    """One thread on the monotonic wall clock for every timer of the process."""

    def __init__(self) -> None:
        self._heap: list[TimerEntry] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, name: str, target: ActorRef, message: Any, delay: float,
                 interval: float | None = None) -> TimerEntry:
        entry = TimerEntry(time.monotonic() + delay, next(self._seq), name, target, message, interval)
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            self._cond.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0].due > time.monotonic()):
                    self._cond.wait(self._heap[0].due - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
                if entry.cancelled:
                    continue
                if entry.interval is not None:
                    entry.due = time.monotonic() + entry.interval
                    heapq.heappush(self._heap, entry)
            try:
                entry.target.tell(TimerFired(entry.name, entry.message))
            except ActorStopped:
                entry.cancelled = True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()


SCHEDULER = ThreadTimerScheduler()


class Timers:
    """The timers of one actor. Starting a timer under a name that exists replaces it."""

    def __init__(self, owner: ActorRef, scheduler: TimerScheduler = SCHEDULER) -> None:
        self._owner = owner
        self._scheduler = scheduler
        self._active: dict[str, TimerEntry] = {}

    def start_single(self, name: str, delay_s: float, message: Any) -> None:
        self.cancel(name)
        self._active[name] = self._scheduler.schedule(name, self._owner, message, delay_s)

    def start_periodic(self, name: str, interval_s: float, message: Any) -> None:
        self.cancel(name)
        self._active[name] = self._scheduler.schedule(name, self._owner, message, interval_s, interval_s)

    def fired(self, name: str) -> bool:
        """Called when a timer message arrives; False if it was cancelled meanwhile."""
        entry = self._active.get(name)
        if entry is None or entry.cancelled:
            return False
        if entry.interval is None:
            del self._active[name]
        return True

    def cancel(self, name: str) -> None:
        entry = self._active.pop(name, None)
        if entry is not None:
            entry.cancelled = True

    def cancel_all(self) -> None:
        for name in list(self._active):
            self.cancel(name)

    @property
    def active(self) -> list[str]:
        return list(self._active)
