"""Revocation merge rules: a snapshot and events may arrive in any order; logged-out ids expire."""

import time

import jwt
import pytest

from microcommerce import environment
from microcommerce.contracts.user import RevocationSnapshot, RevokedToken, UserRevocation
from microcommerce.environment import SimulatedEnvironment, installed
from microcommerce.errors import ServiceUnavailable, Unauthorized
from microcommerce.http.auth import Principal, Revocations, TokenIssuer

SECRET = "s" * 32
T0, T1, T2 = "2026-01-01T10:00:00.000Z", "2026-01-01T10:00:01.000Z", "2026-01-01T10:00:02.000Z"


def snapshot(*users: UserRevocation, tokens: tuple[RevokedToken, ...] = ()) -> RevocationSnapshot:
    return RevocationSnapshot(users=list(users), revokedTokens=list(tokens), takenAt=T2)


def user(user_id: int, *, version: int = 0, void: bool = False, role: str | None = "user",
         as_of: str = T1) -> UserRevocation:
    return UserRevocation(id=user_id, minTokenVersion=version, void=void, role=role, asOf=as_of)


def issued(issuer: TokenIssuer, principal: Principal) -> str:
    return issuer.issue(principal)


def test_an_older_snapshot_does_not_undo_an_event_seen_meanwhile():
    revocations = Revocations()
    revocations.set_void(1, False, as_of=T2)  # unblocked at T2 (event)
    revocations.set_role(2, "user", as_of=T2)  # demoted at T2 (event)
    revocations.apply_snapshot(snapshot(user(1, void=True, as_of=T1), user(2, role="admin", as_of=T1)))
    assert revocations.accepts(Principal(id=1, role="user"))
    assert not revocations.accepts(Principal(id=2, role="admin"))


def test_a_newer_snapshot_wins_over_an_older_event():
    revocations = Revocations()
    revocations.set_void(1, False, as_of=T0)
    revocations.apply_snapshot(snapshot(user(1, void=True, as_of=T1)))
    assert not revocations.accepts(Principal(id=1, role="user"))
    revocations.set_void(1, False, as_of=T0)  # a late redelivery of the old event
    assert not revocations.accepts(Principal(id=1, role="user"))


def test_token_versions_only_rise_whatever_the_order():
    revocations = Revocations()
    revocations.raise_min_version(1, 3)
    revocations.apply_snapshot(snapshot(user(1, version=2)))
    assert not revocations.accepts(Principal(id=1, role="user", tv=2))
    assert revocations.accepts(Principal(id=1, role="user", tv=3))
    revocations.apply_snapshot(snapshot(user(1, version=5)))
    assert not revocations.accepts(Principal(id=1, role="user", tv=4))


def test_a_deleted_user_in_the_snapshot_is_void_whatever_role_the_token_claims():
    revocations = Revocations()
    revocations.apply_snapshot(snapshot(user(4, void=True, role=None)))
    assert not revocations.accepts(Principal(id=4, role="user"))
    assert not revocations.accepts(Principal(id=4, role="admin"))
    assert revocations.accepts(Principal(id=5, role="user"))  # nobody else


def test_a_logged_out_token_is_refused_and_other_tokens_of_the_user_are_not():
    issuer = TokenIssuer(SECRET, 60, Revocations())
    alice = Principal(id=7, role="user")
    first, second = issued(issuer, alice), issued(issuer, alice)
    doomed = issuer.verify(first)
    issuer.revocations.revoke_token(doomed.jti, doomed.exp)
    with pytest.raises(Unauthorized, match="revoked"):
        issuer.verify(first)
    assert issuer.verify(second).id == 7
    assert issuer.identify(first).jti == doomed.jti  # logout may identify it again (twice is fine)


def test_revoked_ids_from_a_snapshot_are_refused_and_expired_ones_are_dropped():
    clock = [0.0]
    with installed(SimulatedEnvironment(1, lambda: clock[0])):
        now = int(environment.now())
        revocations = Revocations()
        revocations.apply_snapshot(snapshot(tokens=(RevokedToken(jti="live", userId=1, exp=now + 60),
                                                    RevokedToken(jti="stale", userId=1, exp=now - 1))))
        assert revocations.revoked_token_count() == 1
        assert not revocations.accepts(Principal(id=1, role="user", jti="live"))

        clock[0] += 120
        revocations.revoke_token("newer", now + 600)  # a later logout purges what has expired since
        assert revocations.revoked_token_count() == 1
        assert revocations.accepts(Principal(id=1, role="user", jti="live"))  # expired: its exp refuses it


def test_revoked_ids_stay_bounded_under_many_logouts():
    revocations = Revocations()
    clock = [0.0]
    with installed(SimulatedEnvironment(1, lambda: clock[0])):
        for i in range(1000):
            revocations.revoke_token(f"jti-{i}", int(environment.now()) + 30)
            clock[0] += 1  # tokens live 30 s; a purge runs at most every PURGE_INTERVAL_S
    assert revocations.revoked_token_count() <= 30 + Revocations.PURGE_INTERVAL_S + 1


def test_until_the_first_snapshot_tokens_get_503_not_a_guess():
    issuer = TokenIssuer(SECRET, 60, Revocations(loaded=False))
    token = issued(issuer, Principal(id=1, role="user"))
    with pytest.raises(ServiceUnavailable):
        issuer.verify(token)
    with pytest.raises(Unauthorized):
        issuer.verify("not-a-token")  # a bad token is still plainly 401
    issuer.revocations.apply_snapshot(snapshot())
    assert issuer.verify(token).id == 1


def test_a_token_without_an_id_is_refused():
    issuer = TokenIssuer(SECRET, 60, Revocations())
    now = int(time.time())
    legacy = jwt.encode({"sub": "1", "role": "user", "tv": 0, "iat": now, "exp": now + 60}, SECRET,
                        algorithm="HS256")
    with pytest.raises(Unauthorized, match="Invalid token"):
        issuer.verify(legacy)
    blank = jwt.encode({"sub": "1", "jti": "", "exp": now + 60}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized, match="Invalid token"):
        issuer.verify(blank)


def test_every_token_gets_its_own_id():
    issuer = TokenIssuer(SECRET, 60, Revocations())
    ids = {issuer.verify(issued(issuer, Principal(id=1, role="user"))).jti for _ in range(50)}
    assert len(ids) == 50 and all(len(jti) >= 16 for jti in ids)
