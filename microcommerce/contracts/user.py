"""User service contract: events on `user-events`."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.events import USER_EVENTS, register_event

USER_CREATED = "USER_CREATED"
USER_UPDATED = "USER_UPDATED"
USER_DELETED = "USER_DELETED"
USER_PASSWORD_CHANGED = "USER_PASSWORD_CHANGED"
PASSWORD_RESET_REQUESTED = "PASSWORD_RESET_REQUESTED"


class UserData(msgspec.Struct, kw_only=True, frozen=True):
    """Payload of USER_CREATED and USER_UPDATED (the seed's shape)."""

    id: int
    name: str
    email: str
    role: str
    accountStatus: str


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


register_event(USER_CREATED, USER_EVENTS, UserData)
register_event(USER_UPDATED, USER_EVENTS, UserData)
register_event(USER_DELETED, USER_EVENTS, UserDeleted)
register_event(USER_PASSWORD_CHANGED, USER_EVENTS, PasswordChanged)
register_event(PASSWORD_RESET_REQUESTED, USER_EVENTS, PasswordResetRequested)
