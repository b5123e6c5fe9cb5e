"""User service contract: events on `user-events`, and the token revocation snapshot other services ask for."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command
from microcommerce.contracts.events import USER_EVENTS, register_event

USER_CREATED = "USER_CREATED"
USER_UPDATED = "USER_UPDATED"
USER_DELETED = "USER_DELETED"
USER_PASSWORD_CHANGED = "USER_PASSWORD_CHANGED"
PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"
USER_LOGGED_OUT = "USER_LOGGED_OUT"


class UserData(msgspec.Struct, kw_only=True, frozen=True):
    """Payload of USER_CREATED and USER_UPDATED (the seed's shape, plus the token version).

    A change of role or account status bumps `tokenVersion`: tokens issued before it stop working.
    """

    id: int
    name: str
    email: str
    role: str
    accountStatus: str
    tokenVersion: int = 0


class UserDeleted(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    email: str


class PasswordChanged(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    tokenVersion: int


class PasswordResetRequested(msgspec.Struct, kw_only=True, frozen=True):
    """Carries the OTP to the notification service's email channel (stored hashed by the user service)."""

    userId: int
    email: str
    name: str
    otp: str
    expiresAt: str


class LoggedOut(msgspec.Struct, kw_only=True, frozen=True):
    """One token (`jti`, valid until `exp`, epoch seconds) was logged out: it is refused everywhere."""

    id: int
    jti: str
    exp: int


# -- the revocation snapshot ------------------------------------------------------------------------

class UserRevocation(msgspec.Struct, kw_only=True, frozen=True):
    """What tokens of one user are still good, as of `asOf` (when this was last changed).

    `role` is the current role (None for a deleted user); a token claiming another is stale.
    """

    id: int
    minTokenVersion: int
    void: bool
    role: str | None
    asOf: str


class RevokedToken(msgspec.Struct, kw_only=True, frozen=True):
    jti: str
    userId: int
    exp: int


class RevocationSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    """Everything that makes a live token invalid, from the user service's database.

    Only users changed within the last token lifetime appear: older changes only affect
    tokens that have expired anyway. `revokedTokens` holds the unexpired logged-out tokens.
    """

    users: list[UserRevocation]
    revokedTokens: list[RevokedToken]
    takenAt: str


class GetRevocationSnapshot(Command, frozen=True):
    """Asked by every process at start (and periodically): revocations survive restarts."""

    idempotent = True
    reply_type = RevocationSnapshot


register_event(USER_CREATED, USER_EVENTS, UserData)
register_event(USER_UPDATED, USER_EVENTS, UserData)
register_event(USER_DELETED, USER_EVENTS, UserDeleted)
register_event(USER_PASSWORD_CHANGED, USER_EVENTS, PasswordChanged)
register_event(PASSWORD_RESET_REQUESTED, USER_EVENTS, PasswordResetRequested)
register_event(USER_LOGGED_OUT, USER_EVENTS, LoggedOut)
