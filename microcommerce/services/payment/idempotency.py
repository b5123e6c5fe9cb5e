"""The `Idempotency-Key` of a charge: header rules, what identifies a request, stored answers.

Same key from the same user → the same answer (status and body) and one effect; the same key
with another request (another order, provider, token, method or metadata) → 422.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from microcommerce.errors import BadRequest, ServiceError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_PRINTABLE_ASCII = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
_encoder = msgspec.json.Encoder(order="sorted")  # one spelling per request, whatever the key order

KEY_REUSED_STATUS = 422
KEY_REUSED_MESSAGE = f"{HEADER} was already used with a different request"


def parse_key(raw: str | None) -> str | None:
    """None without the header; the key when it is 1..255 printable ASCII characters; else 400."""
    if raw is None:
        return None
    if not _PRINTABLE_ASCII.fullmatch(raw):
        raise BadRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return raw


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def fingerprint(request: dict[str, Any]) -> str:
    """SHA-256 of the request's meaning (its fields, sorted), not of its bytes."""
    return hashlib.sha256(_encoder.encode(request)).hexdigest()


def error_body(err: ServiceError) -> bytes:
    """The JSON an error is shown as (what the HTTP error middleware would render)."""
    return msgspec.json.encode(err.to_body())


def stored_answer(err: ServiceError) -> bool:
    """Worth replaying under the key: a business answer, not a 'try again later'."""
    return err.status < 500
