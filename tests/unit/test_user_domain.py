"""User rules without I/O: emails, roles, who may change what, passwords and one-time codes."""

from __future__ import annotations

import re

import pytest

from microcommerce.errors import BadRequest, Forbidden
from microcommerce.services.user import domain

PEPPER = "pepper-of-at-least-16-chars"


@pytest.mark.parametrize(("raw", "normalized"), [
    ("Alice@Example.COM", "alice@example.com"),
    ("  bob@example.org ", "bob@example.org"),
    ("a.b+tag@sub.example.co", "a.b+tag@sub.example.co"),
])
def test_emails_are_trimmed_and_lowercased(raw, normalized):
    assert domain.normalize_email(raw) == normalized


@pytest.mark.parametrize("bad", ["", "alice", "alice@", "@example.com", "alice@example", "a b@example.com",
                                 "alice@@example.com"])
def test_invalid_emails_are_a_bad_request(bad):
    with pytest.raises(BadRequest, match="email"):
        domain.normalize_email(bad)


def test_roles_and_statuses_are_closed_sets():
    assert [domain.check_role(r) for r in ("user", "admin", "supplier")] == ["user", "admin", "supplier"]
    assert domain.check_status("blocked") == "blocked"
    with pytest.raises(BadRequest, match="role"):
        domain.check_role("superuser")
    with pytest.raises(BadRequest, match="accountStatus"):
        domain.check_status("suspended")


def test_owner_may_edit_their_own_profile():
    domain.check_update_allowed("user", 5, 5, role=None, status=None)


def test_a_user_may_not_edit_someone_else():
    with pytest.raises(Forbidden):
        domain.check_update_allowed("user", 5, 6, role=None, status=None)
    with pytest.raises(Forbidden):
        domain.check_update_allowed("supplier", 5, 6, role=None, status=None)


@pytest.mark.parametrize("role", ["admin", "supplier", "user"])
def test_a_user_can_never_set_their_own_role(role):
    with pytest.raises(Forbidden, match="role"):
        domain.check_update_allowed("user", 5, 5, role=role, status=None)


def test_a_user_can_not_change_their_own_account_status():
    with pytest.raises(Forbidden):
        domain.check_update_allowed("user", 5, 5, role=None, status="active")


def test_a_supplier_can_not_promote_themselves_either():
    with pytest.raises(Forbidden):
        domain.check_update_allowed("supplier", 5, 5, role="admin", status=None)


def test_admin_may_change_anyones_role_and_status():
    domain.check_update_allowed("admin", 1, 5, role="supplier", status="blocked")
    domain.check_update_allowed("admin", 1, 1, role="admin", status=None)


def test_password_hash_round_trip_and_cost():
    hashed = domain.hash_password("correct horse", 4)
    assert hashed.startswith("$2b$04$")  # bcrypt at the configured cost
    assert "correct horse" not in hashed
    assert domain.verify_password("correct horse", hashed)
    assert not domain.verify_password("wrong horse", hashed)


def test_two_hashes_of_one_password_differ_by_salt():
    assert domain.hash_password("same-password", 4) != domain.hash_password("same-password", 4)


def test_verify_against_a_malformed_hash_is_false_not_an_error():
    assert domain.verify_password("anything", "not-a-bcrypt-hash") is False


def test_dummy_hash_never_matches_a_likely_password():
    assert not domain.verify_password("password123", domain.DUMMY_HASH)


def test_otps_are_six_digits():
    codes = {domain.new_otp() for _ in range(200)}
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)
    assert len(codes) > 150  # random, not a counter


def test_otp_hash_is_bound_to_user_and_pepper():
    stored = domain.hash_otp("123456", 7, PEPPER)
    assert "123456" not in stored
    assert domain.otp_matches("123456", 7, PEPPER, stored)
    assert not domain.otp_matches("123457", 7, PEPPER, stored)
    assert not domain.otp_matches("123456", 8, PEPPER, stored)  # another user's code
    assert not domain.otp_matches("123456", 7, PEPPER + "x", stored)


def test_otp_policy_constants_are_sane():
    assert 60 <= domain.OTP_TTL_S <= 3600
    assert 1 <= domain.OTP_MAX_ATTEMPTS <= 10
