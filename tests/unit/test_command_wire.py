"""The wire format of requests between processes: command registry, error mapping, sessions."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings

import msgspec
import pytest

from microcommerce import errors
from microcommerce.config import load_settings
from microcommerce.contracts import registry
from microcommerce.contracts.commands import Command
from microcommerce.contracts.inventory import ReserveLine, ReserveStock
from microcommerce.errors import BadRequest
from microcommerce.http.commands import SERVICE_ERRORS, error_answer, error_from_answer
from microcommerce.http.requester import HttpRequester
from microcommerce.services.cart.messages import AddItem


def test_every_contract_command_is_known_by_its_tag() -> None:
    types = registry.command_types()
    assert types["GetProduct"].__module__ == "microcommerce.contracts.product"
    assert all(issubclass(t, Command) and t.__name__ == tag for tag, t in types.items())
    assert "Command" not in types
    # A service's own commands never travel: they are not in the registry.
    assert "AddItem" not in types
    assert not registry.is_contract_command(AddItem(user_id=1, product_id=1, quantity=1))


def test_commands_round_trip_and_bad_ones_are_400() -> None:
    command = ReserveStock(order_id=5, lines=[ReserveLine(1, 2)], expires_at=None)
    raw = registry.encode_command(command)
    assert msgspec.json.decode(raw)["type"] == "ReserveStock"
    assert registry.decode_command(raw) == command
    with pytest.raises(BadRequest, match="Unknown command 'Nope'"):
        registry.decode_command(b'{"type": "Nope"}')
    for raw in (b"{", b"[]", b"{}", b'{"type": "ReserveStock", "order_id": "x", "lines": []}'):
        with pytest.raises(BadRequest):
            registry.decode_command(raw)
    with pytest.raises(BadRequest):
        registry.command_type("AddItem")


def test_idempotent_marks() -> None:
    types = registry.command_types()
    assert not types["SetStockTotal"].idempotent
    assert all(t.idempotent for tag, t in types.items() if tag.startswith(("Get", "List")))
    assert types["MarkOrderPaid"].idempotent and types["ReserveStock"].idempotent


@pytest.mark.parametrize("name", sorted(SERVICE_ERRORS))
def test_each_error_comes_back_as_the_class_that_was_raised(name: str) -> None:
    cls = SERVICE_ERRORS[name]
    raised = cls("it went wrong")
    answer = error_answer(raised)
    body = msgspec.json.decode(answer.body)
    assert body["error"] == name
    rebuilt = error_from_answer(answer.status, body, answer.headers.get("Retry-After"))
    assert type(rebuilt) is cls and rebuilt.message == "it went wrong" and rebuilt.status == raised.status
    assert rebuilt.headers == raised.headers


def test_answers_without_an_error_class_map_by_status() -> None:
    assert type(error_from_answer(403, {"message": "Internal route"}, None)) is errors.Forbidden
    assert type(error_from_answer(503, None, "7")) is errors.ServiceUnavailable
    assert type(error_from_answer(502, "<html>", None)) is errors.InternalError
    # A class name that does not match the status is not trusted.
    assert type(error_from_answer(404, {"message": "x", "error": "Conflict"}, None)) is errors.NotFound


async def test_sessions_of_loops_that_are_gone_are_dropped_quietly() -> None:
    requester = HttpRequester(load_settings({"ephemeral": True}, env={}))

    async def open_session() -> None:
        requester._session()  # noqa: SLF001 - as a request on this loop would

    thread = threading.Thread(target=asyncio.run, args=(open_session(),))
    thread.start()
    thread.join()
    requester._session()  # noqa: SLF001 - and one on this loop
    assert requester.open_sessions == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await requester.close_all()
        gc.collect()
    assert requester.open_sessions == 0
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
