"""Under a SimulatedEnvironment, ids, tokens, timestamps and token expiry follow the seed and the
simulated clock; under the system environment, nothing changes for production code."""

from __future__ import annotations

import threading

import bcrypt
import pytest

from microcommerce import environment
from microcommerce.actors.cpu import run_cpu
from microcommerce.contracts.events import new_event, utc_now_iso
from microcommerce.contracts.user import LoggedOut
from microcommerce.environment import SimulatedEnvironment, installed
from microcommerce.errors import Unauthorized
from microcommerce.http.auth import Principal, Revocations, TokenIssuer
from microcommerce.http.middlewares import new_request_id
from microcommerce.services.payment import domain as payment_domain
from microcommerce.services.user import domain as user_domain

SECRET = "s" * 32
ALICE = Principal(id=7, role="user", email="alice@example.com", name="Alice")


class Clock:
    """The simulation loop's clock, moved by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def simulated(seed: int, clock: Clock | None = None) -> SimulatedEnvironment:
    return SimulatedEnvironment(seed, clock or Clock())


def draws(seed: int) -> list[object]:
    """Everything random a handler or middleware may produce, in one seeded run."""
    with installed(simulated(seed)):
        return [environment.new_uuid(), environment.token_hex(8), environment.token_urlsafe(8),
                environment.randbelow(10**9), environment.bcrypt_salt(4),
                new_event("user.logged-out", "user-service", LoggedOut(id=1, jti="j", exp=1)).eventId,
                new_request_id(), user_domain.new_otp(), payment_domain.new_attempt_key(),
                TokenIssuer(SECRET, 60, Revocations()).issue(ALICE)]


def test_the_same_seed_draws_the_same_ids_and_tokens_and_another_seed_others():
    first, again, other = draws(1), draws(1), draws(2)
    assert first == again
    differing = [i for i, (a, b) in enumerate(zip(first, other, strict=True)) if a != b]
    assert differing == list(range(len(first)))


def test_outside_a_simulation_ids_come_from_the_os():
    assert not environment.is_deterministic()
    assert environment.new_uuid() != environment.new_uuid()
    assert new_request_id() != new_request_id()


def test_event_timestamps_follow_the_simulated_clock():
    clock = Clock()
    with installed(simulated(1, clock)):
        assert utc_now_iso() == "2026-01-01T00:00:00.000Z"
        clock.t = 90.5
        assert utc_now_iso() == "2026-01-01T00:01:30.500Z"
        event = new_event("user.logged-out", "user-service", LoggedOut(id=1, jti="j", exp=1))
        assert event.occurredAt == "2026-01-01T00:01:30.500Z"


def test_a_token_issued_in_simulation_expires_in_simulated_time():
    clock = Clock()
    with installed(simulated(1, clock)):
        token = TokenIssuer(SECRET, 60, Revocations()).issue(ALICE)
        clock.t = 59.9
        assert TokenIssuer(SECRET, 60, Revocations()).verify(token).id == ALICE.id  # decoded
        cached = TokenIssuer(SECRET, 60, Revocations())
        cached.verify(token)
        clock.t = 60.0  # exp has come
        with pytest.raises(Unauthorized, match="Token expired"):
            TokenIssuer(SECRET, 60, Revocations()).verify(token)
        with pytest.raises(Unauthorized, match="Token expired"):
            cached.verify(token)


def test_a_token_issued_later_in_simulated_time_is_not_yet_valid():
    clock = Clock()
    with installed(simulated(1, clock)):
        clock.t = 100.0
        token = TokenIssuer(SECRET, 60, Revocations()).issue(ALICE)
        clock.t = 50.0
        with pytest.raises(Unauthorized, match="Invalid token"):
            TokenIssuer(SECRET, 60, Revocations()).verify(token)


@pytest.mark.parametrize("seed", [None, 1])
def test_the_bcrypt_salt_hashes_and_checks(seed):
    env = environment.SYSTEM if seed is None else simulated(seed)
    with installed(env):
        salt = environment.bcrypt_salt(4)
        hashed = bcrypt.hashpw(b"correct-horse", salt)
        assert hashed.startswith(salt)
        assert bcrypt.checkpw(b"correct-horse", hashed)
        assert not bcrypt.checkpw(b"wrong-horse", hashed)
        stored = user_domain.hash_password("correct-horse", 4)
        assert user_domain.verify_password("correct-horse", stored)


class MarkedEnvironment(environment.SystemEnvironment):
    """The system's clock and randomness, recognisable."""


async def test_cpu_work_runs_inline_in_a_simulation_and_in_the_pool_with_the_callers_environment():
    def where() -> tuple[int, environment.Environment]:
        return threading.get_ident(), environment.current()

    simulation = simulated(1)
    with installed(simulation):
        assert await run_cpu(where) == (threading.get_ident(), simulation)
    marked = MarkedEnvironment()
    with installed(marked):
        thread, seen = await run_cpu(where)
    assert thread != threading.get_ident()
    assert seen is marked
