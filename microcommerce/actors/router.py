"""Routing by key: commands and events for one aggregate always reach the same worker."""

from __future__ import annotations

import itertools
import zlib
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyRouter(Generic[T]):
    def __init__(self, routees: list[T]) -> None:
        if not routees:
            raise ValueError("a router needs at least one routee")
        self.routees = routees
        self._next = itertools.count()

    def route(self, key: object) -> T:
        n = len(self.routees)
        if key is None:
            return self.routees[next(self._next) % n]  # no aggregate: spread the load
        # Hash the text form: an event keyed "5" and a command keyed 5 reach the same worker.
        return self.routees[zlib.crc32(str(key).encode()) % n]
