"""Commands the user service's actors handle, and the views they answer with."""

from __future__ import annotations

import msgspec

from microcommerce.contracts.commands import Command


class UserView(msgspec.Struct, kw_only=True):
    id: int
    name: str
    email: str
    role: str
    accountStatus: str
    createdAt: str
    updatedAt: str


class Credentials(msgspec.Struct, kw_only=True):
    user: UserView
    passwordHash: str
    tokenVersion: int


class CreateUser(Command, frozen=True):
    key_field = "email"
    name: str
    email: str
    password_hash: str
    role: str = "user"


class EnsureAdmin(Command, frozen=True):
    key_field = "email"
    name: str
    email: str
    password_hash: str


class GetCredentials(Command, frozen=True):
    key_field = "email"
    email: str


class GetCredentialsById(Command, frozen=True):
    key_field = "id"
    id: int


class GetUser(Command, frozen=True):
    key_field = "id"
    id: int


class ListUsers(Command, frozen=True):
    limit: int = 100
    offset: int = 0


class UpdateUser(Command, frozen=True):
    key_field = "id"
    id: int
    actor_id: int
    actor_role: str
    name: str | None = None
    email: str | None = None
    role: str | None = None
    account_status: str | None = None


class DeleteUser(Command, frozen=True):
    key_field = "id"
    id: int
    actor_id: int
    actor_role: str


class ChangePassword(Command, frozen=True):
    key_field = "id"
    id: int
    password_hash: str


class RequestPasswordReset(Command, frozen=True):
    key_field = "email"
    email: str


class ResetWithOtp(Command, frozen=True):
    key_field = "email"
    email: str
    otp: str
    password_hash: str


class RevokeToken(Command, frozen=True):
    """Logout: the token `jti` of user `user_id`, valid until `exp` (epoch seconds), is revoked."""

    key_field = "user_id"
    user_id: int
    jti: str
    exp: int


class TokenVersion(msgspec.Struct):
    id: int
    tokenVersion: int
