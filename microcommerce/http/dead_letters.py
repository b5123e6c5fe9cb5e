"""Admin routes over a service's dead-letter queue: see what was parked and why, redrive it.

`GET /admin/dead-letters?topic=&status=&limit=` and `POST /admin/dead-letters/redrive`
{ids: [..]} or {all: true} (optionally with topic); both admin only, on every service's port.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from microcommerce.actors import dlq
from microcommerce.errors import BadRequest
from microcommerce.http.app import ask
from microcommerce.http.auth import require_role
from microcommerce.http.body import json_response, query_value, read_json
from microcommerce.http.openapi import api

Topic = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
LetterId = Annotated[int, msgspec.Meta(gt=0, le=2**53)]


class RedriveBody(msgspec.Struct, forbid_unknown_fields=True):
    ids: Annotated[list[LetterId], msgspec.Meta(max_length=1000)] | None = None
    all: bool = False
    topic: Topic | None = None


class DeadLetterQuery(msgspec.Struct):
    topic: Topic | None = None
    status: Literal["parked", "redrive-requested", "redriven"] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None


class DeadLetterList(msgspec.Struct):
    items: list[dlq.DeadLetter]


class RedriveAnswer(msgspec.Struct):
    requested: int


@api(summary="Events this service's consumers parked after EVENT_MAX_ATTEMPTS failures", auth="admin",
     query=DeadLetterQuery, responses={200: DeadLetterList})
async def list_dead_letters(request: web.Request) -> web.Response:
    require_role(request, "admin")
    status = request.query.get("status")
    if status is not None and status not in dlq.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(dlq.STATUSES)}")
    limit = query_value(request, "limit", int, 100)
    if not 1 <= limit <= 1000:
        raise BadRequest("limit must be between 1 and 1000")
    topic = request.query.get("topic") or None
    letters = await ask(request, dlq.ListDeadLetters(topic=topic, status=status, limit=limit))
    return json_response({"items": letters})


@api(summary="Send parked events back to this service's consumers (applied at most once)",
     auth="admin", body=RedriveBody, responses={202: RedriveAnswer})
async def redrive_dead_letters(request: web.Request) -> web.Response:
    require_role(request, "admin")
    body = await read_json(request, RedriveBody)
    if body.all == (body.ids is not None):
        raise BadRequest("Give either ids or all: true")
    requested = await ask(request, dlq.RequestRedrive(ids=body.ids, topic=body.topic))
    return json_response({"requested": requested}, 202)


def setup_dead_letter_routes(app: web.Application) -> None:
    app.router.add_get("/admin/dead-letters", list_dead_letters)
    app.router.add_post("/admin/dead-letters/redrive", redrive_dead_letters)
