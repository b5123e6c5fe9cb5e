"""`microcommerce chaos`: one seeded chaos run (or many) and its verdict; exit 0 valid,
1 invalid, 2 unknown or a harness error."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from microcommerce.chaos.faults import FAMILIES

EXIT = {True: 0, False: 1, "unknown": 2}


def add_chaos_command(sub: argparse._SubParsersAction) -> None:
    chaos = sub.add_parser("chaos", help="seeded faults, virtual shoppers, invariant checkers (docs/chaos.md)",
                           description=__doc__)
    which = chaos.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, default=1, help="the seed of the fault schedule and the workload")
    which.add_argument("--seeds", metavar="A-B", help="run seeds A to B one after another; list the failing ones")
    chaos.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds of workload with faults on")
    chaos.add_argument("--shoppers", type=int, default=8, metavar="K", help="virtual shoppers (plus one admin)")
    chaos.add_argument("--faults", default="none", metavar="LIST",
                       help=f"comma-separated families, 'all' or 'none': {', '.join(FAMILIES)}")
    chaos.add_argument("--swarm", action="store_true", help="let the seed pick the fault families and rates")
    chaos.add_argument("--db", metavar="URL", help="MySQL URL with {service} (fresh databases per run, dropped "
                                                     "after a valid one; default: in-memory SQLite)")
    chaos.add_argument("--out", metavar="DIR", help="where results.json, history.jsonl, faults.jsonl go "
                                                    "(default chaos-out; per seed with --seeds; "
                                                    "with --replay DIR: DIR-replay)")
    chaos.add_argument("--think", type=float, metavar="S",
                       help="a client's longest pause between two steps (default 0.03 s; 4 s of "
                            "simulated time with --deterministic)")
    chaos.add_argument("--deterministic", action="store_true",
                       help="run on the deterministic runner (one thread, seeded order, virtual time): "
                            "the same seed gives byte-identical outputs and a trace.jsonl")
    which.add_argument("--replay", metavar="DIR",
                       help="re-run the deterministic run recorded in DIR and stop at the first step "
                            "that differs from its trace.jsonl")


def _families(value: str) -> tuple[str, ...]:
    if value == "all":
        return FAMILIES
    if value in ("none", ""):
        return ()
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"--faults: unknown family {', '.join(unknown)}; known: {', '.join(FAMILIES)}, all, none")
    return names


def _seed_range(value: str) -> range:
    match = re.fullmatch(r"(\d+)-(\d+)", value)
    if not match or int(match[1]) > int(match[2]):
        raise ValueError(f"--seeds: expected A-B with A <= B, got {value!r}")
    return range(int(match[1]), int(match[2]) + 1)


def _check(args: argparse.Namespace) -> None:
    from microcommerce.chaos.runner import MAX_DURATION_S, MAX_SHOPPERS, MAX_THINK_S

    if not 0 < args.duration <= MAX_DURATION_S:  # also refuses nan
        raise ValueError(f"--duration: must be more than 0 and at most {MAX_DURATION_S:g} seconds")
    if args.think is not None and not 0 <= args.think <= MAX_THINK_S:
        raise ValueError(f"--think: must be from 0 to {MAX_THINK_S:g} seconds")
    if not 1 <= args.shoppers <= MAX_SHOPPERS:
        raise ValueError(f"--shoppers: from 1 to {MAX_SHOPPERS}")
    if args.seed < 0:
        raise ValueError("--seed: must be 0 or more")
    if args.db and "{service}" not in args.db:
        raise ValueError("--db: the URL must contain {service} (one database per service)")


def _writable(out: Path) -> None:
    """Refuse an --out the results cannot go to before the run, not after it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out: cannot create {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out: {out} is not writable")


def run_one(config: Any, out: Path, expected_trace: list[str] | None = None) -> bool | str:
    from microcommerce.chaos.report import summary
    from microcommerce.chaos.runner import run_chaos, write_outputs
    from microcommerce.chaos.simulation import simulate

    def progress(line: str) -> None:
        print(line, flush=True)

    _writable(out)
    runner = " on the deterministic runner" if config.deterministic else ""
    print(f"chaos run: seed {config.seed}, {config.duration:g}s, {config.shoppers} shoppers, "
          f"faults {','.join(config.families) or 'none'}{' (swarm)' if config.swarm else ''}{runner}",
          flush=True)
    if config.deterministic:
        result = simulate(config, progress=progress, expected_trace=expected_trace)
    else:
        result = asyncio.run(run_chaos(config, progress=progress))
    write_outputs(result, out)
    print(summary(result, config, str(out)), flush=True)
    return result.valid


def cmd_chaos(args: argparse.Namespace) -> None:
    from microcommerce.chaos.runner import (  # the node only when a run starts
        HarnessError,
        RunConfig,
    )
    from microcommerce.chaos.simulation import Divergence, read_trace

    if (args.deterministic or args.replay) and os.environ.get("PYTHONHASHSEED") != "0":
        # str hashes (set order) must not change between a run and its replay in another process.
        os.execve(sys.executable, [sys.executable, "-m", "microcommerce.cli", *sys.argv[1:]],
                  {**os.environ, "PYTHONHASHSEED": "0"})
    logging.basicConfig(level=logging.CRITICAL)  # the services' own errors are part of the test
    try:
        _check(args)
        if args.deterministic and args.db:
            raise ValueError("--db: the deterministic runner keeps every database in memory (SQLite)")
        verdicts: dict[int, bool | str] = {}
        if args.replay:
            config, trace = read_trace(Path(args.replay))
            seeds = [config.seed]
            out = Path(args.out or f"{args.replay.rstrip('/')}-replay")
            verdicts[config.seed] = run_one(config, out, expected_trace=trace)
            print(f"replay: every one of {len(trace)} steps matched the recorded run", flush=True)
        else:
            families = _families(args.faults)
            seeds = _seed_range(args.seeds) if args.seeds else [args.seed]
            for seed in seeds:
                config = RunConfig(seed=seed, duration=args.duration, shoppers=args.shoppers,
                                   families=families, swarm=args.swarm, db_url=args.db,
                                   deterministic=args.deterministic, think_s=args.think)
                base = Path(args.out or "chaos-out")
                out = base / f"seed-{seed}" if args.seeds else base
                verdicts[seed] = run_one(config, out)
    except (Divergence, HarnessError, ValueError) as exc:
        print(f"microcommerce: chaos: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.seeds:
        failing = [s for s, v in verdicts.items() if v is not True]
        print(f"{len(seeds)} seeds: {len(seeds) - len(failing)} valid"
              + (f"; failing: {', '.join(f'{s} ({v})' for s, v in verdicts.items() if v is not True)}"
                 if failing else ""), flush=True)
    worst = False if False in verdicts.values() else ("unknown" if "unknown" in verdicts.values() else True)
    sys.exit(EXIT[worst])
