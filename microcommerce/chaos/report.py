"""The run's summary on a terminal: faults by family, ops by outcome, each checker's verdict
with its counterexample, and the command that replays the run."""

from __future__ import annotations

import json
import shlex
from typing import Any

from microcommerce.chaos.runner import RunConfig, RunResult

MARK = {True: "valid", False: "INVALID", "unknown": "unknown"}


def replay_command(config: RunConfig, out: str) -> str:
    if config.deterministic:  # the recorded trace says everything; a divergence is reported
        return shlex.join(["microcommerce", "chaos", "--replay", out, "--out", f"{out}-replay"])
    parts = ["microcommerce", "chaos", "--seed", str(config.seed), "--duration", f"{config.duration:g}",
             "--shoppers", str(config.shoppers),
             "--faults", ",".join(sorted(config.families)) if config.families else "none"]
    if config.swarm:
        parts.append("--swarm")
    if config.think_s is not None:
        parts += ["--think", f"{config.think_s:g}"]
    if config.db_url:
        parts += ["--db", config.db_url]
    parts += ["--out", out]
    return shlex.join(parts)


def _short(value: Any, limit: int = 600) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def summary(result: RunResult, config: RunConfig, out: str) -> str:
    faults = ", ".join(f"{k}={v}" for k, v in sorted(result.faults.items())) or "none injected"
    ops = ", ".join(f"{k}={v}" for k, v in result.ops.items())
    lines = [f"seed {result.seed}: {MARK[result.valid]}", f"  faults   {faults}", f"  ops      {ops}",
             f"  healed   {'yes' if result.healed else 'NO (timed out: convergence checks are unknown)'}"]
    for name, verdict in result.checkers.items():
        lines.append(f"  {name:<20} {MARK[verdict['valid']]}")
        if verdict["counterexample"] is not None:
            lines.append(f"      counterexample ({verdict.get('problems', 1)} problem(s)): "
                         f"{_short(verdict['counterexample'])}")
    if result.kept_databases:
        lines.append(f"  kept     the run's MySQL databases, for a look: {', '.join(result.kept_databases)}")
    trace = ", trace.jsonl" if config.deterministic else ""
    lines.append(f"  written  {out}/results.json, history.jsonl, faults.jsonl{trace}")
    lines.append(f"  replay   {replay_command(config, out)}")
    return "\n".join(lines)
