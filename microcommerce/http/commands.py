"""`POST /internal/commands`: any contract command, asked of this service by another process.

The wire format of the HTTP request adapter (docs/requests.md): the body is the tagged command
(`{"type": "GetProduct", "id": 7}`), `X-Deadline-Ms` says how long the caller still waits, the
answer is the msgspec-encoded reply (200) or `{"message", "error": <ServiceError class>}` with
the error's status. Both ends of the format live here, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec
from aiohttp import web

from microcommerce import errors
from microcommerce.contracts import registry
from microcommerce.errors import BadRequest, NotFound, ServiceError
from microcommerce.http.app import SETTINGS, SYSTEM
from microcommerce.http.body import json_response
from microcommerce.http.openapi import Error, api

COMMANDS_PATH = "/internal/commands"
DEADLINE_HEADER = "X-Deadline-Ms"
MAX_DEADLINE_MS = 10 * 60 * 1000


class CommandError(msgspec.Struct):
    """An error answer of the endpoint: the caller raises the same ServiceError class."""

    message: str
    error: str
    details: Any = None


def error_answer(err: ServiceError) -> web.Response:
    body = {**err.to_body(), "error": type(err).__name__}
    return json_response(body, err.status, err.headers)


def _service_errors() -> dict[str, type[ServiceError]]:
    found: dict[str, type[ServiceError]] = {}
    pending = [ServiceError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__:
            found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


SERVICE_ERRORS = _service_errors()


def error_from_answer(status: int, body: Any, retry_after: str | None) -> ServiceError:
    """Rebuild the ServiceError a remote handler raised from its answer (status, JSON body).

    The class named in `error` when it is one of ours with that status; otherwise the class of
    the status (a 403 of the internal guard, a 413, a proxy's 502...).
    """
    body = body if isinstance(body, dict) else {}
    message = body.get("message")
    if not isinstance(message, str) or not message:
        message = f"Internal call failed with status {status}"
    cls = SERVICE_ERRORS.get(body.get("error")) if isinstance(body.get("error"), str) else None
    if cls is None or cls.status != status:
        return errors.error_from_status(status, message, body.get("details"))
    if cls in (errors.ServiceUnavailable, errors.Overloaded):
        return cls(message, retry_after_s=_seconds(retry_after))
    return cls(message, details=body.get("details"))


def _seconds(value: str | None) -> int:
    try:
        return max(1, int(value or "1"))
    except ValueError:
        return 1


def deadline_s(request: web.Request) -> float | None:
    """How long the caller still waits (`X-Deadline-Ms`), or None when it did not say."""
    raw = request.headers.get(DEADLINE_HEADER)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_DEADLINE_MS:
        raise BadRequest(f"{DEADLINE_HEADER} must be milliseconds between 1 and {MAX_DEADLINE_MS}")
    return int(raw) / 1000.0


@api(summary="Answer a contract command sent by another service (the HTTP request adapter)",
     internal=True, rate_limited=False,
     body=Union[tuple(registry.command_types().values())],  # noqa: UP007 - built at runtime
     responses={200: None, 404: CommandError, 409: CommandError, 503: CommandError, 504: CommandError,
                400: CommandError, 403: Error})
async def internal_command(request: web.Request) -> web.Response:
    system = request.app[SYSTEM]
    try:
        command = registry.decode_command(await request.read())
        if type(command) not in system.logic_cls.command_handlers:
            raise NotFound(f"The {system.name} service does not answer {type(command).__name__}; "
                           "ask the service that owns it")
        timeout = request.app[SETTINGS].timeout_of(system.name)
        deadline = deadline_s(request)
        reply = await system.ask(command, timeout=timeout if deadline is None else min(deadline, timeout))
    except ServiceError as err:
        return error_answer(err)
    return web.Response(body=msgspec.json.encode(reply), content_type="application/json")


def setup_command_routes(app: web.Application) -> None:
    app.router.add_post(COMMANDS_PATH, internal_command)
