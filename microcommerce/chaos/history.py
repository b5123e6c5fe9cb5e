"""The history of client operations, Jepsen style: each op is an `invoke` followed by `ok`
(it happened), `fail` (it certainly did not) or `info` (unknown: a timeout, a 5xx after the
write was sent). Checkers read only this and a final read of the system."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from microcommerce import environment

OUTCOMES = ("ok", "fail", "info")


class History:
    def __init__(self, clock: Any = environment.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self._open: dict[int, dict[str, Any]] = {}
        self._next = 0

    def now(self) -> float:
        return round(self._clock() - self._t0, 4)

    def invoke(self, process: str, op: str, args: dict[str, Any]) -> int:
        with self._lock:
            index = self._next
            self._next += 1
            entry = {"index": index, "type": "invoke", "process": process, "op": op, "args": args, "t": self.now()}
            self._open[index] = entry
            self.entries.append(entry)
        return index

    def complete(self, index: int, outcome: str, result: Any) -> None:
        assert outcome in OUTCOMES, outcome
        with self._lock:
            invoked = self._open.pop(index)
            self.entries.append({"index": index, "type": outcome, "process": invoked["process"],
                                 "op": invoked["op"], "args": invoked["args"], "result": result, "t": self.now()})

    def completions(self) -> list[dict[str, Any]]:
        """Every finished op (its completion entry, which repeats op, args and process)."""
        with self._lock:
            return [e for e in self.entries if e["type"] != "invoke"]

    def counts(self) -> dict[str, int]:
        with self._lock:
            counted = Counter(e["type"] for e in self.entries if e["type"] != "invoke")
            pending = len(self._open)
        out = {outcome: counted.get(outcome, 0) for outcome in OUTCOMES}
        if pending:
            out["pending"] = pending
        return out

    def write(self, path: Path) -> None:
        with self._lock:
            lines = [json.dumps(entry, default=str, separators=(",", ":")) for entry in self.entries]
        Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))
