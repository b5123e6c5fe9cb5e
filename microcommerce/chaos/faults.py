"""The fault plan: which fault families are on, at what rate, and what was injected.

One seed drives everything (see `seeds.py`). A fault decision is a pure function of
(seed, family, stream, n): the wrappers name a stable stream — a topic, consumer group and key
for bus deliveries, a service for transactions, a service and message type for crashes — and
the plan counts its occurrences, so the n-th delivery of key k on topic t always suffers the
same fault for a given seed, whichever thread gets there first. Partitions are windows of
time since the start, drawn in advance from the seed's "partition" stream.

What is reproducible: the schedule (what the n-th occurrence of each stream suffers, and the
partition windows) and, through `rng("workload")`, the workload's decisions. What is not:
thread interleavings and wall-clock times, hence how many occurrences each stream sees in a
run and which scheduled faults are actually reached. `faults.jsonl` lists the faults taken,
sorted by (family, target, n) — not by time — so two runs that reach the same occurrences
write the same file apart from the "t" field (seconds since start, for reading only).

The payment side: `provider_token` hands the workload a slow token, which the mock provider
books at once and answers only after `SLOW_TOKEN_DELAY_S` (3 s). For the caller to time out
*after* the charge, the run must configure `PAYMENT_TIMEOUT_MS` below that (e.g. 2000).
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from microcommerce import environment
from microcommerce.actors.bus import EventBus
from microcommerce.actors.faults import DatabaseFactory, FaultInjector
from microcommerce.actors.requests import Requester

from .seeds import draw, subsystem_rng

if TYPE_CHECKING:
    from .faulty_bus import Later

FAMILIES = ("crash", "drop", "dup", "delay", "reorder", "partition", "timeout", "db", "slow", "provider")

# Per occurrence, except partition: windows per second of run time.
DEFAULT_RATES: dict[str, float] = {
    "crash": 0.02,      # per command or event handled
    "drop": 0.05,       # per delivery to a consumer group
    "dup": 0.05,        # per delivery
    "delay": 0.1,       # per delivery, 0-300 ms
    "reorder": 0.05,    # per delivery
    "partition": 0.5,   # windows per second, each 0.5-2 s
    "timeout": 0.03,    # per request between services
    "db": 0.02,         # per transaction
    "slow": 0.01,       # per command or event, a 50-500 ms stall
    "provider": 0.1,    # per charge the workload sends
}

SLOW_TOKENS = {"stripe": "tok_visa_slow", "paymob": "paymob_success_slow"}

# The requests services make of each other in-process (caller, callee); the gateway reaches
# services over HTTP, not through the requester. A partition window cuts one of these pairs.
PARTITION_PAIRS = (
    ("cart", "product"),
    ("order", "cart"),
    ("order", "inventory"),
    ("payment", "order"),
    ("product", "inventory"),
)

# Injected worker restarts (a crash of a command, a lost database connection) per service and
# supervisor window: kept under the supervisor's intensity (5 in 10 s) so faults alone rarely
# escalate a service.
RESTART_BUDGET = 2
RESTART_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class Partition:
    index: int
    start_s: float
    end_s: float
    pair: tuple[str, str]
    mode: str  # "fail": ServiceUnavailable at once; "hang": wait out the timeout

    def cuts(self, caller: str | None, callee: str) -> bool:
        return {caller, callee} == set(self.pair)


@dataclass(frozen=True, slots=True)
class Injected:
    t: float
    family: str
    target: str
    n: int
    params: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "family": self.family, "target": self.target, "n": self.n,
                **self.params}


class FaultPlan:
    def __init__(self, seed: int, families: Iterable[str], *, rates: dict[str, float] | None = None,
                 swarm: bool = False, clock: Callable[[], float] = environment.monotonic) -> None:
        chosen = tuple(dict.fromkeys(families))
        unknown = [f for f in chosen if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown fault families: {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
        self.seed = seed
        self.swarm = swarm
        picked_rates: dict[str, float] = {}
        if swarm:
            chosen, picked_rates = swarm_pick(seed, chosen or FAMILIES)
        self.families = frozenset(chosen)
        self.rates = {f: DEFAULT_RATES[f] for f in FAMILIES if f in self.families}
        self.rates.update({f: r for f, r in picked_rates.items() if f in self.families})
        for family, rate in (rates or {}).items():
            if family not in FAMILIES:
                raise ValueError(f"unknown fault family {family!r}")
            if family in self.families:
                self.rates[family] = rate
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._counters: Counter[tuple[str, str]] = Counter()
        self._injected: list[Injected] = []
        self._stopped = False
        self._held = False
        self._stop_hooks: list[Callable[[], None]] = []
        self._record_hooks: list[Callable[[Injected], None]] = []
        self._rngs: dict[str, random.Random] = {}
        self._partitions: list[Partition] = []
        self._partition_rng = subsystem_rng(seed, "partition")
        self._restarts: dict[str, deque[float]] = {}

    def __repr__(self) -> str:
        rates = ", ".join(f"{f}={r:g}" for f, r in self.rates.items())
        return f"FaultPlan(seed={self.seed}, swarm={self.swarm}, {rates or 'no faults'})"

    # -- streams and decisions -----------------------------------------------------------------
    def rng(self, subsystem: str) -> random.Random:
        """The seeded stream of one subsystem (the same object on every call)."""
        with self._lock:
            stream = self._rngs.get(subsystem)
            if stream is None:
                stream = self._rngs[subsystem] = subsystem_rng(self.seed, subsystem)
            return stream

    def elapsed(self) -> float:
        return self._clock() - self._start

    @property
    def stopped(self) -> bool:
        return self._stopped

    def active(self, family: str) -> bool:
        return family in self.families and not self._stopped and not self._held

    def hold(self) -> None:
        """No faults until `begin()` (the platform starts and its catalogue is set up in peace)."""
        self._held = True

    def begin(self) -> None:
        """Faults from now on; times and partition windows count from here."""
        with self._lock:
            self._start = self._clock()
            self._held = False

    def decide(self, family: str, stream: str) -> tuple[int, float] | None:
        """Count one occurrence of `stream`; `(n, u)` when the family's fault fires on it, with
        `u` a uniform in [0, 1) that picks the fault's parameters, else None."""
        if not self.active(family):
            return None
        with self._lock:
            n = self._counters[(family, stream)]
            self._counters[(family, stream)] = n + 1
        fire, param = draw(self.seed, family, stream, n)
        return (n, param) if fire < self.rates[family] else None

    def record(self, family: str, target: str, n: int, **params: Any) -> None:
        """A fault was injected (the wrappers call this only once it really happened)."""
        injected = Injected(self.elapsed(), family, target, n, params)
        with self._lock:
            self._injected.append(injected)
        for hook in self._record_hooks:
            hook(injected)

    def on_record(self, hook: Callable[[Injected], None]) -> None:
        """Call `hook` with every fault as it is injected (the deterministic runner's trace)."""
        self._record_hooks.append(hook)

    def allow_restart(self, service: str) -> bool:
        """Take one injected worker restart from the service's budget (False: none left)."""
        now = self._clock()
        with self._lock:
            recent = self._restarts.setdefault(service, deque())
            while recent and now - recent[0] > RESTART_WINDOW_S:
                recent.popleft()
            if len(recent) >= RESTART_BUDGET:
                return False
            recent.append(now)
            return True

    def partition(self, caller: str | None, callee: str) -> Partition | None:
        """The partition window cutting caller from callee now, if any."""
        if not self.active("partition"):
            return None
        now = self.elapsed()
        with self._lock:
            self._extend_partitions(now)
            for window in self._partitions:
                if window.start_s <= now < window.end_s and window.cuts(caller, callee):
                    return window
        return None

    def partition_schedule(self, until_s: float) -> list[Partition]:
        """The windows starting before `until_s` (a pure function of the seed and rate)."""
        if "partition" not in self.families:
            return []
        with self._lock:
            self._extend_partitions(until_s)
            return [w for w in self._partitions if w.start_s < until_s]

    def _extend_partitions(self, until_s: float) -> None:
        rng, rate = self._partition_rng, self.rates["partition"]
        while not self._partitions or self._partitions[-1].start_s <= until_s:
            last_end = self._partitions[-1].end_s if self._partitions else 0.0
            start = last_end + rng.expovariate(rate) if rate > 0 else float("inf")
            duration = rng.uniform(0.5, 2.0)
            pair = PARTITION_PAIRS[rng.randrange(len(PARTITION_PAIRS))]
            mode = "fail" if rng.random() < 0.5 else "hang"
            self._partitions.append(Partition(len(self._partitions), start, start + duration, pair, mode))
            if rate <= 0:
                return

    def provider_token(self, provider: str, good_token: str) -> str:
        """The token the workload sends: the provider's slow one when the family fires (the
        charge is booked, the answer comes after the payment request timed out)."""
        slow = SLOW_TOKENS.get(provider)
        decision = self.decide("provider", provider) if slow else None
        if decision is None:
            return good_token
        self.record("provider", provider, decision[0], token=slow)
        return slow

    # -- healing -------------------------------------------------------------------------------
    def on_stop(self, hook: Callable[[], None]) -> None:
        """Run `hook` when the faults stop (a wrapper releases what it held back)."""
        with self._lock:
            self._stop_hooks.append(hook)
            stopped = self._stopped
        if stopped:
            hook()

    def stop(self) -> None:
        """Switch every fault off (the healing phase); wrappers pass everything through."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            hooks = list(self._stop_hooks)
        for hook in hooks:
            hook()

    # -- what happened -------------------------------------------------------------------------
    def injected(self) -> list[Injected]:
        """The faults taken so far, in a stable order (family, target, n)."""
        with self._lock:
            return sorted(self._injected, key=lambda f: (f.family, f.target, f.n))

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FAMILIES, 0)
        for fault in self.injected():
            counts[fault.family] += 1
        return counts

    def write_faults(self, path: Path) -> None:
        """faults.jsonl: one fault a line, sorted by (family, target, n); "t" is for reading."""
        lines = [json.dumps(fault.as_json(), sort_keys=True) for fault in self.injected()]
        Path(path).write_text("".join(line + "\n" for line in lines))


def swarm_pick(seed: int, candidates: Iterable[str]) -> tuple[tuple[str, ...], dict[str, float]]:
    """Swarm testing: the seed turns each candidate family on with probability 1/2 (at least
    one) and scales its default rate by 0.25-2. Draws are made for every candidate in a fixed
    order, so the pick depends only on the seed and the candidates."""
    rng = subsystem_rng(seed, "swarm")
    candidates = tuple(f for f in FAMILIES if f in set(candidates))
    draws = [(f, rng.random(), rng.uniform(0.25, 2.0)) for f in candidates]
    on = tuple(f for f, coin, _ in draws if coin < 0.5)
    if not on and candidates:
        on = (candidates[rng.randrange(len(candidates))],)
    return on, {f: DEFAULT_RATES[f] * scale for f, _, scale in draws if f in on}


@dataclass(frozen=True, slots=True)
class ChaosWiring:
    """What a Node needs to run under a plan: `Node(..., bus=w.bus, requester=w.requester,
    faults=w.faults, database_factory=w.database_factory)`."""

    plan: FaultPlan
    bus: EventBus
    requester: Requester
    faults: FaultInjector
    database_factory: DatabaseFactory


def chaos_wiring(plan: FaultPlan, later: Later | None = None) -> ChaosWiring:
    """Real in-process adapters (LocalBus, LocalRequester, open_database) wrapped with the
    plan's fault points. One wiring per Node. `later` runs the bus's held deliveries (thread
    timers by default; the simulation's virtual clock under the deterministic runner)."""
    from microcommerce.actors.bus import LocalBus
    from microcommerce.actors.requests import LocalRequester

    from .faulty_bus import FaultyBus, thread_timer
    from .faulty_requests import FaultyRequester
    from .faulty_storage import FaultyDatabaseFactory
    from .runtime_faults import RuntimeFaults

    return ChaosWiring(
        plan=plan,
        bus=FaultyBus(LocalBus(), plan, later or thread_timer),
        requester=FaultyRequester(LocalRequester(), plan),
        faults=RuntimeFaults(plan),
        database_factory=FaultyDatabaseFactory(plan),
    )
