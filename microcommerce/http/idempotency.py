"""The `Idempotency-Key` header of POST routes that create something (orders, checkouts, charges).

A client that is unsure whether a request went through sends it again with the same key; the
service then answers the first request's outcome again instead of doing the work twice. The
request's fingerprint (method, path and canonical JSON body) tells such a retry from a different
request that reuses a key, which is refused with 422, as payment APIs do.
"""

from __future__ import annotations

import hashlib
import re

import msgspec
from aiohttp import web

from microcommerce.errors import BadRequest, UnprocessableEntity

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
_VALID_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_LENGTH}}}")


class IdempotencyKey(msgspec.Struct, frozen=True):
    key: str
    fingerprint: str  # sha256 hex of the request the key was first used with


def check_key(raw: str) -> str:
    if not _VALID_KEY.fullmatch(raw):
        raise BadRequest(f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters")
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Same method, path and JSON body (whatever its key order and spacing) → same fingerprint."""
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body.strip() else b""
    except msgspec.DecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def idempotency_key(request: web.Request) -> IdempotencyKey | None:
    """The request's key and fingerprint; None without the header; 400 for a malformed key."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = check_key(raw)
    return IdempotencyKey(key=key, fingerprint=fingerprint(request.method, request.path, await request.read()))


def check_same_request(stored_fingerprint: str, key: IdempotencyKey) -> None:
    if stored_fingerprint != key.fingerprint:
        raise UnprocessableEntity(f"This {HEADER} was already used with a different request; "
                                  "use a new key for a new request")
