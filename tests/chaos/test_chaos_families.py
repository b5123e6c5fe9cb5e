"""The real code under each fault family on its own, and under all of them together: every run
is valid. And one seed always means one fault schedule."""

from __future__ import annotations

import asyncio
import json

import pytest

from microcommerce.chaos.faults import FAMILIES, FaultPlan
from microcommerce.chaos.runner import RunConfig, RunResult, run_chaos


def failing(result: RunResult) -> str:
    """What an invalid run found, whole (pytest would cut a long assertion message short)."""
    found = {name: c["counterexample"] for name, c in result.checkers.items() if c["valid"] is not True}
    return json.dumps({"seed": result.seed, "faults": result.faults, "found": found}, default=str)


def run(seed: int, families: tuple[str, ...], *, duration: float = 2.5, shoppers: int = 5,
        swarm: bool = False) -> RunResult:
    config = RunConfig(seed=seed, duration=duration, shoppers=shoppers, families=families, swarm=swarm)
    return asyncio.run(run_chaos(config, progress=None))


@pytest.mark.parametrize("family", FAMILIES)
def test_each_fault_family_alone_leaves_every_invariant_valid(family):
    result = run(seed=100 + FAMILIES.index(family), families=(family,))
    assert result.healed, result.checkers
    assert result.valid is True, failing(result)
    assert result.ops["ok"] > 20


@pytest.mark.parametrize("seed", [1, 2])
def test_all_fault_families_together_leave_every_invariant_valid(seed):
    result = run(seed=seed, families=FAMILIES, duration=4.0, shoppers=6)
    injected = {family for family, n in result.faults.items() if n}
    assert len(injected) >= 6, result.faults  # the run really was under fire
    assert result.valid is True, failing(result)


def test_swarm_lets_the_seed_choose_the_families():
    result = run(seed=5, families=FAMILIES, swarm=True)
    assert result.plan.families == FaultPlan(5, FAMILIES, swarm=True).families
    assert result.valid is True, failing(result)


def _schedule(result: RunResult) -> dict[tuple, dict]:
    """The faults a run took, keyed by what suffered them; times left out (they are wall clock)."""
    faults = {}
    for fault in result.plan.injected():
        entry = fault.as_json()
        entry.pop("t", None)
        faults[(entry["family"], entry["target"], entry["n"])] = entry
    return faults


def test_the_same_seed_gives_the_same_fault_schedule():
    first, second = (run(seed=42, families=FAMILIES, duration=2.0, shoppers=4) for _ in range(2))
    a, b = _schedule(first), _schedule(second)
    common = a.keys() & b.keys()
    assert len(common) > 20  # most of the same deliveries, transactions and requests happened again
    assert all(a[key] == b[key] for key in common)  # and each one suffered the same fault
    horizon = 10.0
    assert first.plan.partition_schedule(horizon) == second.plan.partition_schedule(horizon)
    other = run(seed=43, families=FAMILIES, duration=2.0, shoppers=4)
    c = _schedule(other)
    assert json.dumps(sorted(map(str, a)), sort_keys=True) != json.dumps(sorted(map(str, c)), sort_keys=True)
