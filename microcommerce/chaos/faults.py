"""Stand-in for the fault plan (replaced by the faults branch on merge): same API, injects nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from microcommerce.actors.bus import EventBus, LocalBus
from microcommerce.actors.faults import DatabaseFactory, FaultInjector
from microcommerce.actors.requests import LocalRequester, Requester

FAMILIES = ("crash", "drop", "dup", "delay", "reorder", "partition", "timeout", "db", "slow", "provider")


class FaultPlan:
    def __init__(self, seed: int, families: Iterable[str], *, rates: dict[str, float] | None = None,
                 swarm: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.seed = seed
        self.families = frozenset(families)
        unknown = self.families - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown fault families: {', '.join(sorted(unknown))}")
        self.rates = dict(rates or {})
        self.swarm = swarm
        self._clock = clock
        self._stopped = False

    def rng(self, subsystem: str) -> random.Random:
        return random.Random(f"{self.seed}/{subsystem}")

    def stop(self) -> None:
        self._stopped = True

    def counts(self) -> dict[str, int]:
        return {}

    def write_faults(self, path: Path) -> None:
        Path(path).write_text("")

    def provider_token(self, provider: str, good_token: str) -> str:
        return good_token


@dataclass
class ChaosWiring:
    bus: EventBus
    requester: Requester
    faults: FaultInjector | None
    database_factory: DatabaseFactory | None


def chaos_wiring(plan: FaultPlan) -> ChaosWiring:
    return ChaosWiring(bus=LocalBus(), requester=LocalRequester(), faults=None, database_factory=None)

