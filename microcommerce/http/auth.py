"""JWT authentication, role checks and token revocation.

Tokens carry a token version (`tv`) and an id (`jti`). The user service's database is the
source of truth for what makes a token invalid: a password change or a change of role or
account status bumps the user's token version, a deletion voids the user, a logout revokes
one token id. Every process keeps that state in `Revocations`, loaded at start from the user
service's snapshot (`http/revocation_sync.py`) and kept current from user events, so a token
stops working in every service at once and stays refused after any restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import jwt
import msgspec
from aiohttp import web

from microcommerce import environment
from microcommerce.contracts.events import utc_now_iso
from microcommerce.contracts.user import RevocationSnapshot
from microcommerce.errors import Forbidden, ServiceUnavailable, Unauthorized

PRINCIPAL_KEY = web.RequestKey("principal", object)
LOGOUT_PATH = "/auth/logout"


class Principal(msgspec.Struct, frozen=True):
    """Who calls. `jti` and `exp` identify the token it came from (what a logout revokes)."""

    id: int
    role: str
    email: str = ""
    name: str = ""
    tv: int = 0
    jti: str = ""
    exp: int = 0

    def is_admin(self) -> bool:
        return self.role == "admin"


class Revocations:
    """Per-user minimum token version, void users (deleted/blocked), current roles, revoked token ids.

    Merge rules, so that the order in which a snapshot and events arrive never matters:
    token versions only rise; a status or role is replaced only by one at least as recent
    (`as_of`); revoked token ids are kept until their token expires anyway.

    Until `loaded` (the first snapshot applied), tokens cannot be checked: `TokenIssuer`
    answers 503 rather than accept a token that may have been revoked before this process
    started. A Revocations made without a snapshot source is loaded from the start.
    """

    #: How often at most revoked ids of expired tokens are dropped (bounded memory).
    PURGE_INTERVAL_S = 60.0

    def __init__(self, *, loaded: bool = True) -> None:
        self._lock = threading.Lock()
        self._min_version: dict[int, int] = {}
        self._void: set[int] = set()
        self._roles: dict[int, str] = {}  # current role of users whose role changed
        self._as_of: dict[int, str] = {}  # when the status/role we hold was true
        self._revoked_tokens: dict[str, int] = {}  # jti -> exp (epoch seconds)
        self._next_purge = 0.0
        self.loaded = loaded

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

    def revoke_token(self, jti: str, exp: int) -> None:
        """A logged-out token; remembered until it would have expired anyway."""
        now = environment.now()
        with self._lock:
            if exp > now:
                self._revoked_tokens[jti] = max(exp, self._revoked_tokens.get(jti, 0))
            if now >= self._next_purge:
                self._purge_expired(now)

    def apply_snapshot(self, snapshot: RevocationSnapshot) -> None:
        """Merge the user service's state (never undoes a newer event seen meanwhile); then loaded."""
        for user in snapshot.users:
            self.raise_min_version(user.id, user.minTokenVersion)
            with self._lock:
                if self._fresh(user.id, user.asOf):
                    (self._void.add if user.void else self._void.discard)(user.id)
                    if user.role is not None:
                        self._roles[user.id] = user.role
        for token in snapshot.revokedTokens:
            self.revoke_token(token.jti, token.exp)
        with self._lock:
            self._purge_expired(environment.now())
        self.loaded = True

    def revoked_token_count(self) -> int:
        with self._lock:
            return len(self._revoked_tokens)

    def _purge_expired(self, now: float) -> None:
        self._revoked_tokens = {jti: exp for jti, exp in self._revoked_tokens.items() if exp > now}
        self._next_purge = now + self.PURGE_INTERVAL_S

    def _fresh(self, user_id: int, as_of: str | None) -> bool:
        stamp = as_of or utc_now_iso()
        if stamp < self._as_of.get(user_id, ""):
            return False
        self._as_of[user_id] = stamp
        return True

    def accepts(self, principal: Principal) -> bool:
        return (principal.id not in self._void
                and principal.tv >= self._min_version.get(principal.id, 0)
                and self._roles.get(principal.id, principal.role) == principal.role
                and principal.jti not in self._revoked_tokens)


# PyJWT would check these claims against the wall clock; `_check_times` does against ours.
_OUR_CLOCK = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}


def _check_times(claims: dict[str, Any], now: float) -> None:
    """PyJWT's checks (no leeway), in its order, against the environment's clock: a token
    issued or valid only in the future is invalid, one whose `exp` has come is expired."""
    for claim in ("iat", "nbf"):
        if claim in claims and int(claims[claim]) > now:
            raise jwt.ImmatureSignatureError(f"The token is not yet valid ({claim})")
    if int(claims["exp"]) <= now:
        raise jwt.ExpiredSignatureError("Signature has expired")


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
        """A signed token with a fresh random id (`jti`), so that it alone can be logged out."""
        now = int(environment.now())
        claims = {"sub": str(principal.id), "role": principal.role, "email": principal.email,
                  "name": principal.name, "tv": principal.tv, "jti": environment.token_urlsafe(16),
                  "iat": now, "exp": now + self.ttl_s}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The token's principal, or 401 (503 while revocations are unknown). Revocation is
        checked on every call, cached or not."""
        principal = self.identify(token)
        if not self.revocations.loaded:
            raise ServiceUnavailable("Token revocations are still loading, retry shortly", retry_after_s=1)
        if not self.revocations.accepts(principal):
            raise Unauthorized("Token revoked")
        return principal

    def identify(self, token: str) -> Principal:
        """The principal of a token we signed and that has not expired, revoked or not (for logout)."""
        return self._cached(token) or self._decode(token)

    def _cached(self, token: str) -> Principal | None:
        with self._lock:
            hit = self._verified.get(token)
            if hit is None:
                return None
            principal, expires_at = hit
            if environment.now() >= expires_at:
                del self._verified[token]
                raise Unauthorized("Token expired")
            self._verified.move_to_end(token)
            return principal

    def _decode(self, token: str) -> Principal:
        try:
            # A token without an id could never be logged out: not accepted (none were issued).
            claims: dict[str, Any] = jwt.decode(token, self.secret, algorithms=["HS256"],
                                                options={"require": ["sub", "exp", "jti"], **_OUR_CLOCK})
            _check_times(claims, environment.now())
            jti = claims["jti"]
            if not isinstance(jti, str) or not jti:
                raise ValueError("jti")
            principal = Principal(id=int(claims["sub"]), role=str(claims.get("role", "user")),
                                  email=str(claims.get("email", "")), name=str(claims.get("name", "")),
                                  tv=int(claims.get("tv", 0)), jti=jti, exp=int(claims["exp"]))
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Token expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError, OverflowError):
            raise Unauthorized("Invalid token") from None
        with self._lock:
            self._verified[token] = (principal, int(claims["exp"]))
            if len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return principal


TOKEN_ISSUER = web.AppKey("token_issuer", TokenIssuer)


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <jwt>`, else 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authentication required")
    return token.strip()


def authenticate(request: web.Request) -> Principal:
    """The caller's identity from `Authorization: Bearer <jwt>`, else 401."""
    cached = request.get(PRINCIPAL_KEY)
    if cached is not None:
        return cached
    principal = request.app[TOKEN_ISSUER].verify(bearer_token(request))
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
