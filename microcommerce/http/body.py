"""JSON in and out with msgspec: typed bodies validated at the edge, one encoder per process."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from microcommerce.errors import BadRequest

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}
# Databases keep integers in 64 bits: a bigger one would crash the handler that stores it.
INT64_MAX = 2**63 - 1
_MAYBE_HUGE_INT = re.compile(rb"\d{19}")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_encoder.encode(payload), status=status, headers=headers,
                        content_type="application/json")


def encode(payload: Any) -> bytes:
    return _encoder.encode(payload)


def decode_as(raw: bytes, kind: type[T]) -> T:
    """Decode JSON into `kind`; malformed JSON or a wrong field type is a 400 naming the problem."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    if not raw.strip():
        raise BadRequest("Request body is required (JSON)")
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid request body: {_describe(exc)}") from None
    except msgspec.DecodeError:
        raise BadRequest("Malformed JSON body") from None
    if _MAYBE_HUGE_INT.search(raw) and not _fits_int64(msgspec.to_builtins(value)):
        raise BadRequest("Invalid request body: integer out of range")
    return value


def _fits_int64(value: Any) -> bool:
    if isinstance(value, int):
        return -INT64_MAX - 1 <= value <= INT64_MAX
    if isinstance(value, dict):
        return all(_fits_int64(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_fits_int64(v) for v in value)
    return True


async def read_json(request: web.Request, kind: type[T]) -> T:
    return decode_as(await request.read(), kind)


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.quantity`": keep it, drop the backticks.
    text = str(exc).replace("`", "")
    return text.replace(" - at $.", " at ").replace("$.", "")


def int_param(value: str, name: str) -> int:
    """A positive integer from a path or query parameter, else 400."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a positive integer") from None
    if not 0 < number <= INT64_MAX:
        raise BadRequest(f"{name} must be a positive integer")
    return number


def query_value(request: web.Request, name: str, kind: type[T], default: T) -> T:
    """A typed query parameter (int, float, bool, str) or 400 naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    problem = f"Query parameter {name} must be {getattr(kind, '__name__', kind)}"
    try:
        value = msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError:
        raise BadRequest(problem) from None
    if not _fits_int64(value):
        raise BadRequest(problem)
    return value
