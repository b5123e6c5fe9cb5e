"""The deterministic runner's speed: simulated seconds and client operations per wall second.

    python bench/simulation.py [--duration 600] [--shoppers 32] [--faults all] [--seeds 1,2,3]

Each seed is one `microcommerce chaos --deterministic` run (the ten services, every fault
family on, shoppers thinking up to 4 s of simulated time between steps), measured from the
start of the platform to the checkers' verdict. Prints one line per seed and the median.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from microcommerce.chaos.cli import _families  # noqa: E402 - after the path fix
from microcommerce.chaos.runner import RunConfig  # noqa: E402
from microcommerce.chaos.simulation import simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds of workload")
    parser.add_argument("--shoppers", type=int, default=32)
    parser.add_argument("--faults", default="all")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # as the CLI does: the same run in every process
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    logging.basicConfig(level=logging.CRITICAL)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        config = RunConfig(seed=seed, duration=args.duration, shoppers=args.shoppers,
                           families=_families(args.faults), deterministic=True)
        started = time.perf_counter()
        result = simulate(config, progress=None)
        wall = time.perf_counter() - started
        simulated = result.history.entries[-1]["t"] if result.history.entries else args.duration
        ops = sum(v for k, v in result.ops.items() if k != "pending")
        rows.append((simulated / wall, ops / wall, wall))
        print(f"seed {seed}: {wall:5.1f} s wall for {simulated:6.1f} s simulated "
              f"({simulated / wall:5.1f} sim-s per wall-s), {ops} ops ({ops / wall:6.1f} ops per wall-s), "
              f"{sum(result.faults.values())} faults, valid={result.valid}", flush=True)
    print(f"median: {statistics.median(r[0] for r in rows):.1f} sim-s per wall-s, "
          f"{statistics.median(r[1] for r in rows):.1f} ops per wall-s, "
          f"{statistics.median(r[2] for r in rows):.1f} s wall per run")


if __name__ == "__main__":
    main()
