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
# Bounds every route applies to numbers from clients (ids, paging, quantities), so a hostile
# value is a 400 at the edge instead of an overflow deep in the database driver.
MAX_ID = INT64_MAX
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100
MAX_OFFSET = 100_000_000
MAX_QUANTITY = 1_000_000_000  # fits the 32-bit INTEGER quantity columns with room for sums
# msgspec decodes nested JSON recursively; past a few hundred levels it raises RecursionError.
# No body of ours nests deeper than a handful of levels.
MAX_JSON_DEPTH = 32
# A JSON string; an unterminated one runs to the end (one pass, never a rescan).
_JSON_STRING = re.compile(rb'"(?:[^"\\]+|\\.)*"?')
_TO_PARENS = bytes.maketrans(b"[]{}", b"()()")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INTEGER = re.compile(r"^[+-]?\d{1,30}$")


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
    _check_depth(raw)
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Invalid request body: {_describe(exc)}") from None
    except msgspec.DecodeError:
        raise BadRequest("Malformed JSON body") from None
    except RecursionError:  # a safety net: _check_depth should have refused it
        raise BadRequest(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _MAYBE_HUGE_INT.search(raw) and not _fits_int64(msgspec.to_builtins(value)):
        raise BadRequest("Invalid request body: integer out of range")
    return value


def _check_depth(raw: bytes) -> None:
    """400 when arrays/objects nest deeper than MAX_JSON_DEPTH; linear, at C speed."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return  # too few brackets to nest that deep: the common case costs two counts
    # Brackets outside strings, as "(" and ")"; each pass removes the innermost level.
    nesting = _JSON_STRING.sub(b"", raw).translate(_TO_PARENS, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        unwound = nesting.replace(b"()", b"")
        if unwound == nesting:
            return  # done (anything left is malformed: the decoder will say so)
        nesting = unwound
    if b"()" in nesting:
        raise BadRequest(f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")


def _fits_int64(value: Any) -> bool:
    pending = [value]  # iterative: a deep body must not blow the stack here either
    while pending:
        item = pending.pop()
        if isinstance(item, int) and not -INT64_MAX - 1 <= item <= INT64_MAX:
            return False
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return True


async def read_json(request: web.Request, kind: type[T]) -> T:
    return decode_as(await request.read(), kind)


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.quantity`": keep it, drop the backticks.
    text = str(exc).replace("`", "")
    return text.replace(" - at $.", " at ").replace("$.", "")


def int_param(value: str | None, name: str, *, low: int = 1, high: int = MAX_ID) -> int:
    """An integer from a path or query parameter within low..high (an id by default), else 400."""
    if low == 1 and high == MAX_ID:
        problem = f"{name} must be a positive integer"
    else:
        problem = f"{name} must be an integer between {low} and {high}"
    if value is None or not _INTEGER.match(value.strip()):
        raise BadRequest(problem)
    number = int(value)
    if not low <= number <= high:
        raise BadRequest(problem)
    return number


def query_int(request: web.Request, name: str, default: T, *, low: int = 1, high: int = MAX_ID) -> int | T:
    """An optional integer query parameter within low..high; absent or empty gives `default`."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    return int_param(raw, name, low=low, high=high)


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
