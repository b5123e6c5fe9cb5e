"""User rules without I/O: roles, who may change what, passwords and one-time codes."""

from __future__ import annotations

import hashlib
import hmac
import re

import bcrypt

from microcommerce import environment
from microcommerce.errors import BadRequest, Forbidden

ROLES = ("user", "admin", "supplier")
STATUSES = ("active", "blocked")
OTP_TTL_S = 600
MAX_PASSWORD_BYTES = 72  # bcrypt's limit
OTP_MAX_ATTEMPTS = 5
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise BadRequest("email must be a valid email address")
    return value


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    return role


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise BadRequest(f"accountStatus must be one of {', '.join(STATUSES)}")
    return status


def check_update_allowed(actor_role: str, actor_id: int, target_id: int, role: str | None,
                         status: str | None) -> None:
    """Owners edit their profile; only admins touch roles and account status (no self-promotion)."""
    if actor_role != "admin" and actor_id != target_id:
        raise Forbidden("Only the owner or an admin may do this")
    if actor_role != "admin" and (role is not None or status is not None):
        raise Forbidden("Only an admin may change role or account status")


def check_password_length(password: str) -> bytes:
    """The password as bcrypt sees it; 400 past bcrypt's 72 bytes (which bcrypt 5 refuses
    instead of truncating). Bytes, not characters: an emoji takes four."""
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"Password is too long: at most {MAX_PASSWORD_BYTES} bytes in UTF-8 "
                         f"(this one is {len(raw)}; accented letters and emoji take 2-4 bytes each)")
    return raw


def changes_authority(role: str, status: str, new_role: str | None, new_status: str | None) -> bool:
    """Does an update change what the user's tokens allow? Then those tokens must stop working."""
    return (new_role is not None and new_role != role) or (new_status is not None and new_status != status)


def hash_password(password: str, cost: int) -> str:
    return bcrypt.hashpw(check_password_length(password), environment.bcrypt_salt(cost)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    raw = password.encode()
    if len(raw) > MAX_PASSWORD_BYTES:
        return False  # no stored password is this long (and bcrypt 5 would raise)
    try:
        return bcrypt.checkpw(raw, password_hash.encode())
    except ValueError:
        return False


# Checked against when the email is unknown, so a miss costs as much time as a hit. A fixed salt:
# nothing secret here, and importing the module draws nothing from the run's random source.
DUMMY_HASH = bcrypt.hashpw(b"not-a-real-password", b"$2b$04$MicroCommerceDummySal.").decode()


def new_otp() -> str:
    return f"{environment.randbelow(1_000_000):06d}"


def hash_otp(otp: str, user_id: int, pepper: str) -> str:
    """OTPs are short-lived and attempt-limited, so a keyed fast hash is enough at rest."""
    return hmac.new(pepper.encode(), f"{user_id}:{otp}".encode(), hashlib.sha256).hexdigest()


def otp_matches(otp: str, user_id: int, pepper: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_otp(otp, user_id, pepper), stored_hash)
