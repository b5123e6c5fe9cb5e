"""One seed, many independent streams (TigerBeetle's VOPR style).

Every subsystem gets its own `random.Random`, seeded from a hash of `"{seed}:{subsystem}"`, so
drawing more numbers in one subsystem never shifts another. Fault decisions do not use a
stream at all: each is a pure function of (seed, family, stream, n) — what happens to the n-th
delivery of a key, the n-th transaction of a service — so threads racing each other cannot
change what the n-th occurrence of anything suffers.
"""

from __future__ import annotations

import hashlib
import random

_SCALE = float(1 << 64)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(str(part) for part in parts).encode(), digest_size=16).digest()


def subsystem_seed(seed: int, subsystem: str) -> int:
    """The seed of one subsystem's stream, derived from the run's seed."""
    return int.from_bytes(_digest(seed, subsystem)[:8], "big")


def subsystem_rng(seed: int, subsystem: str) -> random.Random:
    return random.Random(subsystem_seed(seed, subsystem))


def draw(seed: int, family: str, stream: str, n: int) -> tuple[float, float]:
    """Two independent uniforms in [0, 1) for the n-th occurrence of `stream` under `family`:
    the first decides whether the fault fires, the second picks its parameters."""
    digest = _digest(seed, family, stream, n)
    return (int.from_bytes(digest[:8], "big") / _SCALE, int.from_bytes(digest[8:], "big") / _SCALE)
