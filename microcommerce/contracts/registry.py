"""Every contract, imported: the event registry knows all event types (decoding needs it), and
the cross-service commands are known by their tag, so one endpoint can decode any of them.

Only commands defined in `microcommerce.contracts.*` travel between processes; a service's own
commands (its `messages.py`) never leave it.
"""

from __future__ import annotations

import functools
from typing import Any, Union

import msgspec

from microcommerce.contracts import audit, cart, inventory, order, payment, product, user
from microcommerce.contracts.commands import Command
from microcommerce.errors import BadRequest

CONTRACT_MODULES = (audit, cart, inventory, order, payment, product, user)


class _Tagged(msgspec.Struct):
    type: Any = None


@functools.cache
def command_types() -> dict[str, type[Command]]:
    """Tag (the class name) → command type, for every command the contracts define."""
    found: dict[str, type[Command]] = {}
    for module in CONTRACT_MODULES:
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Command) and value is not Command
                    and value.__module__ == module.__name__):
                found[value.__struct_config__.tag] = value
    return found


def command_type(tag: str) -> type[Command]:
    try:
        return command_types()[tag]
    except KeyError:
        raise BadRequest(f"Unknown command {tag!r}") from None


def is_contract_command(command: Any) -> bool:
    return command_types().get(type(command).__name__) is type(command)


@functools.cache
def _decoder() -> msgspec.json.Decoder:
    return msgspec.json.Decoder(Union[tuple(command_types().values())])  # noqa: UP007 - built at runtime


def encode_command(command: Command) -> bytes:
    """JSON with the tag in `type`: `{"type": "GetProduct", "id": 7}`."""
    return msgspec.json.encode(command)


def decode_command(raw: bytes) -> Command:
    """A contract command from its JSON; an unknown tag or a malformed body is a BadRequest."""
    try:
        return _decoder().decode(raw)
    except msgspec.DecodeError as exc:
        if not isinstance(exc, msgspec.ValidationError):
            raise BadRequest("Malformed JSON body") from None
        tag = _tag_of(raw)
        if isinstance(tag, str) and tag not in command_types():
            raise BadRequest(f"Unknown command {tag!r}") from None
        raise BadRequest(f"Invalid command: {exc}") from None


def _tag_of(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw, type=_Tagged).type
    except msgspec.DecodeError:
        return None
