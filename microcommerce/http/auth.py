"""JWT authentication, role checks and token revocation.

Tokens carry a token version (`tv`). A password change bumps the version and announces it
(`USER_PASSWORD_CHANGED`); every process keeps the minimum valid version per user from those
events, so tokens issued before the change stop working in every service. Likewise a token
whose role is no longer the user's (`USER_UPDATED`) stops working.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import jwt
import msgspec
from aiohttp import web

from microcommerce.contracts.events import utc_now_iso
from microcommerce.errors import Forbidden, Unauthorized

PRINCIPAL_KEY = web.RequestKey("principal", object)


class Principal(msgspec.Struct, frozen=True):
    id: int
    role: str
    email: str = ""
    name: str = ""
    tv: int = 0

    def is_admin(self) -> bool:
        return self.role == "admin"


class Revocations:
    """Per-user minimum token version, and users whose tokens are all void (deleted/blocked)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._min_version: dict[int, int] = {}
        self._void: set[int] = set()
        self._roles: dict[int, str] = {}  # current role of users whose role changed
        self._as_of: dict[int, str] = {}  # when the status/role we hold was true

    def raise_min_version(self, user_id: int, version: int) -> None:
        with self._lock:
            self._min_version[user_id] = max(self._min_version.get(user_id, 0), version)

    def set_void(self, user_id: int, void: bool, *, as_of: str | None = None) -> None:
        """`as_of` (the event's occurredAt) lets a redelivered older event be ignored."""
        with self._lock:
            if self._fresh(user_id, as_of):
                (self._void.add if void else self._void.discard)(user_id)

    def set_role(self, user_id: int, role: str, *, as_of: str | None = None) -> None:
        """A token claiming another role than the user's current one is stale (e.g. a demoted admin)."""
        with self._lock:
            if self._fresh(user_id, as_of):
                self._roles[user_id] = role

    def _fresh(self, user_id: int, as_of: str | None) -> bool:
        stamp = as_of or utc_now_iso()
        if stamp < self._as_of.get(user_id, ""):
            return False
        self._as_of[user_id] = stamp
        return True

    def accepts(self, principal: Principal) -> bool:
        return (principal.id not in self._void
                and principal.tv >= self._min_version.get(principal.id, 0)
                and self._roles.get(principal.id, principal.role) == principal.role)


class TokenIssuer:
    #: Verified tokens remembered per process: a token is checked by the gateway and again by
    #: the service behind it, and clients reuse one token for many requests.
    CACHE_SIZE = 10_000

    def __init__(self, secret: str, ttl_s: int, revocations: Revocations) -> None:
        self.secret = secret
        self.ttl_s = ttl_s
        self.revocations = revocations
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, principal: Principal) -> str:
        now = int(time.time())
        claims = {"sub": str(principal.id), "role": principal.role, "email": principal.email,
                  "name": principal.name, "tv": principal.tv, "iat": now, "exp": now + self.ttl_s}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The token's principal, or 401. Revocation is checked on every call, cached or not."""
        principal = self._cached(token) or self._decode(token)
        if not self.revocations.accepts(principal):
            raise Unauthorized("Token revoked")
        return principal

    def _cached(self, token: str) -> Principal | None:
        with self._lock:
            hit = self._verified.get(token)
            if hit is None:
                return None
            principal, expires_at = hit
            if time.time() >= expires_at:
                del self._verified[token]
                raise Unauthorized("Token expired")
            self._verified.move_to_end(token)
            return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims: dict[str, Any] = jwt.decode(token, self.secret, algorithms=["HS256"],
                                                options={"require": ["sub", "exp"]})
            principal = Principal(id=int(claims["sub"]), role=str(claims.get("role", "user")),
                                  email=str(claims.get("email", "")), name=str(claims.get("name", "")),
                                  tv=int(claims.get("tv", 0)))
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthorized("Invalid token") from None
        with self._lock:
            self._verified[token] = (principal, int(claims["exp"]))
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal


TOKEN_ISSUER = web.AppKey("token_issuer", TokenIssuer)


def authenticate(request: web.Request) -> Principal:
    """The caller's identity from `Authorization: Bearer <jwt>`, else 401."""
    cached = request.get(PRINCIPAL_KEY)
    if cached is not None:
        return cached
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authentication required")
    principal = request.app[TOKEN_ISSUER].verify(token.strip())
    request[PRINCIPAL_KEY] = principal
    return principal


def require_role(request: web.Request, *roles: str) -> Principal:
    """Authenticate and insist on one of `roles`, else 403."""
    principal = authenticate(request)
    if roles and principal.role not in roles:
        raise Forbidden(f"Requires role: {' or '.join(roles)}")
    return principal


def require_owner_or_admin(request: web.Request, owner_id: int) -> Principal:
    principal = authenticate(request)
    if principal.id != owner_id and not principal.is_admin():
        raise Forbidden("Only the owner or an admin may do this")
    return principal
