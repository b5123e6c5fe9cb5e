"""Token verification: the per-process cache never outlives a token or a revocation."""

import pytest

from microcommerce.environment import SimulatedEnvironment, installed
from microcommerce.errors import Unauthorized
from microcommerce.http.auth import Principal, Revocations, TokenIssuer

ALICE = Principal(id=7, role="user", email="alice@example.com", name="Alice", tv=0)


def make_issuer(ttl_s: int = 60) -> TokenIssuer:
    return TokenIssuer("s" * 32, ttl_s, Revocations())


def identity(principal: Principal) -> Principal:
    """The principal without its token's id and expiry."""
    return Principal(id=principal.id, role=principal.role, email=principal.email, name=principal.name,
                     tv=principal.tv)


def test_a_verified_token_is_served_again_from_the_cache():
    issuer = make_issuer()
    token = issuer.issue(ALICE)
    assert identity(issuer.verify(token)) == ALICE
    issuer.secret = "another-secret-of-32-characters!"  # a decode would now fail
    assert identity(issuer.verify(token)) == ALICE


def test_revocation_applies_to_cached_tokens():
    issuer = make_issuer()
    token = issuer.issue(ALICE)
    issuer.verify(token)
    issuer.revocations.raise_min_version(ALICE.id, 1)
    with pytest.raises(Unauthorized, match="revoked"):
        issuer.verify(token)


def test_a_cached_token_expires_with_its_exp_claim():
    issuer = make_issuer(ttl_s=60)
    clock = [0.0]
    with installed(SimulatedEnvironment(1, lambda: clock[0])):
        token = issuer.issue(ALICE)
        issuer.verify(token)
        clock[0] += 120
        with pytest.raises(Unauthorized, match="expired"):
            issuer.verify(token)


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(TokenIssuer, "CACHE_SIZE", 3)
    issuer = make_issuer()
    tokens = [issuer.issue(Principal(id=i, role="user")) for i in range(1, 6)]
    for token in tokens:
        issuer.verify(token)
    assert len(issuer._verified) == 3


def test_an_older_status_event_redelivered_late_does_not_undo_a_newer_one():
    issuer = make_issuer()
    token = issuer.issue(ALICE)
    revocations = issuer.revocations
    revocations.set_void(ALICE.id, True, as_of="2026-01-01T10:00:01.000Z")  # blocked
    revocations.set_void(ALICE.id, False, as_of="2026-01-01T10:00:00.000Z")  # older "active"
    with pytest.raises(Unauthorized, match="revoked"):
        issuer.verify(token)
    revocations.set_void(ALICE.id, False, as_of="2026-01-01T10:00:02.000Z")  # unblocked later
    assert identity(issuer.verify(token)) == ALICE


def test_an_older_role_event_does_not_restore_a_removed_role():
    issuer = make_issuer()
    admin = Principal(id=9, role="admin")
    token = issuer.issue(admin)
    issuer.revocations.set_role(9, "user", as_of="2026-01-01T10:00:01.000Z")
    issuer.revocations.set_role(9, "admin", as_of="2026-01-01T10:00:00.000Z")
    with pytest.raises(Unauthorized):
        issuer.verify(token)
