"""HTTP routes of the user service: bodies validated here, passwords hashed off the actors."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from microcommerce.actors.cpu import run_cpu
from microcommerce.errors import Forbidden, Unauthorized
from microcommerce.http.app import SETTINGS, ask
from microcommerce.http.auth import (
    LOGOUT_PATH,
    TOKEN_ISSUER,
    Principal,
    authenticate,
    bearer_token,
    require_role,
)
from microcommerce.http.body import MAX_OFFSET, int_param, json_response, query_int, read_json
from microcommerce.http.openapi import Error, api
from microcommerce.services.user import domain
from microcommerce.services.user.messages import (
    ChangePassword,
    CreateUser,
    Credentials,
    DeleteUser,
    GetCredentials,
    GetCredentialsById,
    GetUser,
    ListUsers,
    RequestPasswordReset,
    ResetWithOtp,
    RevokeToken,
    UpdateUser,
    UserView,
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=255, extra_json_schema={"format": "email"})]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]


class SignupBody(msgspec.Struct, forbid_unknown_fields=False):
    name: Name
    email: Email
    password: Password


class LoginBody(msgspec.Struct):
    email: Email
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class CreateUserBody(SignupBody):
    role: str = "user"


class UpdateUserBody(msgspec.Struct):
    name: Name | None = None
    email: Email | None = None
    role: str | None = None
    accountStatus: str | None = None


class ForgotBody(msgspec.Struct):
    email: Email


class OtpResetBody(msgspec.Struct):
    email: Email
    otp: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")]
    newPassword: Password


class ResetBody(msgspec.Struct):
    oldPassword: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    newPassword: Password


class PageQuery(msgspec.Struct):
    limit: int | None = None
    offset: int | None = None


class LoginAnswer(msgspec.Struct):
    token: str
    user: UserView


class SessionAnswer(msgspec.Struct):
    user: UserView


class MessageAnswer(msgspec.Struct):
    message: str


class PasswordChanged(msgspec.Struct):
    message: str
    token: str


class UserList(msgspec.Struct):
    users: list[UserView]
    limit: int
    offset: int


class Deleted(msgspec.Struct):
    message: str
    id: int


FORGOT_MESSAGE = "If that email is registered, a reset code has been sent"


async def _hash(request: web.Request, password: str) -> str:
    return await run_cpu(domain.hash_password, password, request.app[SETTINGS].password_hash_cost)


def _principal(creds: Credentials) -> Principal:
    user = creds.user
    return Principal(id=user.id, role=user.role, email=user.email, name=user.name, tv=creds.tokenVersion)


@api(summary="Register a shopper account", body=SignupBody, responses={201: UserView, 409: Error})
async def signup(request: web.Request) -> web.Response:
    body = await read_json(request, SignupBody)
    email = domain.normalize_email(body.email)
    user = await ask(request, CreateUser(name=body.name.strip(), email=email,
                                         password_hash=await _hash(request, body.password)))
    return json_response(user, 201)


@api(summary="Exchange email and password for a bearer token", body=LoginBody,
     responses={200: LoginAnswer, 401: Error, 403: Error})
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginBody)
    creds: Credentials | None = await ask(request, GetCredentials(email=body.email.strip().lower()))
    stored = creds.passwordHash if creds else domain.DUMMY_HASH
    if not await run_cpu(domain.verify_password, body.password, stored) or creds is None:
        raise Unauthorized("Invalid email or password")
    if creds.user.accountStatus != "active":
        raise Forbidden("Account is blocked")
    token = request.app[TOKEN_ISSUER].issue(_principal(creds))
    return json_response({"token": token, "user": creds.user})


@api(summary="Log out: this token stops working everywhere", auth=True,
     responses={200: MessageAnswer})
async def logout(request: web.Request) -> web.Response:
    """Revoke the caller's token everywhere (durably). A token already revoked may log out again."""
    issuer = request.app[TOKEN_ISSUER]
    principal = issuer.identify(bearer_token(request))  # signed by us and not expired
    await ask(request, RevokeToken(user_id=principal.id, jti=principal.jti, exp=principal.exp))
    issuer.revocations.revoke_token(principal.jti, principal.exp)  # here at once; elsewhere by event
    return json_response({"message": "Logged out"})


@api(summary="The caller's account", auth=True, responses={200: SessionAnswer, 404: Error})
async def session(request: web.Request) -> web.Response:
    principal = authenticate(request)
    user = await ask(request, GetUser(id=principal.id))
    return json_response({"user": user})


@api(summary="Mail a password-reset code (same answer whether the email exists)", body=ForgotBody,
     responses={200: MessageAnswer})
async def forgot_password(request: web.Request) -> web.Response:
    body = await read_json(request, ForgotBody)
    email = domain.normalize_email(body.email)
    await ask(request, RequestPasswordReset(email=email))
    return json_response({"message": FORGOT_MESSAGE})


