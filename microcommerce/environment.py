"""Where time, randomness and new ids come from: the runner's environment, never the OS directly.

The threaded runtime runs with `SystemEnvironment` (wall clock, OS randomness). The
deterministic simulation installs a `SimulatedEnvironment` (the simulation loop's virtual
clock, one seeded generator) in its context, so everything running inside it (handlers,
middlewares, stores, timers) reads virtual time and draws from the seed without knowing.

Services and the HTTP layer call the functions below (`now()`, `monotonic()`, `new_uuid()`,
`token_hex()`, ...) instead of `time`, `datetime.now`, `random`, `uuid` or `secrets`;
`tests/unit/test_environment_lint.py` fails when one of them is called directly.
"""

from __future__ import annotations

import base64
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_BCRYPT_ALPHABET = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


class Environment:
    """Clock, randomness and ids for the code running in this context."""

    #: True under the deterministic runner: no threads, no wall clock, CPU work inline.
    deterministic = False

    def __init__(self, generator: random.Random) -> None:
        self._random = generator

    def time(self) -> float:
        """Seconds since the epoch (timestamps, token expiry)."""
        raise NotImplementedError

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timeouts, backoff, rate windows)."""
        raise NotImplementedError

    @property
    def random(self) -> random.Random:
        """A generator for draws that need not be secret (jitter, sampling)."""
        return self._random

    def token_bytes(self, nbytes: int) -> bytes:
        raise NotImplementedError

    def new_uuid(self) -> str:
        raise NotImplementedError

    def token_hex(self, nbytes: int) -> str:
        return self.token_bytes(nbytes).hex()

    def token_urlsafe(self, nbytes: int) -> str:
        return base64.urlsafe_b64encode(self.token_bytes(nbytes)).rstrip(b"=").decode()

    def randbelow(self, n: int) -> int:
        return int.from_bytes(self.token_bytes(8), "big") % n

    def bcrypt_salt(self, rounds: int) -> bytes:
        """A bcrypt salt (`$2b$NN$` and 22 characters of 16 random bytes)."""
        encoded = base64.b64encode(self.token_bytes(16)).decode()[:22].translate(_BCRYPT_ALPHABET)
        return f"$2b${rounds:02d}${encoded}".encode()


class SystemEnvironment(Environment):
    """Wall clock and the OS's randomness: production, `dev`, `serve`, the threaded runtime."""

    def __init__(self) -> None:
        super().__init__(random.Random())
        # Like the random module's own generator: a forked child must not repeat the parent's draws.
        if hasattr(os, "register_at_fork"):  # POSIX only
            os.register_at_fork(after_in_child=self._random.seed)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def token_bytes(self, nbytes: int) -> bytes:
        return secrets.token_bytes(nbytes)

    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)  # uniform, as before the seam (the default's modulo is not quite)

    def new_uuid(self) -> str:
        return str(uuid.uuid4())


class SimulatedEnvironment(Environment):
    """Virtual time read from `clock` (the simulation loop's), everything random from one seed."""

    deterministic = True
    EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: every simulated run starts at the same instant

    def __init__(self, seed: int, clock: Callable[[], float]) -> None:
        super().__init__(random.Random(f"environment-{seed}"))
        self._clock = clock

    def time(self) -> float:
        return self.EPOCH + self._clock()

    def monotonic(self) -> float:
        return self._clock()

    def token_bytes(self, nbytes: int) -> bytes:
        return self._random.getrandbits(nbytes * 8).to_bytes(nbytes, "big")

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))


SYSTEM = SystemEnvironment()
_current: ContextVar[Environment] = ContextVar("microcommerce_environment", default=SYSTEM)


def current() -> Environment:
    return _current.get()


@contextmanager
def installed(environment: Environment) -> Iterator[Environment]:
    """Run the block (and every task it creates) in `environment`."""
    token = _current.set(environment)
    try:
        yield environment
    finally:
        _current.reset(token)


def now() -> float:
    """Seconds since the epoch, from the current environment."""
    return _current.get().time()


def monotonic() -> float:
    return _current.get().monotonic()


def rng() -> random.Random:
    return _current.get().random


def new_uuid() -> str:
    return _current.get().new_uuid()


def token_hex(nbytes: int) -> str:
    return _current.get().token_hex(nbytes)


def token_urlsafe(nbytes: int) -> str:
    return _current.get().token_urlsafe(nbytes)


def randbelow(n: int) -> int:
    return _current.get().randbelow(n)


def bcrypt_salt(rounds: int) -> bytes:
    return _current.get().bcrypt_salt(rounds)


def is_deterministic() -> bool:
    return _current.get().deterministic
