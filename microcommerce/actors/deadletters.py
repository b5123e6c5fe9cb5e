"""Dead letters: messages that could not be delivered (full mailbox, stopped actor, DLQ'd event)."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class DeadLetter:
    service: str
    reason: str
    message_type: str


class DeadLetters:
    """Counts per (service, reason) for /metrics and keeps the last few for debugging."""

    def __init__(self, keep: int = 100) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self.recent: deque[DeadLetter] = deque(maxlen=keep)

    def record(self, service: str, reason: str, message: object) -> None:
        letter = DeadLetter(service, reason, type(message).__name__)
        with self._lock:
            self._counts[(service, reason)] += 1
            self.recent.append(letter)

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def total(self, service: str | None = None) -> int:
        with self._lock:
            return sum(n for (svc, _), n in self._counts.items() if service in (None, svc))