@api(summary="Set a new password with a mailed code", body=OtpResetBody,
     responses={200: MessageAnswer})
async def reset_with_otp(request: web.Request) -> web.Response:
    body = await read_json(request, OtpResetBody)
    email = domain.normalize_email(body.email)
    version = await ask(request, ResetWithOtp(email=email, otp=body.otp,
                                              password_hash=await _hash(request, body.newPassword)))
    request.app[TOKEN_ISSUER].revocations.raise_min_version(version.id, version.tokenVersion)
    return json_response({"message": "Password has been reset"})


@api(summary="Change the caller's password; answers a fresh token", auth=True, body=ResetBody,
     responses={200: PasswordChanged, 404: Error})
async def reset_password(request: web.Request) -> web.Response:
    principal = authenticate(request)
    body = await read_json(request, ResetBody)
    creds: Credentials = await ask(request, GetCredentialsById(id=principal.id))
    if not await run_cpu(domain.verify_password, body.oldPassword, creds.passwordHash):
        raise Unauthorized("Old password is incorrect")
    version = await ask(request, ChangePassword(id=principal.id,
                                                password_hash=await _hash(request, body.newPassword)))
    issuer = request.app[TOKEN_ISSUER]
    # This process stops accepting old tokens at once; others learn it from USER_PASSWORD_CHANGED.
    issuer.revocations.raise_min_version(principal.id, version.tokenVersion)
    fresh = Principal(id=principal.id, role=creds.user.role, email=creds.user.email,
                      name=creds.user.name, tv=version.tokenVersion)
    return json_response({"message": "Password updated", "token": issuer.issue(fresh)})


@api(summary="Every user, paged", auth="admin", query=PageQuery, responses={200: UserList})
async def list_users(request: web.Request) -> web.Response:
    require_role(request, "admin")
    limit = query_int(request, "limit", 100, high=500)
    offset = query_int(request, "offset", 0, low=0, high=MAX_OFFSET)
    users: list[UserView] = await ask(request, ListUsers(limit=limit, offset=offset))
    return json_response({"users": users, "limit": limit, "offset": offset})


@api(summary="Create a user with any role", auth="admin", body=CreateUserBody,
     responses={201: UserView, 409: Error})
async def create_user(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = await read_json(request, CreateUserBody)
    user = await ask(request, CreateUser(name=body.name.strip(), email=domain.normalize_email(body.email),
                                         password_hash=await _hash(request, body.password),
                                         role=domain.check_role(body.role)))
    return json_response(user, 201)


@api(summary="One user", auth=True, responses={200: UserView})
async def get_user(request: web.Request) -> web.Response:
    authenticate(request)
    user = await ask(request, GetUser(id=int_param(request.match_info["id"], "id")))
    return json_response(user)


@api(summary="Change a user (the owner; role and status: an admin)", auth=True, body=UpdateUserBody,
     responses={200: UserView, 403: Error, 409: Error})
async def update_user(request: web.Request) -> web.Response:
    principal = authenticate(request)
    user_id = int_param(request.match_info["id"], "id")
    body = await read_json(request, UpdateUserBody)
    user = await ask(request, UpdateUser(
        id=user_id, actor_id=principal.id, actor_role=principal.role,
        name=body.name.strip() if body.name is not None else None,
        email=domain.normalize_email(body.email) if body.email is not None else None,
        role=domain.check_role(body.role) if body.role is not None else None,
        account_status=domain.check_status(body.accountStatus) if body.accountStatus is not None else None,
    ))
    revocations = request.app[TOKEN_ISSUER].revocations
    if user.accountStatus != "active":
        revocations.set_void(user.id, True)
    revocations.set_role(user.id, user.role)  # at once here; other processes via USER_UPDATED
    return json_response(user)


@api(summary="Delete a user (the owner or an admin)", auth=True, responses={200: Deleted, 403: Error})
async def delete_user(request: web.Request) -> web.Response:
    principal = authenticate(request)
    user_id = int_param(request.match_info["id"], "id")
    await ask(request, DeleteUser(id=user_id, actor_id=principal.id, actor_role=principal.role))
    request.app[TOKEN_ISSUER].revocations.set_void(user_id, True)
    return json_response({"message": "User deleted", "id": user_id})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/auth/signup", signup)
    app.router.add_post("/auth/login", login)
    app.router.add_post(LOGOUT_PATH, logout)
    app.router.add_get("/auth/session", session)
    app.router.add_post("/auth/forgot-password", forgot_password)
    app.router.add_post("/auth/reset-password/otp", reset_with_otp)
    app.router.add_post("/auth/reset-password", reset_password)
    app.router.add_get("/auth/users", list_users)
    app.router.add_post("/users", create_user)
    app.router.add_get("/users/{id}", get_user)
    app.router.add_put("/users/{id}", update_user)
    app.router.add_delete("/users/{id}", delete_user)
