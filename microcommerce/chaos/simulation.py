"""The chaos harness on the deterministic runner: one thread, seeded order, virtual time.

`simulate(config)` builds a `VirtualTimeLoop`, installs a `SimulatedEnvironment` (virtual
clock, seeded ids) and runs the same harness (`run_chaos`) with a `SimulatedRuntime`. Every
delivery, timer and fault goes to `trace.jsonl` with its virtual time. With the same seed and
code, `history.jsonl`, `faults.jsonl` and `trace.jsonl` come out byte for byte the same; with
`expected=` (a recorded trace) the run stops at the first step that differs: `--replay`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from microcommerce import environment
from microcommerce.actors.simulated import SimulatedRuntime, VirtualTimeLoop, deterministic_gc
from microcommerce.chaos.faults import FAMILIES, FaultPlan, Injected
from microcommerce.chaos.runner import (
    MAX_DURATION_S,
    MAX_SHOPPERS,
    MAX_THINK_S,
    RunConfig,
    RunResult,
    run_chaos,
)

_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class RecordedConfig(msgspec.Struct):
    """The configuration a run wrote into its results.json, read back by `--replay`."""

    seed: Annotated[int, msgspec.Meta(ge=0)]
    duration: Annotated[float, msgspec.Meta(gt=0, le=MAX_DURATION_S)]
    shoppers: Annotated[int, msgspec.Meta(ge=1, le=MAX_SHOPPERS)]
    faults: list[Literal[FAMILIES]]
    swarm: bool
    deterministic: bool
    think: Annotated[float, msgspec.Meta(ge=0, le=MAX_THINK_S)]


class RecordedResults(msgspec.Struct):
    config: RecordedConfig | None = None


class Divergence(Exception):
    """A replay took a different step from the recorded run."""

    def __init__(self, line: int, expected: str | None, actual: str) -> None:
        self.line = line
        self.expected = expected
        self.actual = actual
        recorded = expected if expected is not None else "(the recorded run ended here)"
        super().__init__(f"the replay diverged at trace line {line}:\n  recorded: {recorded}\n  now:      {actual}")


class Trace:
    """Every step of a simulated run, in order, as JSON lines with the virtual time."""

    def __init__(self, clock: Callable[[], float], expected: list[str] | None = None) -> None:
        self._clock = clock
        self.lines: list[str] = []
        self._expected = expected
        self.divergence: Divergence | None = None
        self._watch: tuple[float, Callable[[], None]] | None = None
        self._next_watch = float("inf")

    def every(self, seconds: float, fn: Callable[[], None]) -> None:
        """Call `fn` each time the steps pass another `seconds` of virtual time (for progress
        lines: it schedules nothing, so the run is the same with or without it)."""
        self._watch = (seconds, fn)
        self._next_watch = self._clock() + seconds

    def step(self, kind: str, fields: dict[str, Any]) -> None:
        now = self._clock()
        if now >= self._next_watch and self._watch is not None:
            seconds, fn = self._watch
            self._next_watch += seconds * (1 + (now - self._next_watch) // seconds)
            fn()
        line = _encode({"t": round(now, 6), "kind": kind, **fields})
        if self._expected is not None and self.divergence is None:
            index = len(self.lines)
            expected = self._expected[index] if index < len(self._expected) else None
            if line != expected:
                self.divergence = Divergence(index + 1, expected, line)
                asyncio.get_running_loop().stop()  # the run ends here; `simulate` reports it
        self.lines.append(line)

    def fault(self, injected: Injected) -> None:
        self.step("fault", {"family": injected.family, "target": injected.target, "n": injected.n,
                            "params": injected.params})

    def write(self, path: Path) -> None:
        Path(path).write_text("".join(line + "\n" for line in self.lines))


def simulate(config: RunConfig, *, progress: Callable[[str], None] | None = print,
             plan_factory: Callable[[RunConfig], FaultPlan] | None = None,
             expected_trace: list[str] | None = None) -> RunResult:
    """Run `config` under the deterministic runner (call it where no event loop is running)."""
    loop = VirtualTimeLoop()
    trace = Trace(loop.time, expected_trace)
    runtime = SimulatedRuntime(config.seed, trace.step)
    try:
        with deterministic_gc(), environment.installed(environment.SimulatedEnvironment(config.seed, loop.time)):
            plan = plan_factory(config) if plan_factory else None  # made in simulated time
            run = run_chaos(config, progress=progress, plan=plan, runtime=runtime, trace=trace)
            try:
                return loop.run_until_complete(run)
            except RuntimeError:
                if trace.divergence is not None:
                    raise trace.divergence from None
                raise
    finally:
        _close(loop)


def read_trace(run_dir: Path) -> tuple[RunConfig, list[str]]:
    """The configuration and trace of a recorded deterministic run (`--replay DIR`)."""
    results = run_dir / "results.json"
    trace = run_dir / "trace.jsonl"
    if not results.is_file() or not trace.is_file():
        raise ValueError(f"--replay: {run_dir} has no results.json and trace.jsonl of a "
                         "deterministic run (`microcommerce chaos --deterministic --out DIR`)")
    try:
        recorded = msgspec.json.decode(results.read_bytes(), type=RecordedResults).config
    except msgspec.DecodeError as err:  # ValidationError included: a field out of its range
        raise ValueError(f"--replay: {results} is not the results of a chaos run ({err})") from None
    if recorded is None or not recorded.deterministic:
        raise ValueError(f"--replay: {run_dir} holds a threaded run; only --deterministic runs replay")
    config = RunConfig(seed=recorded.seed, duration=recorded.duration, shoppers=recorded.shoppers,
                       families=tuple(recorded.faults), swarm=recorded.swarm, deterministic=True,
                       think_s=recorded.think)
    return config, trace.read_text().splitlines()


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what a stopped run left behind, then close the loop."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending and not loop.is_running():
        try:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except RuntimeError:
            pass
    loop.close()
