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
        if isinstance(key, int):
            return self.routees[key % n]
        return self.routees[zlib.crc32(str(key).encode()) % n]
